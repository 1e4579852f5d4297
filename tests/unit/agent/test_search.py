"""Specification of the audit's judgement: facts about the device and the profile, the fit
guard on memory-hungry changes, and the search over candidate patches."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from helpers.workloads import QWEN_LORA_CHECKPOINTED_YAML, MeasuredDevice, WorkloadFactory
from pytest_goblin.agent import tools
from pytest_goblin.agent.backends import AgentTurn
from pytest_goblin.agent.backends.planner import PlannerBackend
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext, AuditState
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import Report, RunMetrics, WorkloadConfig
from pytest_goblin.verdict.rule import decide

TUNED_AT_SWEET_SPOT = """\
name: tuned
model: llama-3-8b
finetune: lora
lora_rank: 16
batch_size: 8
grad_accum_steps: 1
seq_len: 2048
precision: bf16
attention_impl: flash
optimizer: adamw_torch_fused
gradient_checkpointing: false
dataloader_workers: 4
dataloader_persistent_workers: true
dataloader_prefetch_factor: 2
"""

SMALL_MICRO_BATCH = """\
name: small-micro-batch
model: qwen2.5-0.5b
finetune: lora
lora_rank: 16
batch_size: 1
grad_accum_steps: 16
seq_len: 1024
precision: bf16
attention_impl: flash
optimizer: adamw_torch_fused
dataloader_workers: 4
dataloader_persistent_workers: true
dataloader_prefetch_factor: 2
"""


def fields(report: Report) -> dict[str, Any]:
    assert report.patch is not None
    return {change.field: change.new for change in report.patch.changes}


def test_the_qwen_recipe_on_mi300x_fails_with_checkpointing_off(
    workload: WorkloadFactory, context: AuditContext
) -> None:
    report = audit(workload(QWEN_LORA_CHECKPOINTED_YAML), context).report
    assert report is not None
    assert fields(report)["gradient_checkpointing"] is False
    assert decide(report, 0.10).outcome == "failed"
    assert report.speedup > 1.3


def test_the_report_lists_the_candidates_best_first_with_the_chosen_one(
    workload: WorkloadFactory, context: AuditContext
) -> None:
    report = audit(workload(QWEN_LORA_CHECKPOINTED_YAML), context).report
    assert report is not None and report.patch is not None
    candidates = report.candidates
    assert len(candidates) >= 3
    assert [c.speedup for c in candidates] == sorted((c.speedup for c in candidates), reverse=True)
    [chosen] = [c for c in candidates if c.chosen]
    assert chosen.changes == report.patch.changes and chosen.speedup == report.speedup
    assert all(c.projected and c.peak_memory_gb is not None for c in candidates)
    # checkpointing on with a larger micro-batch was compared, and lost
    assert any(
        {"batch_size", "grad_accum_steps"} <= {x.field for x in c.changes} for c in candidates
    )
    dumped = json.loads(report.model_dump_json())["candidates"][0]
    assert set(dumped) == {"changes", "speedup", "projected", "peak_memory_gb", "chosen"}


def test_every_candidate_keeps_the_global_batch_and_fits_under_its_guard(
    workload: WorkloadFactory, context: AuditContext, device: SimulatedDevice
) -> None:
    loaded = workload(QWEN_LORA_CHECKPOINTED_YAML)
    report = audit(loaded, context).report
    assert report is not None
    before = loaded.config
    for candidate in report.candidates:
        changed = {c.field: c.new for c in candidate.changes}
        batch = changed.get("batch_size", before.batch_size)
        accum = changed.get("grad_accum_steps", before.grad_accum_steps)
        assert batch * accum == before.batch_size * before.grad_accum_steps
        assert not {"lr", "warmup_steps", "finetune"} & set(changed)
        assert candidate.peak_memory_gb is not None
        assert candidate.peak_memory_gb <= 0.85 * device.spec.memory_gb


def test_checkpointing_off_that_fits_only_at_a_smaller_micro_batch_is_searched_there(
    workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    # the recipe on a 64 GB MI250X: without recompute micro-batch 4 x 4096 needs
    # ~93 GB in the analytic model, so checkpointing off alone runs out of memory
    device = SimulatedDevice("mi250x")
    loaded = workload(QWEN_LORA_CHECKPOINTED_YAML)
    alone = loaded.config.model_copy(update={"gradient_checkpointing": False})
    with pytest.raises(OutOfMemory):
        device.run(alone, 1)
    context = AuditContext(runner=device, projector=device, kb=kb, backend="planner")
    report = audit(loaded, context).report
    assert report is not None
    global_batch = loaded.config.batch_size * loaded.config.grad_accum_steps
    off = [
        {c.field: c.new for c in candidate.changes}
        for candidate in report.candidates
        if any(c.field == "gradient_checkpointing" for c in candidate.changes)
    ]
    assert off, "checkpointing off at a smaller micro-batch was not proposed"
    for changed in off:
        assert changed["gradient_checkpointing"] is False
        assert changed["batch_size"] < loaded.config.batch_size
        assert changed["batch_size"] * changed["grad_accum_steps"] == global_batch
    # the analytic model ranks it first, and the audit fails with it
    assert fields(report)["gradient_checkpointing"] is False
    assert decide(report, 0.10).outcome == "failed"


def test_a_small_micro_batch_grows_while_the_global_batch_stays(
    workload: WorkloadFactory, context: AuditContext
) -> None:
    report = audit(workload(SMALL_MICRO_BATCH), context).report
    assert report is not None
    changed = fields(report)
    assert changed["batch_size"] > 1
    assert changed["batch_size"] * changed["grad_accum_steps"] == 16


class CountingDevice(SimulatedDevice):
    """The simulated MI300X, counting the runs of each config and step count."""

    def __init__(self) -> None:
        super().__init__("mi300x")
        self.runs: Counter[tuple[str, int]] = Counter()

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.runs[config.model_dump_json(), steps] += 1
        return super().run(config, steps)


def test_the_search_projects_the_baseline_once_for_all_its_candidates(
    workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    device = CountingDevice()
    context = AuditContext(runner=device, projector=device, kb=kb, backend="planner")
    report = audit(workload(QWEN_LORA_CHECKPOINTED_YAML), context).report
    assert report is not None and len(report.candidates) >= 3
    priced = [count for (_, steps), count in device.runs.items() if steps == 1]
    assert priced and max(priced) == 1


def test_an_already_tuned_config_passes(workload: WorkloadFactory, context: AuditContext) -> None:
    report = audit(workload(TUNED_AT_SWEET_SPOT), context).report
    assert report is not None
    assert decide(report, 0.10).outcome == "passed"


class NearlyFull(MeasuredDevice):
    """A measured-looking MI300X whose baseline profile uses 90% of its memory."""

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        metrics = super().run(config, steps)
        return metrics.model_copy(update={"hbm_peak_gb": 0.9 * 192})


def test_a_baseline_at_ninety_percent_of_memory_gets_no_change_that_needs_more_memory(
    workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    device = NearlyFull()
    context = AuditContext(
        runner=device, projector=SimulatedDevice("mi300x"), kb=kb, backend="planner"
    )
    loaded = workload(QWEN_LORA_CHECKPOINTED_YAML)
    report = audit(loaded, context).report
    assert report is not None and report.patch is not None
    before = loaded.config
    for candidate in report.candidates:
        assert "larger-micro-batch" not in {c.rule_id for c in candidate.changes}
        changed = {c.field: c.new for c in candidate.changes}
        if changed.get("gradient_checkpointing") is False:
            # only together with a smaller micro-batch (the same global batch) that the
            # profile-scaled model predicts under the guard, below the baseline's peak
            assert changed["batch_size"] < before.batch_size
            assert changed["batch_size"] * changed["grad_accum_steps"] == 16
            if candidate.projected:
                assert candidate.peak_memory_gb is not None
                assert candidate.peak_memory_gb <= 0.85 * 192


def test_profile_facts_reach_the_knowledge_base_query(state_for: Any) -> None:
    state = state_for(QWEN_LORA_CHECKPOINTED_YAML)
    result = tools.call(state, "profile_run", {"config_id": "cfg-1"})
    assert result.ok
    query = tools.call(state, "query_rocm_kb", {"config_id": "cfg-1"}).result
    assert query["facts"]["device"]["memory_gb"] == 192
    assert 0 < query["facts"]["profile"]["memory_fraction"] < 1
    assert set(query["facts"]["profile"]["buckets"]) >= {"memory_headroom", "kernel_shape"}
    micro = next(r for r in query["rules"] if r["id"] == "larger-micro-batch")
    assert micro["micro_batch_options"] == [8, 16]
    assert micro["try_without"] is True and micro["max_memory_fraction"] == 0.85


def test_propose_patch_takes_an_admissible_micro_batch_and_refuses_another(
    state_for: Any,
) -> None:
    state = state_for(QWEN_LORA_CHECKPOINTED_YAML)
    tools.call(state, "profile_run", {"config_id": "cfg-1"})
    made = tools.call(
        state,
        "propose_patch",
        {"config_id": "cfg-1", "rule_ids": ["larger-micro-batch"], "micro_batch": 8},
    )
    assert made.ok, made.error
    changed = {c["field"]: c["new"] for c in made.result["changes"]}
    assert changed == {"batch_size": 8, "grad_accum_steps": 2}
    assert made.result["projected_speedup"] > 1 and made.result["peak_memory_gb"] > 0
    wrong = tools.call(
        state,
        "propose_patch",
        {"config_id": "cfg-1", "rule_ids": ["larger-micro-batch"], "micro_batch": 6},
    )
    assert not wrong.ok and "choose one of 8, 16" in (wrong.error or "")


def test_a_patch_whose_guarded_changes_do_not_fit_together_is_refused(state_for: Any) -> None:
    state = state_for(QWEN_LORA_CHECKPOINTED_YAML)
    tools.call(state, "profile_run", {"config_id": "cfg-1"})
    both = tools.call(
        state,
        "propose_patch",
        {
            "config_id": "cfg-1",
            "rule_ids": ["checkpointing-off-when-it-fits", "larger-micro-batch"],
            "micro_batch": 16,
        },
    )
    assert not both.ok
    assert "does not fit: predicted peak" in (both.error or "")


@pytest.fixture
def state_for(workload: WorkloadFactory, context: AuditContext) -> Any:
    def make(text: str) -> AuditState:
        state = AuditState(context=context, workload=workload(text))
        assert state.workload is not None
        tools.call(state, "parse_config", {"file_path": state.workload.source.display_path})
        return state

    return make


# --- the planner's search, step by step ---------------------------------------------------

PARSED = {"config_id": "cfg-1", "name": "w"}
PROFILED = {"symptoms": []}
KNOBS = {
    "rules": [
        {"id": "bf16-mixed-precision", "kind": "patch", "matches_config": True},
        {
            "id": "checkpointing-off-when-it-fits",
            "kind": "patch",
            "matches_config": True,
            "try_without": True,
        },
        {
            "id": "larger-micro-batch",
            "kind": "patch",
            "matches_config": True,
            "try_without": True,
            "micro_batch_options": [4, 8],
        },
    ],
    "measure_candidates": 1,
}
ALL = ["bf16-mixed-precision", "checkpointing-off-when-it-fits", "larger-micro-batch"]
FIXED = ["bf16-mixed-precision"]
PARSED_ROOT = {"config_id": "cfg-1"}


def turn(planner: PlannerBackend) -> AgentTurn:
    return asyncio.run(planner.next_turn([]))


def answer(
    planner: PlannerBackend, call: Any, result: Any = None, error: str | None = None
) -> None:
    if error is None:
        planner.add_tool_result(call.id, call.name, json.dumps(result), False)
    else:
        planner.add_tool_result(call.id, call.name, error, True)


def searched(kb_result: dict[str, Any]) -> tuple[PlannerBackend, AgentTurn]:
    """A planner past its first patch round, and its search turn."""
    planner = PlannerBackend()
    planner.add_user_message("Audit this fine-tuning workload: w.goblin.yaml")
    for result in (PARSED, PROFILED, kb_result):
        (call,) = turn(planner).tool_calls
        answer(planner, call, result)
    (patch,) = turn(planner).tool_calls
    assert patch.input == {"config_id": "cfg-1", "rule_ids": ALL}
    answer(planner, patch, error="propose_patch: the patch does not fit")
    return planner, turn(planner)


def test_the_search_proposes_every_other_candidate_in_one_turn() -> None:
    _, search = searched(KNOBS)
    proposals = [(c.input["rule_ids"], c.input.get("micro_batch")) for c in search.tool_calls]
    assert all(c.name == "propose_patch" for c in search.tool_calls)
    # checkpointing in and out x micro-batch none, 4 or 8, but not the refused whole patch;
    # the largest micro-batch first
    assert len(proposals) == 5
    assert (ALL, 8) not in proposals
    assert (["bf16-mixed-precision", "checkpointing-off-when-it-fits"], None) in proposals
    assert (["bf16-mixed-precision", "larger-micro-batch"], 8) in proposals
    assert (["bf16-mixed-precision"], None) in proposals
    assert proposals[0][1] == 8


def test_a_change_that_fits_only_at_a_smaller_micro_batch_is_never_paired_with_a_larger() -> None:
    knobs = json.loads(json.dumps(KNOBS))
    knobs["rules"][1]["transform"] = {
        "gradient_checkpointing": False,
        "batch_size": 1,
        "grad_accum_steps": 16,
    }
    _, search = searched(knobs)
    proposals = [(c.input["rule_ids"], c.input.get("micro_batch")) for c in search.tool_calls]
    assert (["bf16-mixed-precision", "checkpointing-off-when-it-fits"], None) in proposals
    assert all(
        "checkpointing-off-when-it-fits" not in ids for ids, batch in proposals if batch is not None
    )
    assert (["bf16-mixed-precision", "larger-micro-batch"], 8) in proposals


def test_the_best_projected_candidate_is_benchmarked_and_a_failed_one_is_replaced() -> None:
    planner, search = searched(KNOBS)
    speedups = [1.1, 1.5, 1.2, 1.3, 1.0]
    for n, (call, speedup) in enumerate(zip(search.tool_calls, speedups, strict=True)):
        answer(planner, call, {"patch_id": f"patch-{n + 2}", "projected_speedup": speedup})
    (baseline,) = turn(planner).tool_calls
    assert baseline.input == {"config_id": "cfg-1", "steps": 50}
    answer(planner, baseline, {"metrics_id": "run-1", "projected": False})
    (best,) = turn(planner).tool_calls
    assert best.input["patch_id"] == "patch-3"
    answer(planner, best, error="benchmark: oom: out of memory")
    (second,) = turn(planner).tool_calls
    assert second.input["patch_id"] == "patch-5"
    answer(planner, second, {"metrics_id": "run-2", "tokens_per_sec": 10.0})
    (compare,) = turn(planner).tool_calls
    assert compare.name == "compare_runs"
    assert (compare.input["after"], compare.input["patch"]) == ("run-2", "patch-5")


def test_measured_with_room_the_best_three_are_benchmarked_and_the_fastest_compared() -> None:
    planner, search = searched({**KNOBS, "measure_candidates": 3})
    for n, call in enumerate(search.tool_calls):
        answer(planner, call, {"patch_id": f"patch-{n + 2}", "projected_speedup": 2.0 - n / 10})
    (baseline,) = turn(planner).tool_calls
    answer(planner, baseline, {"metrics_id": "run-1", "projected": False})
    measured = []
    for tokens in (10.0, 30.0, 20.0):
        (call,) = turn(planner).tool_calls
        assert call.name == "benchmark"
        measured.append(call.input["patch_id"])
        answer(planner, call, {"metrics_id": f"run-{len(measured) + 1}", "tokens_per_sec": tokens})
    assert measured == ["patch-2", "patch-3", "patch-4"]
    (compare,) = turn(planner).tool_calls
    assert (compare.input["after"], compare.input["patch"]) == ("run-3", "patch-3")


def test_projected_only_the_best_candidate_is_benchmarked() -> None:
    planner, search = searched({**KNOBS, "measure_candidates": 3})
    for n, call in enumerate(search.tool_calls):
        answer(planner, call, {"patch_id": f"patch-{n + 2}", "projected_speedup": 2.0 - n / 10})
    (baseline,) = turn(planner).tool_calls
    answer(planner, baseline, {"metrics_id": "run-1", "projected": True})
    (best,) = turn(planner).tool_calls
    answer(planner, best, {"metrics_id": "run-2", "tokens_per_sec": 5.0})
    assert turn(planner).tool_calls[0].name == "compare_runs"


DPO_EAGER_ON_A100 = """\
name: dpo-eager
model: llama-3-8b
objective: dpo
finetune: lora
lora_rank: 16
batch_size: 1
grad_accum_steps: 16
seq_len: 2048
precision: fp16
attention_impl: eager
gradient_checkpointing: true
optimizer: adamw_torch
"""


def test_a_later_round_refused_with_the_micro_batch_is_proposed_again_without_it() -> None:
    planner = PlannerBackend()
    planner.add_user_message("Audit this fine-tuning workload: w.goblin.yaml")
    first = {"rules": [{"id": "flash-attention", "kind": "patch", "matches_config": True}]}
    for result in (PARSED, PROFILED, first):
        (call,) = turn(planner).tool_calls
        answer(planner, call, result)
    (patch1,) = turn(planner).tool_calls
    answer(planner, patch1, {"patch_id": "patch-1", "config_id": "cfg-2", "rule_ids": []})
    (query2,) = turn(planner).tool_calls
    assert query2.input["config_id"] == "cfg-2"
    answer(planner, query2, KNOBS)
    (patch2,) = turn(planner).tool_calls
    assert patch2.input == {"config_id": "cfg-2", "rule_ids": ALL}
    answer(planner, patch2, error="propose_patch: the patch does not fit")
    (lean,) = turn(planner).tool_calls
    assert lean.name == "propose_patch"
    assert lean.input == {
        "config_id": "cfg-2",
        "rule_ids": ["bf16-mixed-precision", "checkpointing-off-when-it-fits"],
    }


def test_dpo_with_eager_attention_gets_checkpointing_off_once_flash_makes_room(
    workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    # chosen and rejected make a micro-batch of two 2048-token sequences: without recompute
    # eager attention's score matrices do not fit 85% of an 80 GB A100, flash attention's
    # absence of them does, at micro-batch 2 (the global batch of 16 kept)
    device = SimulatedDevice("a100")
    context = AuditContext(runner=device, projector=device, kb=kb, backend="planner")
    loaded = workload(DPO_EAGER_ON_A100)
    report = audit(loaded, context).report
    assert report is not None
    changed = fields(report)
    assert changed["attention_impl"] == "flash"
    assert changed["gradient_checkpointing"] is False
    batch = changed.get("batch_size", 1)
    assert batch * changed.get("grad_accum_steps", 16) == 16
    assert report.patch is not None
    assert report.patch.new_config.objective == "dpo"
    assert report.patch.new_config.reference == "adapter"
    assert decide(report, 0.10).outcome == "failed"


EAGER_CHECKPOINTED_ON_A100 = """\
name: eager-checkpointed
model: mistral-7b
finetune: lora
lora_rank: 16
batch_size: 8
grad_accum_steps: 2
seq_len: 2048
precision: fp16
attention_impl: eager
gradient_checkpointing: true
optimizer: adamw_torch
"""


def test_a_change_made_room_for_is_tried_again_on_the_other_changes() -> None:
    knobs = json.loads(json.dumps(KNOBS))
    knobs["rules"][1]["transform"] = {
        "gradient_checkpointing": False,
        "batch_size": 1,
        "grad_accum_steps": 16,
    }
    planner, search = searched(knobs)
    alone = [c for c in search.tool_calls if c.input == {**PARSED_ROOT, "rule_ids": FIXED}]
    assert len(alone) == 1
    for call in search.tool_calls:
        config = "cfg-9" if call is alone[0] else "cfg-8"
        answer(planner, call, {"patch_id": "patch-x", "config_id": config})
    (follow,) = turn(planner).tool_calls
    assert follow.name == "propose_patch"
    assert follow.input == {"config_id": "cfg-9", "rule_ids": ["checkpointing-off-when-it-fits"]}
    answer(planner, follow, {"patch_id": "patch-y", "projected_speedup": 9.0})
    (baseline,) = turn(planner).tool_calls
    answer(planner, baseline, {"metrics_id": "run-1", "projected": True})
    (best,) = turn(planner).tool_calls
    assert best.input["patch_id"] == "patch-y"


def test_checkpointing_off_is_searched_at_the_micro_batch_flash_attention_leaves_room_for(
    workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    # on the eager config checkpointing off fits 85% of an A100 only at micro-batch 1;
    # with flash attention (no score matrices) it fits at 4, and that is the best patch
    device = SimulatedDevice("a100")
    context = AuditContext(runner=device, projector=device, kb=kb, backend="planner")
    loaded = workload(EAGER_CHECKPOINTED_ON_A100)
    report = audit(loaded, context).report
    assert report is not None
    changed = fields(report)
    assert changed["attention_impl"] == "flash"
    assert changed["gradient_checkpointing"] is False
    assert changed["batch_size"] == 4
    assert changed["batch_size"] * changed["grad_accum_steps"] == 16
    peak = next(c.peak_memory_gb for c in report.candidates if c.chosen)
    assert peak is not None and peak <= 0.85 * device.spec.memory_gb
