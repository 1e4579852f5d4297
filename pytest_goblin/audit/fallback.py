"""Falling back to part of a patch when the whole patch does not train correctly.

A patch is a set of rules applied together. When its measured run fails the
loss check (fp16 overflow, a diverging loss), usually one rule is to blame and
the others are still a real win that the user should hear about. The harness,
not the model, retries: it drops one rule at a time, numerics first (precision
rules are what overflow), screens each smaller patch with one patched run
against the baseline's losses, and hands the first one that trains correctly
back to be confirmed by paired rounds like any patch. When the patched run ran
out of memory the memory-hungry rules (those with a fit guard, then the memory
category) are dropped first instead: the fit guard predicted that they fit, and
the device said otherwise. The cost is bounded by the number of rules in the
patch; the report says what was dropped and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.kb.schema import expected_range
from pytest_goblin.schemas import Patch, SkippedRule
from pytest_goblin.workload.read import Workload, apply_changes, patch_diff

NUMERICS_FIRST = ("precision", "compile", "kernels", "attention", "optimizer")
"""Categories whose rules change the arithmetic, most likely to break training first."""
MEMORY_FIRST = ("memory", "lora")
"""Categories whose rules use more memory, most likely behind an out-of-memory error."""


def out_of_memory(problem: str) -> bool:
    """Whether a rejection is an out-of-memory error (``OutOfMemory`` messages of measured runs start with
    ``oom:``; a projected one says ``projected OOM``)."""
    return "oom:" in problem.lower() or "out of memory" in problem.lower()


@dataclass(frozen=True)
class Candidate:
    """The patch without one of its rules."""

    dropped: str
    patch: Patch


def without_rule(
    workload: Workload, patch: Patch, rule_id: str, reason: str, kb: KnowledgeBase
) -> Patch | None:
    """``patch`` minus the changes of ``rule_id``, with its config and diff rebuilt;
    None when nothing is left or the smaller patch is not a valid config."""
    changes = [change for change in patch.changes if change.rule_id != rule_id]
    if not changes:
        return None
    try:
        new_config = apply_changes(workload.config, changes)
        diff = patch_diff(workload, changes) if patch.diff else ""
    except ValueError:  # pydantic's ValidationError is a ValueError too
        return None
    kept = [rule_id_ for rule_id_ in patch.rule_ids if rule_id_ != rule_id]
    low, high = expected_range([kb.get(rid) for rid in kept if rid in kb])
    return patch.model_copy(
        update={
            "new_config": new_config,
            "changes": changes,
            "rule_ids": kept,
            "diff": diff,
            "rationale": [r for r in patch.rationale if r.rule_id != rule_id],
            "skipped": [*patch.skipped, SkippedRule(rule_id=rule_id, reason=reason)],
            "expected_speedup_low": low,
            "expected_speedup_high": high,
        }
    )


def candidates(
    workload: Workload, patch: Patch, problem: str, kb: KnowledgeBase
) -> Iterator[Candidate]:
    """Each one-rule-smaller patch worth trying, later rules first within a rank: numerics
    first, or after an out-of-memory error the memory-hungry rules first."""
    rules = list(dict.fromkeys(change.rule_id for change in patch.changes))
    if len(rules) < 2:
        return
    oom = out_of_memory(problem)
    first = MEMORY_FIRST if oom else NUMERICS_FIRST

    def order(item: tuple[int, str]) -> tuple[int, int, int]:
        position, rule_id = item
        rule = kb.get(rule_id) if rule_id in kb else None
        category = rule.category if rule else ""
        guarded = 0 if oom and rule is not None and rule.fits is not None else 1
        rank = first.index(category) if category in first else len(first)
        return guarded, rank, -position

    for _, rule_id in sorted(enumerate(rules), key=order):
        smaller = without_rule(
            workload,
            patch,
            rule_id,
            f"dropped: the whole patch ran out of memory ({problem})"
            if oom
            else f"dropped: the whole patch failed the loss check ({problem})",
            kb,
        )
        if smaller is not None:
            yield Candidate(rule_id, smaller)
