"""How the audit's search candidates read, the same in the failure text, Markdown and HTML.

The search (``pytest_goblin.agent.backends.planner``) ranks every patched config
the matching rules allow; a report shows the best few, so that a reader sees
what the chosen patch was compared with (checkpointing off against a larger
micro-batch, say) and by how much it won.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pytest_goblin.schemas import SearchCandidate, WorkloadResult

TOP: Final = 3
"""Candidates shown; the chosen one is always among them (JSON has them all)."""


def shown(result: WorkloadResult) -> list[SearchCandidate]:
    """The best ``TOP`` candidates, best first, with the chosen one kept in; none when the
    search had nothing to compare (a single candidate is the patch itself)."""
    ranked = result.candidates
    if len(ranked) < 2:
        return []
    top = list(ranked[:TOP])
    chosen = next((c for c in ranked if c.chosen), None)
    if chosen is not None and chosen not in top:
        top[-1] = chosen
    return top


def heading(result: WorkloadResult) -> str:
    """``best 3 of 7 candidates``."""
    return f"best {len(shown(result))} of {len(result.candidates)} candidates"


def changes_text(candidate: SearchCandidate, others: Sequence[SearchCandidate] = ()) -> str:
    """What a candidate sets, as ``field=value`` pairs; with ``others`` (the candidates
    shown beside it) only what they do not all share, since the rest is in every one."""
    common = set.intersection(*(_pairs(c) for c in [candidate, *others])) if others else set()
    pairs = [(c.field, _value(c.new)) for c in candidate.changes]
    kept = [f"{field}={value}" for field, value in pairs if (field, value) not in common]
    if kept:
        return ", ".join(kept)
    return "only the shared changes" if common else "no change"


def shared_text(top: Sequence[SearchCandidate]) -> str:
    """The changes every shown candidate makes, as ``field=value`` pairs."""
    if not top:
        return ""
    common = set.intersection(*(_pairs(c) for c in top))
    return ", ".join(
        f"{c.field}={_value(c.new)}" for c in top[0].changes if (c.field, _value(c.new)) in common
    )


def figures_text(candidate: SearchCandidate) -> str:
    """``1.44× projected, peak 93.1 GB`` (``chosen`` appended for the judged one)."""
    speed = "-" if candidate.speedup is None else f"{candidate.speedup:.2f}×"
    how = "projected" if candidate.projected else "measured"
    peak = "" if candidate.peak_memory_gb is None else f", peak {candidate.peak_memory_gb:.1f} GB"
    return f"{speed} {how}{peak}" + (", chosen" if candidate.chosen else "")


def lines(result: WorkloadResult) -> Sequence[str]:
    """The candidates as indented text lines under a heading (empty without a search)."""
    top = shown(result)
    if not top:
        return []
    shared = shared_text(top)
    return (
        [f"candidates ({heading(result)}):"]
        + ([f"  all of them: {shared}"] if shared else [])
        + [f"  {figures_text(c)}: {changes_text(c, top)}" for c in top]
    )


def _pairs(candidate: SearchCandidate) -> set[tuple[str, str]]:
    return {(c.field, _value(c.new)) for c in candidate.changes}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "unset" if value is None else str(value)
