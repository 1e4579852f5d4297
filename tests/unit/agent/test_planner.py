"""Specification of the planner: the deterministic reference policy, step by step."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from helpers.workloads import WorkloadFactory
from pytest_goblin.agent.backends import AgentTurn, BackendUnavailable, make_backend, resolve_name
from pytest_goblin.agent.backends.planner import BENCHMARK_STEPS, PROFILE_STEPS, PlannerBackend
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.workload.read import Workload

PATH = "workloads/w.goblin.yaml"
PARSED = {"config_id": "cfg-1", "name": "w"}
PROFILED = {"symptoms": ["precision_path: 80% of step time, fp32 matmuls"]}
MATCHING = {
    "rules": [
        {"id": "bf16-mixed-precision", "kind": "patch", "matches_config": True},
        {"id": "numa-balancing-off", "kind": "advisory", "matches_config": True},
        {"id": "sdpa-attention", "kind": "patch", "matches_config": False},
    ]
}
NOTHING = {"rules": [{"id": "numa-balancing-off", "kind": "advisory", "matches_config": True}]}
PATCHED = {"patch_id": "patch-1", "config_id": "cfg-2"}


def step(planner: PlannerBackend) -> AgentTurn:
    return asyncio.run(planner.next_turn([]))


def started() -> PlannerBackend:
    planner = PlannerBackend()
    planner.add_user_message(f"Audit this fine-tuning workload: {PATH}")
    return planner


def answer(
    planner: PlannerBackend, turn: AgentTurn, result: Any = None, error: str | None = None
) -> None:
    (call,) = turn.tool_calls
    if error is None:
        planner.add_tool_result(call.id, call.name, json.dumps(result), False)
    else:
        planner.add_tool_result(call.id, call.name, error, True)


def play(planner: PlannerBackend, *results: Any) -> AgentTurn:
    """Answer each call with the next result; return the turn after the last answer."""
    turn = step(planner)
    for result in results:
        answer(planner, turn, result)
        turn = step(planner)
    return turn


def only_call(turn: AgentTurn) -> tuple[str, dict[str, Any]]:
    (call,) = turn.tool_calls
    return call.name, call.input


def test_first_call_parses_the_file_named_in_the_user_message() -> None:
    turn = step(started())
    assert only_call(turn) == ("parse_config", {"file_path": PATH})
    assert turn.stop_reason == "tool_use"
    assert turn.text_blocks == ["Reading the workload file."]


def test_every_call_id_is_unique() -> None:
    planner = started()
    ids = [step(planner).tool_calls[0].id for _ in range(3)]
    assert len(set(ids)) == 3


def test_profiles_the_parsed_config_by_id() -> None:
    turn = play(started(), PARSED)
    assert only_call(turn) == ("profile_run", {"config_id": "cfg-1", "steps": PROFILE_STEPS})


def test_queries_the_knowledge_base_with_the_profile_symptoms_and_the_config() -> None:
    turn = play(started(), PARSED, PROFILED)
    assert only_call(turn) == (
        "query_rocm_kb",
        {"symptoms": PROFILED["symptoms"], "config_id": "cfg-1"},
    )


def test_queries_with_a_generic_symptom_when_the_profile_shows_none() -> None:
    turn = play(started(), PARSED, {"symptoms": []})
    assert only_call(turn)[1]["symptoms"] == ["training step"]


def test_patches_with_the_matching_patch_rules_only() -> None:
    turn = play(started(), PARSED, PROFILED, MATCHING)
    assert only_call(turn) == (
        "propose_patch",
        {"config_id": "cfg-1", "rule_ids": ["bf16-mixed-precision"]},
    )


def test_queries_again_on_the_patched_config() -> None:
    turn = play(started(), PARSED, PROFILED, MATCHING, PATCHED)
    name, args = only_call(turn)
    assert (name, args["config_id"]) == ("query_rocm_kb", "cfg-2")


def test_benchmarks_baseline_then_patch_then_compares_them() -> None:
    planner = started()
    baseline = play(planner, PARSED, PROFILED, MATCHING, PATCHED, NOTHING)
    assert only_call(baseline) == ("benchmark", {"config_id": "cfg-1", "steps": BENCHMARK_STEPS})
    answer(planner, baseline, {"metrics_id": "run-1"})
    patched = step(planner)
    assert only_call(patched) == ("benchmark", {"patch_id": "patch-1", "steps": BENCHMARK_STEPS})
    answer(planner, patched, {"metrics_id": "run-2"})
    assert only_call(step(planner)) == (
        "compare_runs",
        {
            "workload_name": "w",
            "before": "run-1",
            "after": "run-2",
            "patch": "patch-1",
        },
    )


def test_without_a_matching_rule_compares_the_baseline_with_itself() -> None:
    turn = play(started(), PARSED, PROFILED, NOTHING, {"metrics_id": "run-1"})
    assert only_call(turn) == (
        "compare_runs",
        {
            "workload_name": "w",
            "before": "run-1",
            "after": "run-1",
            "patch": None,
            "notes": [],
        },
    )


def test_a_refused_patch_is_reported_as_a_note_on_the_baseline_comparison() -> None:
    planner = started()
    turn = play(planner, PARSED, PROFILED, MATCHING)
    answer(planner, turn, error="propose_patch: no change to propose")
    turn = step(planner)
    assert only_call(turn)[0] == "benchmark"
    answer(planner, turn, {"metrics_id": "run-1"})
    name, args = only_call(step(planner))
    assert name == "compare_runs"
    assert args["patch"] is None
    assert args["notes"] == ["patch1 failed: propose_patch: no change to propose"]


def test_stops_when_the_file_cannot_be_read() -> None:
    planner = started()
    answer(planner, step(planner), error="parse_config: not a workload")
    turn = step(planner)
    assert turn.tool_calls == []
    assert turn.stop_reason == "end_turn"
    assert turn.text_blocks == ["Cannot read the workload: parse_config: not a workload"]


def test_stops_when_the_workload_cannot_run() -> None:
    planner = started()
    turn = play(planner, PARSED)
    answer(planner, turn, error="profile_run: projected OOM")
    turn = step(planner)
    assert turn.tool_calls == []
    assert "cannot run as configured" in turn.text_blocks[0]


def test_ends_with_the_summary_line_after_the_comparison() -> None:
    turn = play(
        started(),
        PARSED,
        PROFILED,
        NOTHING,
        {"metrics_id": "run-1"},
        {"summary_line": "Tokens/s (projected): 1 → 1 (1.00×)."},
    )
    assert turn.tool_calls == []
    assert turn.stop_reason == "end_turn"
    assert turn.text_blocks == ["Tokens/s (projected): 1 → 1 (1.00×)."]


def test_stops_patching_after_the_last_allowed_round() -> None:
    planner = started()
    turn = play(planner, PARSED, PROFILED)
    for n in range(1, 4):
        assert only_call(turn)[0] == "query_rocm_kb"
        answer(planner, turn, MATCHING)
        turn = step(planner)
        assert only_call(turn)[0] == "propose_patch"
        answer(planner, turn, {"patch_id": f"patch-{n}", "config_id": f"cfg-{n + 1}"})
        turn = step(planner)
    assert only_call(turn)[0] == "benchmark"


def test_the_planner_audits_an_example_with_fp16_habits(
    workload: WorkloadFactory, context: AuditContext
) -> None:
    loaded: Workload = workload(
        "model: qwen2.5-7b\nfinetune: lora\nlora_rank: 64\nbatch_size: 2\nseq_len: 4096\n"
        "precision: fp16\nattention_impl: eager\noptimizer: adamw_torch_fused\n"
        "dataloader_workers: 8\ndataloader_persistent_workers: true\n"
    )
    outcome = audit(loaded, context)
    assert outcome.report is not None and outcome.report.patch is not None
    assert {c.rule_id for c in outcome.report.patch.changes} >= {
        "bf16-over-fp16-on-amd",
        "flash-attention",
    }


# --- building backends -------------------------------------------------------------------


def test_auto_is_the_planner_without_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("GOBLIN_QWEN_BASE_URL", raising=False)
    assert resolve_name("auto") == "planner"
    assert isinstance(make_backend("auto", system_prompt=""), PlannerBackend)


def test_an_explicit_backend_name_is_kept() -> None:
    assert resolve_name("qwen") == "qwen"


@pytest.mark.parametrize(("name", "sdk"), [("claude", "anthropic"), ("qwen", "huggingface_hub")])
def test_a_backend_without_its_sdk_is_unavailable_naming_the_extra(
    name: str, sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, sdk, None)
    advice = rf"pytest-goblin\[{name}\].*--goblin-backend planner"
    with pytest.raises(BackendUnavailable, match=advice):
        make_backend(name, system_prompt="")
