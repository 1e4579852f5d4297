"""From a Report to an item outcome: does the workload leave performance on the table?

speedup = patched tokens/s ÷ baseline tokens/s. The workload fails when a patch
beats the baseline by more than the threshold: speedup > 1 + threshold. When a
confidence interval is known, its lower bound is what must clear the bar.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_goblin.schemas import Outcome, Report


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str


def decide(report: Report, threshold: float) -> Verdict:
    """passed or failed for one audited workload."""
    bar = 1.0 + threshold
    label = "projected" if report.projected else "measured"
    if report.patch is None or not report.patch.changes:
        return Verdict("passed", f"no applicable patch ({label} {report.before.tokens_per_sec:,.0f} tok/s)")
    evidence = report.speedup_ci[0] if report.speedup_ci else report.speedup
    if evidence > bar:
        return Verdict(
            "failed",
            f"patch is {report.speedup:.2f}× faster ({label}), above the {bar:.2f}× threshold",
        )
    return Verdict(
        "passed",
        f"best patch is {report.speedup:.2f}× ({label}), within the {bar:.2f}× threshold",
    )
