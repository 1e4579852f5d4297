"""Known gaps: a workload's ``goblin: accept:`` block turns a winning patch into an xfail.

A team that cannot take a patch yet (a kernel not released, a migration
planned) writes down the gap it accepts, why, until when, and how large it may
get::

    goblin:
      accept: {until: 2026-09-30, reason: "fp16 until ROCm 7.1", max_speedup: 1.4}

The acceptance holds through the ``until`` day. The gap *grows* when the
verdict's evidence — the speedup CI's lower bound when there is one, else the
speedup, the same number the verdict holds against the threshold — exceeds
``max_speedup``; noise inside the interval is not growth. While it holds, the
item is xfail; after the date or once the gap has grown, it fails again and
says which, naming the file and the field. It covers only the patch's gap: a
missed budget or a regression against a saved run still fails the item. Once
no patch beats the threshold (with confidence), a note says to remove it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pytest_goblin.schemas import Acceptance, WorkloadResult


@dataclass(frozen=True)
class Review:
    """What an acceptance does for one audited workload.

    ``holds``: a patch beats the workload and the acceptance covers that gap.
    ``problems``: why an acceptance does not cover a standing gap (expired,
    grown), each naming the file and the field. ``notes``: what the reports
    should say besides (the gap accepted, or an acceptance nothing needs).
    """

    holds: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def evidence(result: WorkloadResult) -> float | None:
    """The speedup the verdict judged: the CI's lower bound when known, else the speedup."""
    return result.speedup_ci[0] if result.speedup_ci else result.speedup


def review(result: WorkloadResult, acceptance: Acceptance | None, today: date) -> Review:
    """Whether ``acceptance`` turns this result's failure into an xfail on ``today``."""
    if acceptance is None or result.outcome not in ("passed", "failed"):
        return Review()
    if result.outcome == "passed":
        if result.inconclusive:
            return Review()
        expired = (
            f"it expired on {acceptance.until.isoformat()} and " if today > acceptance.until else ""
        )
        return Review(
            notes=[
                f"goblin.accept is no longer needed: {expired}no patch beats the "
                f"threshold; remove it from {result.path}"
            ]
        )
    problems = []
    if today > acceptance.until:
        problems.append(
            f"{result.path}: field 'goblin.accept.until': the acceptance expired on "
            f"{acceptance.until.isoformat()} and the gap still stands (accepted "
            f"because: {acceptance.reason})"
        )
    judged = evidence(result)
    if judged is not None and judged > acceptance.max_speedup:
        how = "its CI's lower bound" if result.speedup_ci else "the speedup"
        problems.append(
            f"{result.path}: field 'goblin.accept.max_speedup': the gap grew beyond "
            f"the accepted {acceptance.max_speedup:.2f}× ({how} is {judged:.2f}×)"
        )
    if problems:
        return Review(problems=problems)
    return Review(holds=True, notes=[f"accepted gap: {xfail_reason(result, acceptance)}"])


def xfail_reason(result: WorkloadResult, acceptance: Acceptance) -> str:
    """The xfail reason pytest shows: the team's reason, the date, and the gap's size."""
    speedup = "-" if result.speedup is None else f"{result.speedup:.2f}×"
    return (
        f"{acceptance.reason} (accepted until {acceptance.until.isoformat()}; "
        f"patch {speedup}, accepted up to {acceptance.max_speedup:.2f}×)"
    )
