"""Specification of the six audit tools, called the way the loop calls them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_goblin.agent import tools
from pytest_goblin.agent.state import AuditContext, AuditState
from pytest_goblin.kb.loader import load_kb
from pytest_goblin.schemas import ToolResult
from pytest_goblin.workload.read import Workload

TOOL_NAMES = {
    "parse_config",
    "profile_run",
    "query_rocm_kb",
    "propose_patch",
    "benchmark",
    "compare_runs",
}


def ok(state: AuditState, name: str, **args: Any) -> dict[str, Any]:
    result = tools.call(state, name, args)
    assert result.ok, result.error
    return result.result


def refused(state: AuditState, name: str, args: dict[str, Any]) -> str:
    result = tools.call(state, name, args)
    assert not result.ok, result.result
    assert result.error
    return result.error


def parsed(state: AuditState) -> dict[str, Any]:
    assert state.workload is not None
    return ok(state, "parse_config", file_path=state.workload.source.display_path)


# --- dispatch and argument repair --------------------------------------------------------


def test_unknown_tool_is_refused_with_the_list_of_tools(state: AuditState) -> None:
    error = refused(state, "run_shell", {"cmd": "ls"})
    assert "run_shell" in error
    for name in TOOL_NAMES:
        assert name in error


def test_unknown_argument_is_refused_naming_the_accepted_arguments(state: AuditState) -> None:
    parsed(state)
    error = refused(state, "benchmark", {"config_id": "cfg-1", "repeats": 3})
    assert "repeats" in error
    assert "Accepted: config_id, config, patch_id, steps" in error


def test_arguments_that_are_not_an_object_are_refused(state: AuditState) -> None:
    error = tools.call(state, "benchmark", ["cfg-1"])  # type: ignore[arg-type]
    assert error == ToolResult(ok=False, error="benchmark: arguments must be a JSON object")


def test_arguments_nested_inside_config_are_lifted(state: AuditState) -> None:
    config = parsed(state)["config"]
    result = ok(state, "benchmark", config={**config, "steps": 20})
    assert result["steps"] == 20


def test_an_id_nested_inside_config_is_lifted(state: AuditState) -> None:
    parsed(state)
    result = ok(state, "profile_run", config={"config_id": "cfg-1", "steps": 3})
    assert result["metrics"]["steps"] == 3


def test_calling_a_tool_leaves_the_callers_arguments_unchanged(state: AuditState) -> None:
    parsed(state)
    args = {"config": {"config_id": "cfg-1", "steps": 20}}
    assert tools.call(state, "benchmark", args).ok
    assert args == {"config": {"config_id": "cfg-1", "steps": 20}}


def test_json_string_arguments_are_decoded(state: AuditState) -> None:
    parsed(state)
    result = ok(state, "propose_patch", config_id="cfg-1", rule_ids='["fused-adamw"]')
    assert result["rule_ids"] == ["fused-adamw"]


def test_a_tool_that_fails_does_not_raise(state: AuditState) -> None:
    result = tools.call(state, "profile_run", {"config_id": "cfg-9"})
    assert result.ok is False
    assert result.error == "profile_run: unknown id 'cfg-9'; known configs: [], patches: []"


# --- parse_config ---------------------------------------------------------------------


def test_parse_config_returns_an_id_the_name_and_the_normalised_config(
    state: AuditState,
) -> None:
    result = parsed(state)
    assert result["config_id"] == "cfg-1"
    assert result["name"] == "llama-mistuned"
    assert result["format"] == "goblin"
    assert result["config"]["precision"] == "fp32"


def test_parse_config_accepts_the_absolute_path_of_the_audited_file(state: AuditState) -> None:
    assert state.workload is not None
    result = ok(state, "parse_config", file_path=str(state.workload.source.path))
    assert result["config_id"] == "cfg-1"


def test_parse_config_refuses_any_other_file(state: AuditState, tmp_path: Path) -> None:
    other = tmp_path / "workloads" / "other.goblin.yaml"
    other.write_text("model: llama-3-8b\nprecision: bf16\n")
    error = refused(state, "parse_config", {"file_path": str(other)})
    assert "may only read its own workload file: workloads/w.goblin.yaml" in error
    assert state.configs == {}


# --- ids instead of objects -------------------------------------------------------------


def test_benchmark_by_config_id_stores_a_run(state: AuditState) -> None:
    parsed(state)
    result = ok(state, "benchmark", config_id="cfg-1")
    assert result["metrics_id"] == "run-1"
    assert result["steps"] == 50
    assert state.config_of_run["run-1"] == state.configs["cfg-1"]


def test_projected_profile_and_benchmarks_are_the_analytic_models_runs_of_their_length(
    state: AuditState,
) -> None:
    """Under --goblin-fake the runs reuse the audit's projection of each config: what they
    return is still exactly the device's own run of that many steps."""
    parsed(state)
    device = state.context.runner
    config = state.configs["cfg-1"]
    profile = ok(state, "profile_run", config_id="cfg-1", steps=10)
    ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    first = ok(state, "benchmark", config_id="cfg-1", steps=50)
    again = ok(state, "benchmark", config_id="cfg-1", steps=20)
    patched = ok(state, "benchmark", patch_id="patch-1", steps=30)
    assert profile["metrics"] == device.run(config, 10).model_dump(mode="json")
    assert first == {"metrics_id": "run-1", **device.run(config, 50).model_dump(mode="json")}
    assert again == {"metrics_id": "run-2", **device.run(config, 20).model_dump(mode="json")}
    assert patched == {
        "metrics_id": "run-3",
        **device.run(state.configs["cfg-2"], 30).model_dump(mode="json"),
    }


