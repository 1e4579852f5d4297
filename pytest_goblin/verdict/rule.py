"""From a Report to an item outcome: does the workload leave performance on the table?

speedup = patched tokens/s ÷ baseline tokens/s. The workload fails when a patch
beats the baseline by more than the threshold: speedup > 1 + threshold. When a
confidence interval is known, its lower bound is what must clear the bar, and an
interval that straddles the bar is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pytest_goblin.schemas import Outcome, Report

Position = Literal["above", "below", "straddles"]


def position(low: float, high: float, threshold: float) -> Position:
    """Where a speedup interval [low, high] lies against the bar 1 + threshold.

    The one bar rule: ``above`` when even the lower bound beats the bar (the patch
    wins), ``below`` when the upper bound does not exceed it (a point exactly on the bar
    is not above it), ``straddles`` otherwise. The verdict (:func:`decide`) and the
    confirm loop's stopping rule (``pytest_goblin.audit.confirm.classify``) both call it.
    """
    bar = 1.0 + threshold
    if low > bar:
        return "above"
    if high <= bar:
        return "below"
    return "straddles"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    inconclusive: bool = False


def decide(report: Report, threshold: float, strict: bool = False) -> Verdict:
    """passed or failed for one audited workload, and whether the evidence was inconclusive.

    With a confidence interval (measured runs): failed when its lower bound is
    above 1 + threshold, passed when its upper bound is below; an interval that
    straddles the bar passes with a warning, or fails under ``strict``. A
    projected report has no noise: its interval is its point.
    """
    bar = 1.0 + threshold
    label = "projected" if report.projected else "measured"
    if report.patch is None or not report.patch.changes:
        return Verdict(
            "passed", f"no applicable patch ({label} {report.before.tokens_per_sec:,.0f} tok/s)"
        )
    if report.rejected:
        return Verdict("passed", f"patch rejected: {report.rejected}")
    low, high = report.speedup_ci or (report.speedup, report.speedup)
    shown = f"{report.speedup:.2f}×" + (f" [{low:.2f}, {high:.2f}]" if low != high else "")
    where = position(low, high, threshold)
    if where == "above":
        return Verdict(
            "failed", f"patch is {shown} faster ({label}), above the {bar:.2f}× threshold"
        )
    if where == "below":
        return Verdict(
            "passed", f"best patch is {shown} ({label}), within the {bar:.2f}× threshold"
        )
    if strict:
        return Verdict(
            "failed",
            f"patch is {shown} ({label}): the interval straddles the "
            f"{bar:.2f}× threshold (--goblin-strict)",
            inconclusive=True,
        )
    return Verdict(
        "passed",
        f"inconclusive: patch is {shown} ({label}), the interval straddles "
        f"the {bar:.2f}× threshold",
        inconclusive=True,
    )
