"""--goblin-attribution under --goblin-time-budget: measured attribution shares the workload's
budget with the verdict, starts no pair once it is spent, and says which changes it left
unmeasured in every report."""

from __future__ import annotations

import pytest

from helpers.sample_results import run_info
from helpers.workloads import MeasuredDevice
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.attribution import attribute, with_attribution
from pytest_goblin.audit.run import audit_workload
from pytest_goblin.audit.timebudget import TimeBudget
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.report import html, markdown
from pytest_goblin.report.json_report import build
from pytest_goblin.report.junit import properties
from pytest_goblin.report.terminal import failure_text
from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import ChangeAttribution, Report, RunMetrics, WorkloadConfig
from pytest_goblin.verdict import result as results
from pytest_goblin.workload.read import Workload

RUN_S = 10.0
"""Seconds of the fake clock that one run of the timed device takes."""

LATE = ["optimizer", "dataloader_workers", "dataloader_persistent_workers"]
"""The mistuned patch's changes whose turn comes after two pairs (four runs)."""


class Clock:
    """A clock that moves only when the timed device runs something."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedDevice(MeasuredDevice):
    """A measured-looking device on which every run takes ``RUN_S`` of the fake clock; it
    records what it was asked to run."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.projector = SimulatedDevice("mi300x")
        self.configs: list[WorkloadConfig] = []

    def unsupported(self, config: WorkloadConfig) -> str | None:
        return None

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.clock.now += RUN_S
        self.configs.append(config)
        return super().run(config, steps)


class TimedSession:
    """A device session whose every workload runs on one timed device."""

    def __init__(self, device: TimedDevice) -> None:
        self.device = device

    def runner_for(self, device: str | None = None, settings: object = None) -> TimedDevice:
        return self.device


def measured_report(workload: Workload, context: AuditContext) -> Report:
    """The planner's report for the workload, labelled measured (attribution then runs pairs)."""
    outcome = audit(workload, context)
    assert outcome.report is not None and outcome.report.patch is not None
    return outcome.report.model_copy(update={"projected": False})


def started(seconds: float | None, clock: Clock) -> TimeBudget:
    budget = TimeBudget(seconds, clock)
    budget.start()
    return budget


def by_field(entries: list[ChangeAttribution]) -> dict[str, ChangeAttribution]:
    return {entry.field: entry for entry in entries}


@pytest.fixture
def cut_short(mistuned: Workload, context: AuditContext, kb: KnowledgeBase) -> Report:
    """The mistuned workload's measured report, attributed with time for two pairs only."""
    clock = Clock()
    report = measured_report(mistuned, context)
    return with_attribution(
        report, mistuned.config, TimedDevice(clock), kb, 0.05, started(25, clock)
    )


