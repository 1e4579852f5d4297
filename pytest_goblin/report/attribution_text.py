"""How a per-change attribution reads, the same in the failure text, Markdown and HTML.

One phrase per change ("92% of the gain (1.18× without it)") and one
sentence on how the shares add up. Shares of the log-speedup
(``pytest_goblin.audit.attribution``) add up to 100% when the changes act
independently; further off than ``INTERACTION_TOLERANCE`` they interact, and
the sentence says so rather than letting the numbers look like a partition.
A change left unmeasured because ``--goblin-time-budget`` ran out reads "not
measured (time budget)", and the sentence names it: its missing share is not
a share of zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_goblin.schemas import ChangeAttribution

INTERACTION_TOLERANCE = 0.10
"""Shares that add up to within this of 100% count as independent changes."""


def share_text(entry: ChangeAttribution) -> str:
    """The change's share and what the patch gets without it; when there is no figure, why:
    not measured (the time budget, or another reason the note gives) or not separable."""
    if entry.speedup_without is None:
        if entry.not_measured == "time_budget":
            return "not measured (time budget)"
        if entry.not_measured is not None:
            return "not measured"
        return "not separable" if entry.note.startswith("not separable") else "-"
    without = (
        "without it"
        if not entry.together_with
        else f"without it and {', '.join(entry.together_with)}"
    )
    figure = f"{entry.speedup_without:.2f}× {without}"
    if entry.contribution is None:
        return figure
    share = round(entry.contribution, 2) + 0.0  # no "-0%" for a share that rounds to nothing
    return f"{share:.0%} of the gain ({figure})"


def heading(entries: Sequence[ChangeAttribution]) -> str:
    """What the figures are: ``projected, leave-one-out`` or ``measured, leave-one-out``."""
    label = "projected" if entries and entries[0].projected else "measured"
    return f"{label}, leave-one-out"


def summary(entries: Sequence[ChangeAttribution]) -> str | None:
    """One sentence on how the shares add up, or None for fewer than two entries, or when
    no change has a share and none is missing one for the time budget."""
    shares = [e.contribution for e in entries if e.contribution is not None]
    late = [e.field for e in entries if e.not_measured == "time_budget"]
    if len(entries) < 2 or not (shares or late):
        return None
    missing = [e.field for e in entries if e.contribution is None and e.field not in late]
    gaps = [f"{_they(missing, 'has', 'have')} no share"] if missing else []
    if late:
        gaps.append(f"{_they(late, 'was', 'were')} not measured: the time budget ran out")
    if not shares:
        return f"No change has a share; {'; '.join(gaps)}."
    text = f"The shares add up to {sum(shares):.0%} of the speedup"
    if gaps:
        return f"{text}; {'; '.join(gaps)}."
    if any(e.together_with for e in entries):
        return (
            f"{text}; they overlap where a change is left out together with the changes "
            "that need it."
        )
    if abs(sum(shares) - 1.0) <= INTERACTION_TOLERANCE:
        return f"{text}: the changes act independently."
    return (
        f"{text}, not 100%: the changes interact, so each share is what leaving that change "
        "out alone costs with all the others in place."
    )


def _they(fields: Sequence[str], one: str, many: str) -> str:
    """The fields, then the verb that agrees with how many there are."""
    return f"{', '.join(fields)} {one if len(fields) == 1 else many}"
