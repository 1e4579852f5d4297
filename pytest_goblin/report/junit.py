"""JUnit properties for ``--junitxml``: what ``record_property`` would add, per workload.

pytest's junitxml writes an item's ``user_properties`` as ``<property>``
elements of its ``<testcase>``, so CI systems that read JUnit show the numbers
next to the verdict. Names are a public contract (``goblin_*``); a property is
left out when the workload has no such number (an error has no speedup).
"""

from __future__ import annotations

from pytest_goblin.report.attribution_text import share_text
from pytest_goblin.schemas import ChangeAttribution, WorkloadResult


def properties(result: WorkloadResult) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs for one workload, in a stable order."""
    props: list[tuple[str, str | None]] = [
        ("goblin_outcome", result.outcome),
        ("goblin_reason", result.reason),
        ("goblin_device", result.device.name if result.device else None),
        ("goblin_projected", None if result.projected is None else str(result.projected).lower()),
        (
            "goblin_baseline_tokens_per_sec",
            _number(result.baseline.tokens_per_sec) if result.baseline else None,
        ),
        (
            "goblin_patched_tokens_per_sec",
            _number(result.patched.tokens_per_sec) if result.patched and result.patch else None,
        ),
        ("goblin_speedup", None if result.speedup is None else f"{result.speedup:.4f}"),
        ("goblin_speedup_ci_low", f"{result.speedup_ci[0]:.4f}" if result.speedup_ci else None),
        ("goblin_speedup_ci_high", f"{result.speedup_ci[1]:.4f}" if result.speedup_ci else None),
        ("goblin_rules", ",".join(rule.id for rule in result.rules) or None),
        ("goblin_error", result.error),
        ("goblin_accepted_until", result.accepted.until.isoformat() if result.accepted else None),
        ("goblin_accepted_reason", result.accepted.reason if result.accepted else None),
    ]
    props += [(f"goblin_attribution_{entry.field}", _share(entry)) for entry in result.attribution]
    for check in result.budgets:
        props.append(
            (
                f"goblin_budget_{check.key}",
                f"{_number(check.value)} {'ok' if check.ok else 'missed'} "
                f"(limit {_number(check.limit)})",
            )
        )
    if result.history is not None:
        props.append(("goblin_history_status", result.history.status))
        if result.history.change_pct is not None:
            props.append(("goblin_history_change_pct", f"{result.history.change_pct:.2f}"))
        if result.history.change_ci_pct is not None:
            low, high = result.history.change_ci_pct
            props.append(("goblin_history_change_ci_pct", f"{low:.2f},{high:.2f}"))
        props.append(("goblin_history_regressed", str(result.history.regressed).lower()))
    return [(name, value) for name, value in props if value not in (None, "")]


def _number(value: float) -> str:
    return f"{value:.1f}"


def _share(entry: ChangeAttribution) -> str:
    """The change's share of the gain as a fraction (``0.9234``; 1.0 is all of it), or, when
    it has none, why, as the failure text says it (``not measured (time budget)``, …)."""
    if entry.contribution is None:
        return share_text(entry)
    return f"{entry.contribution + 0.0:.4f}"  # + 0.0: no "-0.0000"
