"""Absolute budgets a workload asserts in its ``goblin:`` section.

``min_tokens_per_sec`` and ``min_mfu_pct`` are floors, ``max_hbm_peak_gb`` a
ceiling (held against the reserved peak where a GPU run measured one), all held against the baseline (the workload as written) on the device
the item ran on. Each is one number for every device, or a mapping from
catalogue device names (``mi300x``, ``h100``, …) to numbers, matched on the catalogue
key the device resolved to (``DeviceInfo.catalogue_key``); a device the mapping does not
name has no budget. The relative gate answers "is something
better?", a budget answers "is this good enough?" — pytest-benchmark users have
asked for the second one for years (ionelmc/pytest-benchmark#40).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.schemas import BudgetCheck, DeviceInfo, RunMetrics, WorkloadSettings

BudgetKey = Literal["min_tokens_per_sec", "min_mfu_pct", "max_hbm_peak_gb"]
BUDGET_KEYS: tuple[BudgetKey, ...] = ("min_tokens_per_sec", "min_mfu_pct", "max_hbm_peak_gb")
_METRIC: dict[str, str] = {
    "min_tokens_per_sec": "tokens_per_sec",
    "min_mfu_pct": "mfu_pct",
    "max_hbm_peak_gb": "hbm_peak_gb",
}
_UNIT: dict[str, str] = {
    "min_tokens_per_sec": " tok/s",
    "min_mfu_pct": "%",
    "max_hbm_peak_gb": " GB",
}


def device_matches(key: str, device: DeviceInfo) -> bool:
    """Whether a catalogue name denotes the device: the catalogue key it resolved to.

    A measured GPU is resolved from its arch, compute units and memory
    (``runner.devices.resolve_identity``), so ``h100`` applies to an H100 SXM whatever its
    driver calls it, and not to a GH200, an H100 PCIe or a MIG slice, whose names contain
    the same letters; a device that resolved to no entry has no per-device budget.
    """
    spec = get_device(key)
    if device.catalogue_key is None and device.kind == "simulated":
        return device.name == spec.display_name  # recorded before devices carried their key
    return device.catalogue_key == spec.name


def limit_for(budget: float | dict[str, float] | None, device: DeviceInfo) -> float | None:
    """The limit that applies on ``device``, or None when the budget does not name it."""
    if budget is None or isinstance(budget, (int, float)):
        return budget
    return next((limit for key, limit in budget.items() if device_matches(key, device)), None)


def check(
    settings: WorkloadSettings, baseline: RunMetrics, device: DeviceInfo
) -> list[BudgetCheck]:
    """Every budget that applies on this device and has a number to hold it against."""
    checks = []
    for key in BUDGET_KEYS:
        limit = limit_for(getattr(settings, key), device)
        value = budget_value(key, baseline)
        if limit is None or value is None:
            continue
        ok = value <= limit if key.startswith("max_") else value >= limit
        checks.append(BudgetCheck(key=key, limit=float(limit), value=float(value), ok=ok))
    return checks


def budget_value(key: BudgetKey, baseline: RunMetrics) -> float | None:
    """The figure a budget holds: for ``max_hbm_peak_gb`` on a GPU, the allocator's reserved
    peak, since that (not the allocated tensors) is what runs out; else the metric itself."""
    if key == "max_hbm_peak_gb" and baseline.hbm_reserved_peak_gb is not None:
        return max(baseline.hbm_reserved_peak_gb, baseline.hbm_peak_gb)
    return getattr(baseline, _METRIC[key])


def unchecked(settings: WorkloadSettings, baseline: RunMetrics, device: DeviceInfo) -> list[str]:
    """Budgets that apply here but have no number to check (MFU on a device of unknown peak)."""
    return [
        key
        for key in BUDGET_KEYS
        if limit_for(getattr(settings, key), device) is not None
        and getattr(baseline, _METRIC[key]) is None
    ]


def describe(check: BudgetCheck) -> str:
    """``min_tokens_per_sec: 10,733 tok/s, below the floor of 12,000 tok/s``."""
    unit = _UNIT[check.key]
    if check.ok:
        return f"{check.key}: {_number(check.value)}{unit} (budget {_number(check.limit)}{unit})"
    where = "above the ceiling" if check.key.startswith("max_") else "below the floor"
    return f"{check.key}: {_number(check.value)}{unit}, {where} of {_number(check.limit)}{unit}"


def misses(checks: Sequence[BudgetCheck]) -> list[BudgetCheck]:
    return [c for c in checks if not c.ok]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
