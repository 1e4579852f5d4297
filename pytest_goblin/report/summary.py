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
