"""Specification of --goblin-fix: the winning patch written into failing workloads' files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from helpers.format_support import FILES, change, load
from helpers.workloads import TUNED_YAML
from pytest_goblin.schemas import PatchSummary, WorkloadResult
from pytest_goblin.workload.fix import fix_summary, write_fix

AXOLOTL = FILES / "axolotl" / "qwen25-7b-support-qlora.yml"


def failing_result(changes: list) -> WorkloadResult:
    return WorkloadResult(
        nodeid="n",
        path="w",
        name="w",
        outcome="failed",
        threshold=0.1,
        patch=PatchSummary(changes=changes, diff="(diff)"),
    )


def test_fix_writes_the_patch_into_a_failing_workload_only(pytester: pytest.Pytester) -> None:
    (pytester.path / "w").mkdir()
    shutil.copyfile(AXOLOTL, pytester.path / "w/support.yml")
    (pytester.path / "w/tuned.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "--goblin-fix", "-p", "no:cacheprovider", "w"
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "--goblin-fix wrote 1 file(s):",
            "  w/support.yml: precision fp16 -> bf16*",
        ]
    )
    fixed = (pytester.path / "w/support.yml").read_text()
    assert yaml.safe_load(fixed)["bf16"] is True
    assert "fp16: false   # the old V100 box" in fixed
    assert (pytester.path / "w/tuned.goblin.yaml").read_text() == TUNED_YAML


def test_a_fixed_workload_passes_the_next_run(pytester: pytest.Pytester) -> None:
    (pytester.path / "w").mkdir()
    shutil.copyfile(AXOLOTL, pytester.path / "w/support.yml")
    args = ("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "w")
    pytester.runpytest(*args, "--goblin-fix").assert_outcomes(failed=1)
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_without_fix_no_file_is_written(pytester: pytest.Pytester) -> None:
    (pytester.path / "w").mkdir()
    shutil.copyfile(AXOLOTL, pytester.path / "w/support.yml")
    pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "w")
    assert (pytester.path / "w/support.yml").read_bytes() == AXOLOTL.read_bytes()


def test_a_file_changed_since_the_audit_is_left_alone(tmp_path: Path) -> None:
    workload = load(tmp_path, "axolotl/qwen25-7b-support-qlora.yml")
    edited_by_someone = workload.source.text + "# edited meanwhile\n"
    workload.source.path.write_text(edited_by_someone)
    result = write_fix(workload, failing_result([change(workload, "precision", "bf16")]))
    assert not result.fixed
    assert "changed since it was audited" in result.notes[-1]
    assert workload.source.path.read_text() == edited_by_someone


def test_the_files_permissions_are_kept(tmp_path: Path) -> None:
    workload = load(tmp_path, "axolotl/qwen25-7b-support-qlora.yml")
    os.chmod(workload.source.path, 0o640)
    result = write_fix(workload, failing_result([change(workload, "precision", "bf16")]))
    assert result.fixed
    assert oct(workload.source.path.stat().st_mode & 0o777) == oct(0o640)


def test_the_summary_lists_each_written_file_with_its_changes(tmp_path: Path) -> None:
    workload = load(tmp_path, "axolotl/qwen25-7b-support-qlora.yml")
    written = failing_result([change(workload, "precision", "bf16")])
    written = written.model_copy(update={"fixed": True, "path": "w/support.yml"})
    assert fix_summary([written, failing_result([])]) == (
        "--goblin-fix wrote 1 file(s):\n  w/support.yml: precision fp16 -> bf16"
    )
