"""Falling back to part of a patch when the whole patch fails the loss check."""

from __future__ import annotations

import math

import pytest

from helpers.workloads import QWEN_LORA_CHECKPOINTED_YAML, MeasuredDevice, WorkloadFactory
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.fallback import candidates
from pytest_goblin.audit.run import confirm_report
from pytest_goblin.audit.timebudget import TimeBudget
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.schemas import Report, RunMetrics, WorkloadConfig
from pytest_goblin.verdict.result import from_report
from pytest_goblin.workload.read import Workload

SETTINGS = GoblinSettings(max_repeats=2)


class LossyDevice(MeasuredDevice):
    """Measured-looking runs with losses; configs ``diverges`` picks train to NaN."""

    def __init__(self, diverges: object) -> None:
        super().__init__()
        self.diverges = diverges
        self.configs: list[WorkloadConfig] = []

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.configs.append(config)
        losses = [2.0, 1.9, math.nan] if self.diverges(config) else [2.0, 1.9, 1.8]
        return super().run(config, steps).model_copy(update={"losses": losses})


def measured_report(workload: Workload, context: AuditContext, device: LossyDevice) -> Report:
    outcome = audit(
        workload,
        AuditContext(runner=device, projector=context.projector, kb=context.kb, backend="planner"),
    )
    assert outcome.report is not None and outcome.report.patch is not None
    return outcome.report


def test_candidates_drop_the_precision_rule_first(
    failed_patch_report: Report,
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    assert failed_patch_report.patch is not None
    first = next(candidates(mistuned, failed_patch_report.patch, "loss was NaN", kb))
    assert kb.get(first.dropped).category == "precision"
    assert all(change.field != "precision" for change in first.patch.changes)


def test_a_smaller_patch_has_its_own_diff_config_and_skipped_reason(
    failed_patch_report: Report,
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    assert failed_patch_report.patch is not None
    first = next(candidates(mistuned, failed_patch_report.patch, "loss was NaN", kb))
    assert first.patch.new_config.precision == mistuned.config.precision
    assert "+precision" not in first.patch.diff and "+attention_impl: flash" in first.patch.diff
    assert first.dropped not in first.patch.rule_ids
    (skip,) = [s for s in first.patch.skipped if s.rule_id == first.dropped]
    assert "failed the loss check (loss was NaN)" in skip.reason


def test_a_single_rule_patch_has_no_smaller_candidate(
    failed_patch_report: Report,
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    assert failed_patch_report.patch is not None
    rule = failed_patch_report.patch.changes[0].rule_id
    single = failed_patch_report.patch.model_copy(
        update={"changes": [c for c in failed_patch_report.patch.changes if c.rule_id == rule]}
    )
    assert list(candidates(mistuned, single, "loss was NaN", kb)) == []


def test_a_patch_that_diverges_is_measured_without_the_guilty_rule(
    context: AuditContext,
    mistuned: Workload,
) -> None:
    device = LossyDevice(lambda config: config.precision == "bf16")
    report = confirm_report(
        measured_report(mistuned, context, device),
        device,
        mistuned,
        GoblinSettings(max_repeats=2, threshold=0.05),
        context.kb,
    )
    assert report.rejected is None
    assert report.patch is not None and report.patch.new_config.precision == "fp32"
    assert report.fallback is not None and "non-finite loss" in report.fallback
    assert report.speedup > 1.05 and report.speedup_ci is not None
    result = from_report("w::x", mistuned, report, 0.05)
    assert result.outcome == "failed" and result.fallback == report.fallback


def test_a_patch_stays_rejected_when_no_smaller_one_trains(
    context: AuditContext,
    mistuned: Workload,
) -> None:
    device = LossyDevice(lambda config: config != mistuned.config)
    report = confirm_report(
        measured_report(mistuned, context, device), device, mistuned, SETTINGS, context.kb
    )
    assert report.rejected is not None and "non-finite" in report.rejected
    assert report.fallback is None
    assert from_report("w::x", mistuned, report, 0.10).outcome == "passed"


def test_without_the_knowledge_base_a_rejected_patch_is_not_retried(
    context: AuditContext,
    mistuned: Workload,
) -> None:
    device = LossyDevice(lambda config: config.precision == "bf16")
    report = measured_report(mistuned, context, device)
    runs = len(device.configs)
    confirmed = confirm_report(report, device, mistuned, SETTINGS)
    assert confirmed.rejected is not None and len(device.configs) == runs


@pytest.fixture
def failed_patch_report(context: AuditContext, mistuned: Workload) -> Report:
    outcome = audit(mistuned, context)
    assert outcome.report is not None and outcome.report.patch is not None
    assert len(outcome.report.patch.rule_ids) >= 3
    return outcome.report


def test_a_fallback_confirmation_spends_what_the_whole_patch_left_of_the_time_budget(
    context: AuditContext,
    mistuned: Workload,
) -> None:
    device = LossyDevice(lambda config: config.precision == "bf16")
    report = measured_report(mistuned, context, device)

    def clock() -> float:
        return 10.0 * len(device.configs)  # every run takes 10 s

    budget = TimeBudget(45.0, clock)
    settings = GoblinSettings(max_repeats=5, threshold=0.05, time_budget_s=45.0)
    confirmed = confirm_report(report, device, mistuned, settings, context.kb, budget)
    # screening run, two warm-ups and one round: 50 s since the budget started; counted
    # from the fallback's own start it would be 40 s and a second round would run
    assert confirmed.fallback is not None and confirmed.n_repeats == 1


class RunsOutOfMemory(MeasuredDevice):
    """Measured-looking runs that run out of memory without gradient checkpointing, though
    the fit guard predicted the patch fits."""

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        if not config.gradient_checkpointing:
            raise OutOfMemory("oom: HIP out of memory. Tried to allocate 20.00 GiB")
        return super().run(config, steps)


def test_after_an_out_of_memory_error_the_guarded_rule_is_dropped_first(
    context: AuditContext, workload: WorkloadFactory, kb: KnowledgeBase
) -> None:
    loaded = workload(QWEN_LORA_CHECKPOINTED_YAML)
    report = audit(loaded, context).report
    assert report is not None and report.patch is not None
    assert "checkpointing-off-when-it-fits" in report.patch.rule_ids
    first = next(candidates(loaded, report.patch, "oom: HIP out of memory", kb))
    assert first.dropped == "checkpointing-off-when-it-fits"
    (skip,) = [s for s in first.patch.skipped if s.rule_id == first.dropped]
    assert "ran out of memory" in skip.reason


def test_a_measured_patch_that_runs_out_of_memory_falls_back_without_the_hungry_change(
    context: AuditContext, workload: WorkloadFactory
) -> None:
    loaded = workload(QWEN_LORA_CHECKPOINTED_YAML)
    device = RunsOutOfMemory()
    outcome = audit(
        loaded,
        AuditContext(runner=device, projector=context.projector, kb=context.kb, backend="planner"),
    )
    failed = [
        e.data["error"]
        for e in outcome.events
        if e.type == "tool_result" and e.data["name"] == "benchmark" and not e.data["ok"]
    ]
    assert failed and "oom:" in failed[0]
    # the best candidate ran out of memory: the next-best one, with checkpointing, is judged
    report = outcome.report
    assert report is not None and report.patch is not None
    assert report.patch.new_config.gradient_checkpointing is True
    assert len(report.patch.changes) >= 2
    confirmed = confirm_report(report, device, loaded, SETTINGS, context.kb)
    assert confirmed.rejected is None and confirmed.speedup_ci is not None
