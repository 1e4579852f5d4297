"""What fails an audited item besides a winning patch: its budgets and a regression.

The verdict (``verdict.decide``) asks whether a patch beats the workload. On top
of it a workload can miss an absolute budget from its ``goblin:`` section, and
its baseline can have dropped below a saved run by more than
``--goblin-compare-fail``. Each of these fails the item itself, with the numbers,
so JUnit and every report show which workload regressed — not only the session.
The other way round, a gap its ``goblin.accept`` block accepts (``accept``)
keeps a winning patch from failing the item.

This module decides; it renders nothing. A failing item comes back with a
:class:`Failure` (which of the gates failed it), and the report layer turns that into
the text pytest shows (``pytest_goblin.report.terminal.failure_message``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pytest_goblin import history
from pytest_goblin.history import SavedRun
from pytest_goblin.schemas import BudgetCheck, WorkloadResult, WorkloadSettings
from pytest_goblin.verdict import budgets
from pytest_goblin.verdict import known_gaps as accept


@dataclass(frozen=True)
class Failure:
    """Why a judged item fails, beyond what its result records (the missed budgets and
    the regression are in ``result.budgets`` and ``result.history``)."""

    patch_wins: bool
    """The bar rule failed it: a patch beats the workload and no acceptance covers that."""
    accept_problems: tuple[str, ...] = ()
    """Why a ``goblin.accept`` block no longer covers the gap (expired, exceeded)."""


def judge(
    result: WorkloadResult,
    settings: WorkloadSettings,
    saved: SavedRun | None,
    fail_pct: float | None,
    today: date | None = None,
) -> tuple[WorkloadResult, Failure | None]:
    """The result with its budgets and history filled in, and why it fails if it does.

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
            f"budget {key} not checked: the baseline has no such number on {device_name(result)}"
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
    return judged, Failure(patch_wins, tuple(gap.problems)) if reasons else None


def device_name(result: WorkloadResult) -> str:
    """The device as a failure names it: ``mi300x (simulated)``, ``AMD Instinct MI300X``."""
    if result.device is None:
        return "unknown device"
    suffix = " (simulated)" if result.device.kind == "simulated" else ""
    return result.device.name + suffix
