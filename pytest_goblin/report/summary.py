"""What the Markdown and HTML reports share: the run's context and its counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadResult

if TYPE_CHECKING:
    from pytest_goblin.plugin.xdist_gpus import GpuWorkers

OUTCOME_ORDER = ("failed", "error", "accepted", "inconclusive", "passed", "skipped")
OUTCOME_WORDS = {
    "failed": "failed",
    "error": "errors",
    "accepted": "accepted",
    "inconclusive": "inconclusive",
    "passed": "passed",
    "skipped": "skipped",
}


@dataclass(frozen=True)
class RunInfo:
    """What a report says about the run as a whole, beside its workloads."""

    device: DeviceInfo | None
    backend: str
    threshold: float
    projected: bool
    compared_with: str | None = None
    parallel: GpuWorkers | None = None
    """xdist workers spread over GPUs (a measured run under ``-n``), else None."""


def device_label(device: DeviceInfo | None) -> str:
    if device is None:
        return "unknown device"
    return f"{device.name} (simulated)" if device.kind == "simulated" else device.name


def verdict_key(result: WorkloadResult) -> str:
    """The outcome a reader should see: ``accepted`` for a gap its ``goblin.accept`` covers
    (xfail), ``inconclusive`` for a pass without confidence, else the outcome itself."""
    if result.accepted is not None:
        return "accepted"
    if result.inconclusive and result.outcome == "passed":
        return "inconclusive"
    return result.outcome


def counts_text(results: Sequence[WorkloadResult]) -> str:
    """``3 failed, 2 passed`` in pytest's order; ``no workloads`` for none."""
    keys = [verdict_key(r) for r in results]
    outcomes = [*OUTCOME_ORDER, *sorted(set(keys) - set(OUTCOME_ORDER))]
    parts = []
    for outcome in outcomes:
        count = keys.count(outcome)
        if count:
            word = OUTCOME_WORDS.get(outcome, outcome)
            parts.append(f"{count} {'error' if word == 'errors' and count == 1 else word}")
    return ", ".join(parts) or "no workloads"


def numbers_text(info: RunInfo) -> str:
    """What the numbers are: projected by the model or measured, and where."""
    how = "projected by the analytic model" if info.projected else "measured"
    return f"{how} on {device_label(info.device)}"


def parallel_text(info: RunInfo) -> str | None:
    """The terminal's line for xdist workers outnumbering their GPUs (benchmarks took
    turns, so a reader weighing the numbers should know); None otherwise."""
    spread = info.parallel
    return spread.summary_line() if spread is not None and spread.shared else None


def speedup_text(result: WorkloadResult) -> str:
    """``1.33×`` or ``1.33× (CI 1.20–1.45)``; ``-`` without a speedup."""
    if result.speedup is None:
        return "-"
    text = f"{result.speedup:.2f}×"
    if result.speedup_ci:
        text += f" (CI {result.speedup_ci[0]:.2f}–{result.speedup_ci[1]:.2f})"
    return text


def patched_tokens(result: WorkloadResult) -> float | None:
    """The patched throughput, shown only when there was a patch to measure."""
    return result.patched.tokens_per_sec if result.patched and result.patch else None


def tokens_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def failing(results: Sequence[WorkloadResult]) -> list[WorkloadResult]:
    """The workloads a reader must look at: failed, then errored."""
    return [r for r in results if r.outcome == "failed"] + [
        r for r in results if r.outcome == "error"
    ]


def show_value(value: Any) -> str:
    """A config value as the workload file spells it: ``true``, ``bf16``, ``unset`` for None."""
    if value is None:
        return "unset"
    return value if isinstance(value, str) else json.dumps(value)


def mfu_text(value: float | None) -> str:
    """MFU in percent, or ``unknown`` where the device's peak is not known."""
    return "unknown" if value is None else f"{value:.1f}%"


def ranks_text(metrics: RunMetrics) -> str:
    """How many ranks ran, ``shrunk`` when fewer than the workload's (every report says
    so, as it says an extrapolation), the exposed communication and per-rank peaks; empty
    for a one-rank run."""
    if metrics.world_size == 1 and metrics.shrunk_from_world_size is None:
        return ""
    parts = [
        f"shrunk: measured on {metrics.world_size} of {metrics.shrunk_from_world_size} ranks"
        if metrics.shrunk_from_world_size is not None
        else f"{metrics.world_size} ranks"
    ]
    if metrics.comm_share is not None:
        parts.append(f"exposed communication {metrics.comm_share:.0%} of the step")
    if metrics.rank_peak_memory_gb:
        peaks = "/".join(f"{gb:.2f}" for gb in metrics.rank_peak_memory_gb)
        parts.append(f"per-rank peak {peaks} GB")
    return ", ".join(parts)


TELEMETRY = (("clock_mhz", "clock", "MHz"), ("power_w", "power", "W"), ("temp_c", "temp", "°C"))
"""The per-window readings a measured run may carry (``RunMetrics.window_telemetry``), in
the order the run details show them, with their label and unit."""


def run_details(result: WorkloadResult) -> list[str]:
    """The parts of a measured workload's "run details" line, which every report shows: the
    catalogue key the device resolved to, then for each arm the attention kernel that ran,
    the allocated / reserved / device-level memory peaks, the fp16 steps GradScaler skipped
    and the range of the clock, power and temperature readings taken at window boundaries.

    A part that was not measured is left out (the CPU has no reserved or device peak and no
    telemetry), so an empty list means nothing to show; a projected run has none of these.
    Allocated memory alone is already in the metrics, so it only appears next to the others.
    """
    if result.baseline is None or result.baseline.projected:
        return []
    parts = []
    if result.device is not None and result.device.catalogue_key:
        parts.append(f"device key {result.device.catalogue_key}")
    arms = [("baseline", result.baseline)]
    if result.patched is not None and result.patch is not None:
        arms.append(("patched", result.patched))
    for label, metrics in arms:
        arm = _arm_details(metrics)
        if arm:
            parts.append(f"{label}: {', '.join(arm)}")
    return parts


def run_details_text(result: WorkloadResult) -> str:
    """:func:`run_details` as one line; empty when there is nothing to show."""
    return "; ".join(run_details(result))


def _arm_details(metrics: RunMetrics) -> list[str]:
    parts = []
    if metrics.attention_backend:
        parts.append(f"attention {metrics.attention_backend}")
    if metrics.hbm_reserved_peak_gb is not None or metrics.hbm_device_peak_gb is not None:
        peaks = [f"{metrics.hbm_peak_gb:.2f} allocated"]
        if metrics.hbm_reserved_peak_gb is not None:
            peaks.append(f"{metrics.hbm_reserved_peak_gb:.2f} reserved")
        if metrics.hbm_device_peak_gb is not None:
            peaks.append(f"{metrics.hbm_device_peak_gb:.2f} device")
        parts.append(f"peak memory {' / '.join(peaks)} GB")
    if metrics.skipped_steps > 0:
        plural = "s" if metrics.skipped_steps != 1 else ""
        parts.append(f"{metrics.skipped_steps} fp16 step{plural} skipped")
    readings = [reading for reading in metrics.window_telemetry if reading]
    ranges = []
    for key, label, unit in TELEMETRY:
        values = [reading[key] for reading in readings if key in reading]
        if values:
            low, high = min(values), max(values)
            span = f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}–{high:.0f}"
            ranges.append(f"{label} {span} {unit}")
    if ranges:
        plural = "s" if len(readings) != 1 else ""
        parts.append(f"{', '.join(ranges)} ({len(readings)} reading{plural})")
    return parts