def test_benchmark_by_patch_id_runs_the_patched_config(state: AuditState) -> None:
    parsed(state)
    ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    result = ok(state, "benchmark", patch_id="patch-1")
    assert state.config_of_run[result["metrics_id"]].precision == "bf16"


def test_benchmark_by_unknown_patch_id_lists_the_known_ones(state: AuditState) -> None:
    parsed(state)
    error = refused(state, "benchmark", {"patch_id": "patch-7"})
    assert "unknown id 'patch-7'" in error


def test_compare_runs_by_ids_returns_a_report(state: AuditState) -> None:
    parsed(state)
    ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    before = ok(state, "benchmark", config_id="cfg-1")["metrics_id"]
    after = ok(state, "benchmark", patch_id="patch-1")["metrics_id"]
    report = ok(
        state, "compare_runs", workload_name="w", before=before, after=after, patch="patch-1"
    )
    assert report["report_id"] == "report-1"
    assert report["speedup"] == pytest.approx(
        state.metrics[after].tokens_per_sec / state.metrics[before].tokens_per_sec, rel=1e-3
    )
    assert report["patch"]["rule_ids"] == ["bf16-mixed-precision"]
    assert report["projected"] is True
    assert report["summary_line"].startswith("Tokens/s (projected):")


def test_compare_runs_reports_advisory_rules_apart_from_the_notes(state: AuditState) -> None:
    parsed(state)
    run = ok(state, "benchmark", config_id="cfg-1")["metrics_id"]
    report = ok(
        state, "compare_runs", workload_name="w", before=run, after=run, notes=["baseline only"]
    )
    assert report["notes"] == ["baseline only"]
    advisories = {advisory["id"]: advisory for advisory in report["advisories"]}
    assert "numa-balancing-off" in advisories
    assert all(a["citation"][0].startswith("https://") for a in advisories.values())


def test_compare_runs_refuses_a_projected_and_a_measured_number(state: AuditState) -> None:
    parsed(state)
    projected = ok(state, "benchmark", config_id="cfg-1")
    measured = {key: value for key, value in projected.items() if key != "metrics_id"}
    measured.update(projected=False, runner_kind="torch")
    error = refused(
        state, "compare_runs", {"workload_name": "w", "before": "run-1", "after": measured}
    )
    assert "cannot compare a projected number with a measured one" in error


def test_compare_runs_refuses_runs_from_different_devices(state: AuditState) -> None:
    parsed(state)
    run = ok(state, "benchmark", config_id="cfg-1")
    elsewhere = {**run, "device": "mi250x"}
    error = refused(
        state, "compare_runs", {"workload_name": "w", "before": "run-1", "after": elsewhere}
    )
    assert "different devices" in error


def test_compare_runs_refuses_an_unknown_metrics_id(state: AuditState) -> None:
    error = refused(
        state, "compare_runs", {"workload_name": "w", "before": "run-1", "after": "run-2"}
    )
    assert "unknown before metrics_id 'run-1'" in error


# --- propose_patch ---------------------------------------------------------------------


def test_propose_patch_refuses_a_rule_whose_condition_does_not_hold(
    context: AuditContext, tuned: Workload
) -> None:
    state = AuditState(context=context, workload=tuned)
    parsed(state)
    error = refused(
        state, "propose_patch", {"config_id": "cfg-1", "rule_ids": ["bf16-mixed-precision"]}
    )
    assert "no change to propose" in error
    assert (
        "bf16-mixed-precision: its condition does not hold for this config on rocm-instinct"
        in error
    )
    assert state.patches == {}