def test_no_pair_is_started_once_the_budget_is_spent(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    clock = Clock()
    device = TimedDevice(clock)
    entries = by_field(
        attribute(
            measured_report(mistuned, context),
            mistuned.config,
            device,
            kb,
            0.05,
            started(25, clock),
        )
    )
    assert len(device.configs) == 4  # two pairs: 20 s < 25 s, then 40 s >= 25 s
    assert [f for f, e in entries.items() if e.not_measured == "time_budget"] == LATE
    assert all(entries[f].contribution is not None for f in ("precision", "attention_impl"))


def test_a_change_left_unmeasured_has_no_figure_and_says_why(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    clock = Clock()
    entries = by_field(
        attribute(
            measured_report(mistuned, context),
            mistuned.config,
            TimedDevice(clock),
            kb,
            0.05,
            started(25, clock),
        )
    )
    optimizer = entries["optimizer"]
    assert optimizer.speedup_without is None and optimizer.contribution is None
    assert optimizer.note == (
        "not measured: the workload's time budget (--goblin-time-budget "
        "25 s, shared with the verdict's sampling) was spent before its "
        "turn"
    )


def test_the_shares_measured_in_time_are_those_an_unlimited_budget_gives(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    report = measured_report(mistuned, context)
    clock = Clock()
    limited = by_field(
        attribute(report, mistuned.config, TimedDevice(clock), kb, 0.05, started(25, clock))
    )
    unlimited = by_field(
        attribute(report, mistuned.config, TimedDevice(Clock()), kb, 0.05, started(None, Clock()))
    )
    assert all(e.not_measured is None for e in unlimited.values())
    for field in ("precision", "attention_impl"):
        assert limited[field] == unlimited[field]


def test_a_single_change_patch_needs_no_run_and_keeps_its_whole_share_when_out_of_time(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    report = measured_report(mistuned, context)
    assert report.patch is not None
    single = report.patch.model_copy(update={"changes": report.patch.changes[:1]})
    clock = Clock()
    budget = started(1, clock)
    clock.now = 100.0
    device = TimedDevice(clock)
    [entry] = attribute(
        report.model_copy(update={"patch": single}), mistuned.config, device, kb, 0.05, budget
    )
    assert device.configs == []
    assert entry.contribution == 1.0 and entry.not_measured is None


def test_projected_attribution_ignores_a_spent_budget(
    mistuned: Workload,
    context: AuditContext,
    kb: KnowledgeBase,
) -> None:
    clock = Clock()
    budget = started(1, clock)
    clock.now = 100.0
    report = audit(mistuned, context).report
    assert report is not None and report.projected
    attributed = with_attribution(report, mistuned.config, TimedDevice(clock), kb, 0.05, budget)
    assert all(
        e.speedup_without is not None and e.not_measured is None for e in attributed.attribution
    )


def audited_on(
    clock: Clock, mistuned: Workload, kb: KnowledgeBase, budget_s: float | None
) -> Report:
    """The plugin's audit of the mistuned workload on the timed device, with attribution."""
    settings = GoblinSettings(backend="planner", attribution=True, time_budget_s=budget_s)
    outcome = audit_workload(
        mistuned,
        TimedSession(TimedDevice(clock)),  # type: ignore[arg-type]
        settings,
        kb,
        clock=clock,
    )
    assert outcome.report is not None
    return outcome.report


def test_attribution_measures_with_what_the_verdict_left_of_the_budget(
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    # the verdict's four rounds (two ABBA blocks) take 80 s of the 90; attribution's first
    # pair starts inside the budget and ends at 100 s
    report = audited_on(Clock(), mistuned, kb, budget_s=90)
    assert report.n_repeats == 4
    entries = by_field(report.attribution)
    assert entries["precision"].contribution is not None
    assert [f for f, e in entries.items() if e.not_measured == "time_budget"] == [
        "attention_impl",
        *LATE,
    ]


def test_a_verdict_that_spent_the_whole_budget_leaves_attribution_nothing(
    mistuned: Workload,
    kb: KnowledgeBase,
) -> None:
    report = audited_on(Clock(), mistuned, kb, budget_s=15)
    assert report.n_repeats == 1  # the verdict read the same clock: out of time after 20 s
    assert all(e.not_measured == "time_budget" for e in report.attribution)


def test_without_a_budget_every_change_is_measured(mistuned: Workload, kb: KnowledgeBase) -> None:
    report = audited_on(Clock(), mistuned, kb, budget_s=None)
    assert all(e.contribution is not None for e in report.attribution)


def test_the_failure_text_marks_each_late_change_and_sums_up_the_rest(
    mistuned: Workload,
    cut_short: Report,
) -> None:
    text = failure_text(results.from_report("w::w", mistuned, cut_short, 0.10))
    assert (
        "  optimizer: adamw_torch -> adamw_torch_fused  [fused-adamw]  not measured (time budget)"
    ) in text.splitlines()
    [how] = [line for line in text.splitlines() if line.startswith("  The shares add up to ")]
    assert how.endswith(
        "% of the speedup; optimizer, dataloader_workers, "
        "dataloader_persistent_workers were not measured: the time budget ran "
        "out."
    )


def test_the_markdown_and_html_reports_mark_each_late_change(
    mistuned: Workload,
    cut_short: Report,
) -> None:
    result = results.from_report("w::w", mistuned, cut_short, 0.10)
    page = markdown.render([result], run_info(result))
    row = next(line for line in page.splitlines() if line.startswith("| `optimizer`"))
    assert "| not measured (time budget) | not measured: the workload's time budget" in row
    assert "were not measured: the time budget ran out." in page
    assert '<td class="num">not measured (time budget)</td>' in html.render(
        [result], run_info(result)
    )


def test_the_json_entry_of_a_late_change_names_the_time_budget(
    mistuned: Workload,
    cut_short: Report,
) -> None:
    result = results.from_report("w::w", mistuned, cut_short, 0.10)
    document = build([result], result.device, "planner", 0.10, fake=False)
    entries = {e["field"]: e for e in document["workloads"][0]["attribution"]}
    assert entries["optimizer"]["not_measured"] == "time_budget"
    assert entries["optimizer"]["contribution"] is None
    assert entries["precision"]["not_measured"] is None


def test_junit_gives_each_change_its_share_or_why_it_has_none(
    mistuned: Workload,
    cut_short: Report,
) -> None:
    props = dict(properties(results.from_report("w::w", mistuned, cut_short, 0.10)))
    assert float(props["goblin_attribution_precision"]) > 0.9
    assert props["goblin_attribution_optimizer"] == "not measured (time budget)"


def test_a_budget_without_a_limit_is_never_spent() -> None:
    clock = Clock()
    budget = started(None, clock)
    clock.now = 1e9
    assert not budget.spent()


def test_a_budget_counts_from_its_first_start() -> None:
    clock = Clock()
    budget = started(30, clock)
    clock.now = 20.0
    budget.start()
    clock.now = 30.0
    assert budget.spent()
