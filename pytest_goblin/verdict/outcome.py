"""Where pass/fail is decided for one workload: from a finished audit to its outcome.

The order is the whole policy, read top-down in :func:`settle`:

1. :func:`pytest_goblin.verdict.result.from_report` applies the bar rule
   (:mod:`pytest_goblin.verdict.rule`) to the report: passed, failed or inconclusive;
2. :func:`pytest_goblin.verdict.gates.judge` adds the workload's own gates — its budgets
   and a regression against a saved run — each of which can fail an item the bar passed;
3. a ``goblin: accept:`` block (:mod:`pytest_goblin.verdict.known_gaps`) turns a failure
   the team has accepted into an expected failure.

The pytest item (``pytest_goblin.plugin.items``) only carries the result out: it raises
the failure, or marks the xfail.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_goblin.agent.loop import AuditOutcome
from pytest_goblin.history import SavedRun
from pytest_goblin.schemas import Report, WorkloadResult
from pytest_goblin.verdict.gates import Failure, judge
from pytest_goblin.verdict.known_gaps import xfail_reason
from pytest_goblin.verdict.result import from_report
from pytest_goblin.workload.read import Workload


@dataclass
class Settled:
    """One workload's outcome: the result every report is made from, why the item fails
    when it does (``report.terminal.failure_message`` renders it), the xfail reason when an accepted gap covers the failure, and
    whether the bar rule alone failed it (a patch wins: ``--goblin-fix`` may write it)."""

    result: WorkloadResult
    failure: Failure | None
    xfail: str | None
    patch_wins: bool


def settle(
    nodeid: str,
    workload: Workload,
    outcome: AuditOutcome,
    report: Report,
    threshold: float,
    *,
    strict: bool,
    saved: SavedRun | None,
    compare_fail: float | None,
) -> Settled:
    """The item's outcome from the audit's report, its gates and its accepted gaps."""
    verdict = from_report(
        nodeid,
        workload,
        report,
        threshold,
        None if outcome.cached else outcome.usage,
        strict=strict,
    )
    verdict.cached = outcome.cached
    verdict.noise_floor = outcome.noise_floor
    result, failure = judge(verdict, workload.settings, saved, compare_fail)
    xfail = xfail_reason(result, result.accepted) if result.accepted is not None else None
    return Settled(result, failure, xfail, patch_wins=verdict.outcome == "failed")
