"""pytest_goblin.api: what a script or notebook gets without pytest, and that it is the
plugin's own reading, projection and matching, not a second copy of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import EXAMPLE_PROJECT
from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin import api
from pytest_goblin.errors import NotAWorkload, OutOfMemory, WorkloadError
from pytest_goblin.kb.loader import KnowledgeBaseError
from pytest_goblin.runner.projected import SimulatedDevice


@pytest.fixture
def mistuned(tmp_path: Path) -> Path:
    path = tmp_path / "mistuned.goblin.yaml"
    path.write_text(MISTUNED_YAML)
    return path


def test_a_workload_file_is_read_as_the_plugin_reads_it(mistuned: Path) -> None:
    workload = api.load_workload(str(mistuned))
    assert workload.name == "llama-mistuned"
    assert (workload.config.precision, workload.config.batch_size) == ("fp32", 2)


def test_a_bad_workload_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.goblin.yaml"
    bad.write_text(MISTUNED_YAML.replace("batch_size: 2", "batch_size: two"))
    with pytest.raises(WorkloadError, match=r"bad\.goblin\.yaml: field 'batch_size'"):
        api.load_workload(bad)
    other = tmp_path / "other.yaml"
    other.write_text("just: data\n")
    with pytest.raises(NotAWorkload):
        api.load_workload(other)


def test_every_catalogue_device_is_listed_and_projects() -> None:
    names = [spec.name for spec in api.devices()]
    assert {"mi300x", "h100", "cpu"} <= set(names)
    assert api.DEFAULT_DEVICE in names


def test_a_projection_is_the_fake_runs_projection(mistuned: Path) -> None:
    workload = api.load_workload(mistuned)
    metrics = api.project(workload, "mi325x", steps=3)
    assert metrics == SimulatedDevice("mi325x").run(workload.config, 3)
    assert metrics.projected and metrics.steps == 3 and metrics.tokens_per_sec > 0


def test_an_edited_config_projects_differently(mistuned: Path) -> None:
    config = api.load_workload(mistuned).config
    faster = config.model_copy(update={"precision": "bf16", "attention_impl": "sdpa"})
    assert api.project(faster).tokens_per_sec > api.project(config).tokens_per_sec


def test_device_names_are_read_as_the_option_reads_them(mistuned: Path) -> None:
    workload = api.load_workload(mistuned)
    assert api.project(workload, "MI300X") == api.project(workload, "mi300x")
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; valid devices: .*mi300x"):
        api.project(workload, "tpu")


def test_a_config_that_does_not_fit_raises_out_of_memory_with_the_estimate(
    mistuned: Path,
) -> None:
    config = api.load_workload(mistuned).config.model_copy(update={"batch_size": 64})
    estimate = api.memory(config, "rx7900xtx")
    assert estimate.total_gb > 24
    with pytest.raises(OutOfMemory, match="projected OOM") as raised:
        api.project(config, "rx7900xtx")
    assert raised.value.memory == estimate


def test_the_knowledge_base_matches_the_mistuned_config_and_not_the_tuned_one(
    mistuned: Path, tmp_path: Path
) -> None:
    found = {rule.id for rule in api.match_rules(api.load_workload(mistuned)).patches}
    assert {"bf16-mixed-precision", "flash-attention"} <= found
    tuned = tmp_path / "tuned.goblin.yaml"
    tuned.write_text(TUNED_YAML)
    assert not {"bf16-mixed-precision", "flash-attention"} & {
        rule.id for rule in api.match_rules(api.load_workload(tuned)).patches
    }


def test_waivers_and_extra_rule_directories_apply(mistuned: Path) -> None:
    workload = api.load_workload(mistuned)
    waived = api.match_rules(workload, ignore=["flash-attention"])
    assert "flash-attention" in waived.waived
    assert "flash-attention" not in {rule.id for rule in waived.applicable}
    with pytest.raises(KnowledgeBaseError, match="unknown rule 'flash-atention'"):
        api.match_rules(workload, ignore=["flash-atention"])
    team = api.match_rules(workload, kb_dirs=[EXAMPLE_PROJECT / "rules"])
    assert {r.id for r in team.applicable} >= {r.id for r in api.match_rules(workload).applicable}


def test_a_workload_files_own_waiver_counts(tmp_path: Path) -> None:
    path = tmp_path / "w.goblin.yaml"
    path.write_text(MISTUNED_YAML + "goblin:\n  ignore: [flash-attention]\n")
    assert "flash-attention" in api.match_rules(api.load_workload(path)).waived


def test_importing_the_api_needs_no_pytest_torch_or_llm_sdk() -> None:
    code = (
        "import sys, pytest_goblin.api; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pytest', '_pytest', 'torch', 'anthropic', 'huggingface_hub', 'transformers'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
