"""What fails an audited item besides a winning patch: its budgets and a regression.

The verdict (``verdict.decide``) asks whether a patch beats the workload. On top
of it a workload can miss an absolute budget from its ``goblin:`` section, and
its baseline can have dropped below a saved run by more than
``--goblin-compare-fail``. Each of these fails the item itself, with the numbers,
so JUnit and every report show which workload regressed — not only the session.
The other way round, a gap its ``goblin.accept`` block accepts (``accept``)
keeps a winning patch from failing the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pytest_goblin import history
from pytest_goblin.history import SavedRun
from pytest_goblin.report.terminal import failure_text
from pytest_goblin.schemas import BudgetCheck, WorkloadResult, WorkloadSettings
from pytest_goblin.verdict import budgets
from pytest_goblin.verdict import known_gaps as accept


def judge(
    result: WorkloadResult,
    settings: WorkloadSettings,
    saved: SavedRun | None,
    fail_pct: float | None,
    today: date | None = None,
) -> tuple[WorkloadResult, str | None]:
    """The result with its budgets and history filled in, and the failure message if it fails.

    A gap that ``goblin.accept`` accepts on ``today`` (default: the local date)
    fails nothing: the result comes back with ``accepted`` set, and the item is
    xfail unless a budget or a regression fails it.
    """
    gap = accept.review(result, settings.accept, today or date.today())
    patch_wins = result.outcome == "failed" and not gap.holds
    checks: list[BudgetCheck] = []
    unchecked: list[str] = []
    comparison = None
    if result.baseline is not None and result.device is not None:
        checks = budgets.check(settings, result.baseline, result.device)
        unchecked = budgets.unchecked(settings, result.baseline, result.device)
        comparison = history.compare(saved, result, fail_pct) if saved else None
    reasons = [result.reason, *gap.problems] if patch_wins else []
    reasons += [f"budget {budgets.describe(c)}" for c in budgets.misses(checks)]
    if comparison is not None and comparison.regressed:
        reasons.append(f"regression: {comparison.reason}")
    notes = (
        result.notes
        + gap.notes
        + [
            f"budget {key} not checked: the baseline has no such number on {_device(result)}"
            for key in unchecked
        ]
    )
    judged = result.model_copy(
        update={
            "budgets": checks,
            "notes": notes,
            "history": comparison,
            "outcome": "failed" if reasons else result.outcome,
            "reason": "; ".join(reasons) if reasons else result.reason,
            "accepted": settings.accept if gap.holds and not reasons else None,
        }
    )
    return judged, failure_message(judged, patch_wins, gap.problems) if reasons else None


def failure_message(
    result: WorkloadResult, patch_wins: bool, accept_problems: Sequence[str] = ()
) -> str:
    """Why an acceptance no longer covers the gap, the patch's failure text (when it wins),
    then each missed budget, then the regression."""
    blocks = ["\n".join(accept_problems)] if accept_problems else []
    blocks += [failure_text(result)] if patch_wins else []
    where = f"{'projected' if result.projected else 'measured'} on {_device(result)}"
    missed = budgets.misses(result.budgets)
    if missed:
        lines = [f"{result.name}: misses {len(missed)} budget(s) of its goblin: section ({where})"]
        lines += [f"  {budgets.describe(check)}" for check in missed]
        blocks.append("\n".join(lines))
    comparison = result.history
    if comparison is not None and comparison.regressed:
        commit = f" at commit {comparison.saved_commit[:8]}" if comparison.saved_commit else ""
        # the first line is what pytest's short summary shows: it carries the change
        change = "" if comparison.change_pct is None else f" ({comparison.change_pct:+.1f}%)"
        blocks.append(
            f"{result.name}: regressed against saved run {comparison.run}{commit}"
            f"{change}:\n  {comparison.reason}"
        )
    return "\n\n".join(blocks)


def _device(result: WorkloadResult) -> str:
    if result.device is None:
        return "unknown device"
    suffix = " (simulated)" if result.device.kind == "simulated" else ""
    return result.device.name + suffix