def test_propose_patch_records_ignored_and_unknown_rules_as_skipped(
    context: AuditContext, mistuned: Workload
) -> None:
    state = AuditState(
        context=replace(context, ignore=frozenset({"dataloader-workers"})), workload=mistuned
    )
    parsed(state)
    result = ok(
        state,
        "propose_patch",
        config_id="cfg-1",
        rule_ids=["fused-adamw", "dataloader-workers", "no-such-rule"],
    )
    assert result["rule_ids"] == ["fused-adamw"]
    assert {s["rule_id"]: s["reason"] for s in result["skipped"]} == {
        "dataloader-workers": "ignored by goblin ignore",
        "no-such-rule": "no rule with this id in the knowledge base",
    }


def test_propose_patch_refuses_an_advisory_rule_as_a_change(state: AuditState) -> None:
    parsed(state)
    result = ok(
        state, "propose_patch", config_id="cfg-1", rule_ids=["fused-adamw", "numa-balancing-off"]
    )
    assert {"rule_id": "numa-balancing-off", "reason": "advisory: not a config change"} in result[
        "skipped"
    ]


def test_propose_patch_returns_a_new_config_id_and_the_changes(state: AuditState) -> None:
    parsed(state)
    result = ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    assert result["patch_id"] == "patch-1"
    assert result["config_id"] == "cfg-2"
    assert result["changes"] == [
        {"field": "precision", "old": "fp32", "new": "bf16", "rule_id": "bf16-mixed-precision"}
    ]
    assert state.configs["cfg-2"].precision == "bf16"
    assert state.configs["cfg-1"].precision == "fp32"


def test_patch_diff_is_a_unified_diff_of_the_users_file(state: AuditState) -> None:
    parsed(state)
    diff = ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])["diff"]
    lines = diff.splitlines()
    assert lines[0] == "--- a/workloads/w.goblin.yaml"
    assert lines[1] == "+++ b/workloads/w.goblin.yaml"
    assert lines[2].startswith("@@ ")
    assert "-precision: fp32   # copied from a tutorial" in lines
    assert "+precision: bf16   # copied from a tutorial" in lines
    assert sum(1 for line in lines if line.startswith(("+", "-"))) == 4


def test_a_patch_on_a_patched_config_merges_with_the_earlier_patch(state: AuditState) -> None:
    parsed(state)
    first = ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    second = ok(state, "propose_patch", config_id=first["config_id"], rule_ids=["fused-adamw"])
    assert second["patch_id"] == "patch-2"
    assert [c["field"] for c in second["changes"]] == ["precision", "optimizer"]
    assert second["rule_ids"] == ["bf16-mixed-precision", "fused-adamw"]
    assert "+precision: bf16   # copied from a tutorial" in second["diff"]
    assert "+optimizer: adamw_torch_fused" in second["diff"]


def test_a_patch_proposed_on_a_patch_id_builds_on_that_patch(state: AuditState) -> None:
    parsed(state)
    ok(state, "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"])
    second = ok(state, "propose_patch", config_id="patch-1", rule_ids=["fused-adamw"])
    assert second["new_config"]["precision"] == "bf16"
    assert [c["field"] for c in second["changes"]] == ["precision", "optimizer"]
    assert "+precision: bf16   # copied from a tutorial" in second["diff"]


def test_a_later_change_to_the_same_field_keeps_the_original_old_value(
    context: AuditContext, mistuned: Workload, tmp_path: Path
) -> None:
    pack = tmp_path / "rules" / "attention.yaml"
    pack.parent.mkdir()
    pack.write_text(
        yaml.safe_dump(
            [
                {
                    "id": "sdpa-to-flash",
                    "category": "attention",
                    "platforms": ["all"],
                    "when": {"attention_impl": "sdpa"},
                    "set": {"attention_impl": "flash"},
                    "symptom": "sdpa where flash is available",
                    "expected_impact": "a fused kernel",
                    "citation": "https://example.org/flash",
                    "examples": {
                        "matches": [{"attention_impl": "sdpa"}],
                        "not_matches": [{"attention_impl": "eager"}],
                    },
                }
            ]
        )
    )
    kb = load_kb([pack.parent])
    state = AuditState(
        context=replace(context, kb=kb, ignore=frozenset({"flash-attention"})), workload=mistuned
    )
    parsed(state)
    first = ok(state, "propose_patch", config_id="cfg-1", rule_ids=["sdpa-attention"])
    assert first["changes"][0]["new"] == "sdpa"
    second = ok(state, "propose_patch", config_id=first["config_id"], rule_ids=["sdpa-to-flash"])
    assert second["changes"] == [
        {"field": "attention_impl", "old": "eager", "new": "flash", "rule_id": "sdpa-to-flash"}
    ]
    assert {"rule_id": "sdpa-attention", "reason": "superseded by a later rule"} in second[
        "skipped"
    ]
    assert "-attention_impl: eager" in second["diff"]
    assert "+attention_impl: flash" in second["diff"]


