"""A workload that does not fit its device is a failing finding (issue 18, case 15).

``model: llama-3-8b`` alone takes the Trainer's defaults (fp32, micro-batch 8, full
fine-tune), which project to more memory than an MI300X has. It used to be an error,
"projected OOM"; it fails instead, with the patch that makes it fit (and the rules'
changes on top), what that patch projects to, and a diff that applies.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from pytest_goblin.audit.fit import fit
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import load_workload

GATE = ("-p", "no:cacheprovider", "--goblin", "--goblin-fake", "--goblin-json=r.json")


def gate(pytester: pytest.Pytester, text: str, *args: str) -> tuple[Any, dict[str, Any]]:
    (pytester.path / "w.goblin.yaml").write_text(text)
    result = pytester.runpytest(*GATE, *args, "w.goblin.yaml")
    (workload,) = json.loads((pytester.path / "r.json").read_text())["workloads"]
    return result, workload


def test_the_smallest_workload_fails_with_the_patch_that_makes_it_fit(
    pytester: pytest.Pytester,
) -> None:
    result, workload = gate(pytester, "model: llama-3-8b\n")
    result.assert_outcomes(failed=1)
    assert workload["outcome"] == "failed"
    assert workload["baseline"] is None and workload["speedup"] is None
    assert workload["patched"]["tokens_per_sec"] > 0
    assert workload["patched"]["hbm_peak_gb"] <= 192
    changes = {c["field"]: (c["old"], c["new"]) for c in workload["patch"]["changes"]}
    assert changes["precision"] == ("fp32", "bf16")
    result.stdout.fnmatch_lines(
        [
            "w: does not fit: projected to need * GB of 192 GB on AMD Instinct MI300X "
            "(weights *); with the patch below it needs * GB",
            "  patched: * tok/s, step * s, peak memory * GB (projected)",
            "changes:",
            "  precision: fp32 -> bf16  [bf16-mixed-precision]",
        ]
    )
    assert "projected OOM" not in result.stdout.str()


def test_the_diff_applies_and_the_patched_file_fits(pytester: pytest.Pytester) -> None:
    _, workload = gate(pytester, "model: llama-3-8b\n")
    (pytester.path / "fix.diff").write_text(workload["patch"]["diff"])
    subprocess.run(["git", "apply", "fix.diff"], cwd=pytester.path, check=True)
    patched = load_workload(pytester.path / "w.goblin.yaml")
    assert fit(patched.config, get_device("mi300x")) is None


def test_goblin_fix_writes_the_fitting_patch(pytester: pytest.Pytester) -> None:
    _, workload = gate(pytester, "model: llama-3-8b\n", "--goblin-fix")
    assert workload["fixed"] is True
    patched = load_workload(pytester.path / "w.goblin.yaml")
    assert patched.config.precision == "bf16"
    assert fit(patched.config, get_device("mi300x")) is None


def test_a_smaller_device_takes_checkpointing_and_a_smaller_micro_batch_with_the_same_global_batch() -> (
    None
):
    config = WorkloadConfig(model="llama-3.2-3b", batch_size=8, seq_len=4096)
    fitting = fit(config, get_device("h100"))
    assert fitting is not None and fitting.fits
    moved = fitting.config
    assert moved.batch_size * moved.grad_accum_steps == 8
    assert [c.field for c in fitting.changes][:2] == ["precision", "gradient_checkpointing"]


def test_a_workload_that_fits_is_left_alone() -> None:
    assert (
        fit(
            WorkloadConfig(model="llama-3-8b", precision="bf16", finetune="lora"),
            get_device("mi300x"),
        )
        is None
    )


def test_an_audit_error_says_error_in_its_failure_text(pytester: pytest.Pytester) -> None:
    """pytest prints FAILED for it; the failure text says it is an error, not a finding."""
    result, workload = gate(pytester, "model: llama-3.1-70b\nprecision: bf16\n")
    result.assert_outcomes(failed=1)
    assert workload["outcome"] == "error"
    result.stdout.fnmatch_lines(
        [
            "*_ goblin workload: *",
            "goblin: ERROR, not a finding: the audit could not complete (pytest counts it as "
            "failed)",
            "w.goblin.yaml: does not fit: *",
        ]
    )