def test_expected_speedup_range_comes_from_the_rules_that_quantify_it(
    state: AuditState,
) -> None:
    parsed(state)
    result = ok(state, "propose_patch", config_id="cfg-1", rule_ids=["fused-adamw"])
    assert (result["expected_speedup_low"], result["expected_speedup_high"]) == (1.016, 1.036)


# --- query_rocm_kb ---------------------------------------------------------------------


def test_query_with_config_id_puts_matching_rules_first(state: AuditState) -> None:
    parsed(state)
    result = ok(state, "query_rocm_kb", config_id="cfg-1", symptoms=["dataloader idle"])
    flags = [rule["matches_config"] for rule in result["rules"]]
    assert flags[0] is True
    assert flags == sorted(flags, reverse=True)
    matching = {rule["id"] for rule in result["rules"] if rule["matches_config"]}
    assert {"bf16-mixed-precision", "flash-attention", "dataloader-workers"} <= matching
    assert result["platform"] == "rocm-instinct"


def test_query_leaves_out_ignored_rules_and_lists_them_as_skipped(
    context: AuditContext, mistuned: Workload
) -> None:
    state = AuditState(
        context=replace(context, ignore=frozenset({"fused-adamw"})), workload=mistuned
    )
    parsed(state)
    result = ok(state, "query_rocm_kb", config_id="cfg-1", symptom="optimizer step kernels")
    assert "fused-adamw" not in {rule["id"] for rule in result["rules"]}
    assert {"rule_id": "fused-adamw", "reason": "ignored by goblin ignore"} in result["skipped"]


def test_query_by_symptom_alone_returns_text_matches(context: AuditContext) -> None:
    state = AuditState(context=context)
    result = ok(state, "query_rocm_kb", symptom="eager attention materialises the score matrix")
    ids = [rule["id"] for rule in result["rules"]]
    assert ids
    assert {"flash-attention", "sdpa-attention"} & set(ids)
    assert all(rule["matches_config"] is False for rule in result["rules"])


def test_query_with_nothing_to_look_up_is_refused(context: AuditContext) -> None:
    error = refused(AuditState(context=context), "query_rocm_kb", {})
    assert "give symptom, symptoms or config_id" in error


# --- schemas ---------------------------------------------------------------------------


def test_tool_schemas_describe_exactly_the_six_tools() -> None:
    schemas = tools.tool_schemas()
    assert {schema["name"] for schema in schemas} == TOOL_NAMES
    assert len(schemas) == 6
    for schema in schemas:
        assert set(schema) == {"name", "description", "input_schema"}
        assert schema["description"]


@pytest.mark.parametrize("schema", tools.tool_schemas(), ids=lambda s: s["name"])
def test_each_tool_schema_is_a_json_object_schema(schema: dict[str, Any]) -> None:
    input_schema = schema["input_schema"]
    assert json.loads(json.dumps(input_schema)) == input_schema
    assert input_schema["type"] == "object"
    assert input_schema["additionalProperties"] is False
    assert isinstance(input_schema["properties"], dict) and input_schema["properties"]
    assert set(input_schema.get("required", [])) <= set(input_schema["properties"])


PACKED_QLORA_SCRIPT = """\
from peft import LoraConfig
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer

bnb = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("meta-llama/Meta-Llama-3-8B", quantization_config=bnb)
args = SFTConfig(output_dir="out", packing=True, max_length=2048, bf16=True)
SFTTrainer(model=model, args=args, peft_config=LoraConfig(r=16)).train()
"""


def test_a_rule_another_rules_left_out_change_unlocked_is_left_out_too(
    context: AuditContext, tmp_path: Path
) -> None:
    """QLoRA -> LoRA is not written into a script's BitsAndBytesConfig, so it is left out;
    torch.compile held only on the LoRA config (the compile rule excludes QLoRA), so it goes
    with it."""
    from helpers.format_support import write

    workload = write(tmp_path, "w/train_qlora.py", PACKED_QLORA_SCRIPT)
    state = AuditState(context=context, workload=workload)
    parsed(state)
    assert {"lora-over-qlora-when-it-fits", "torch-compile"} <= {
        rule.id for rule in state.match(state.configs["cfg-1"]).applicable
    }
    error = refused(
        state,
        "propose_patch",
        {"config_id": "cfg-1", "rule_ids": ["lora-over-qlora-when-it-fits", "torch-compile"]},
    )
    assert "lora-over-qlora-when-it-fits: a training script has no argument for finetune" in error
    assert "torch-compile: its condition held only with a change that was left out" in error
