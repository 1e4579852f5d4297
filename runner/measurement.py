"""From what a worker measured to the RunMetrics a report shows.

A worker returns raw timings (``Measurement``): seconds, steps and tokens per
timed window, the loss of every step, the peak memory. This module, on the
pytest side, turns them into RunMetrics: tokens/s per window (``samples``),
step time, MFU against the catalogue's dense bf16 peak (the analytic model's
convention, so that MFU figures compare across precisions), and, when fewer
layers than the model has were run, the full model's step time extrapolated
from two depths and labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_goblin.catalogue.devices import DeviceSpec, get_device, resolve_identity
from pytest_goblin.runner.analytic import AnalyticModel, config_hash
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WasteBudget, WorkloadConfig


@dataclass(frozen=True)
class Measurement:
    """One run of ``layers`` decoder blocks, as the worker timed it."""

    layers: int
    warmup_steps: int
    window_steps: list[int]  # optimizer steps per timed window
    window_seconds: list[float]  # wall (device) seconds per window
    window_tokens: list[int]  # tokens consumed per window
    losses: list[float]  # every step, warmup included
    peak_memory_gb: float
    compile_time_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    drain_steps: int = 0  # untimed steps after warmup that consumed the prefetched batches
    peak_reserved_gb: float | None = None  # the allocator's reserved peak (GPU)
    peak_device_gb: float | None = None  # device-level use, sampled at window boundaries
    attention_backend: str | None = None  # the attention kernel the run's shapes got
    skipped_steps: int = 0  # fp16 optimizer steps GradScaler skipped inside the windows
    window_telemetry: list[dict[str, float]] = field(default_factory=list)  # per boundary
    world_size: int = 1  # ranks that ran (runner/distributed.py); tokens are summed over them
    rank_peak_memory_gb: list[float] = field(default_factory=list)  # per rank, multi-rank runs
    comm_share: float | None = None  # exposed communication / step time, multi-rank runs

    @property
    def step_time_s(self) -> float:
        return sum(self.window_seconds) / sum(self.window_steps)

    @property
    def tokens_per_step(self) -> int:
        return sum(self.window_tokens) // sum(self.window_steps)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(**data)


def catalogue_spec(info: DeviceInfo) -> tuple[DeviceSpec | None, list[str]]:
    """The catalogue entry whose peaks apply to a live device, and notes on the choice.

    A GPU is identified by its arch, compute units, memory and clock
    (``devices.resolve_identity``), never by its marketing name; a part of a listed chip
    (a partition, a MIG slice) gets that chip's peaks scaled, and a GPU of an unlisted
    arch has no peak, so its MFU is unknown. A CPU is held against the catalogue's generic
    CPU, a placeholder that says so in the run's warnings.
    """
    if info.kind == "cpu":
        spec = get_device("cpu")
        return spec, [
            f"MFU is against the catalogue's generic CPU peak "
            f"({spec.peak_tflops['bf16']:g} TFLOP/s bf16), a placeholder, not this CPU's"
        ]
    identity = resolve_identity(info)
    return identity.spec(), list(identity.notes)


def run_metrics(
    config: WorkloadConfig,
    runs: list[Measurement],
    info: DeviceInfo,
    shrunk_from: int | None = None,
) -> RunMetrics:
    """RunMetrics of ``config`` from one full-depth run, or two shallower ones.

    With two runs (depths a < b) the time per layer is their difference over
    b - a, and each window of the deeper run is extended by that much per
    missing layer; peak memory is extrapolated the same way. ``config`` is what
    ran; ``shrunk_from`` is the workload's world_size when it ran on fewer ranks.
    """
    deep = runs[-1]
    full_layers = config.arch.layers
    window_times = [s / n for s, n in zip(deep.window_seconds, deep.window_steps)]  # s/step
    step_time = deep.step_time_s
    peak = deep.peak_memory_gb
    reserved, device_peak = deep.peak_reserved_gb, deep.peak_device_gb
    warnings = list(deep.warnings)
    extrapolated_from: list[int] = []
    if len(runs) == 2:
        shallow = runs[0]
        depth = deep.layers - shallow.layers
        per_layer_s = (deep.step_time_s - shallow.step_time_s) / depth
        if per_layer_s <= 0:
            warnings.append(
                f"{shallow.layers} and {deep.layers} layers ran at the same speed "
                "within noise: the per-layer time is taken as zero"
            )
            per_layer_s = 0.0
        per_layer_gb = max(0.0, (deep.peak_memory_gb - shallow.peak_memory_gb) / depth)
        missing = full_layers - deep.layers
        window_times = [t + missing * per_layer_s for t in window_times]
        step_time += missing * per_layer_s
        peak += missing * per_layer_gb
        if reserved is not None and shallow.peak_reserved_gb is not None:
            reserved += missing * max(0.0, (reserved - shallow.peak_reserved_gb) / depth)
        device_peak = None  # another process's share cannot be extrapolated
        extrapolated_from = [shallow.layers, deep.layers]
        warnings.append(
            f"step time and peak memory extrapolated to {full_layers} layers from "
            f"runs of {shallow.layers} and {deep.layers} layers"
        )
    if shrunk_from is not None:
        warnings.append(
            f"shrunk: measured on {deep.world_size} of the workload's {shrunk_from} ranks "
            "(--goblin-max-world-size), same per-device batch and strategy; tokens/s and "
            f"per-rank memory are those of {deep.world_size} ranks"
        )
    tokens_per_step = deep.tokens_per_step
    tokens_per_sec = tokens_per_step / step_time
    spec, notes = catalogue_spec(info)
    warnings.extend(notes)
    return RunMetrics(
        steps=sum(deep.window_steps),
        tokens_per_sec=tokens_per_sec,
        step_time_s=step_time,
        tokens_per_step=tokens_per_step,
        hbm_peak_gb=peak,
        mfu_pct=None if spec is None else AnalyticModel(spec).mfu_pct(config, tokens_per_sec),
        projected=False,
        runner_kind="torch",
        device=info.name,
        config_hash=config_hash(config),
        samples=[tokens_per_step / t for t in window_times],
        losses=deep.losses,
        warnings=warnings,
        warmup_steps=deep.warmup_steps,
        compile_time_s=deep.compile_time_s,
        extrapolated_from_layers=extrapolated_from,
        attention_backend=deep.attention_backend,
        hbm_reserved_peak_gb=reserved,
        hbm_device_peak_gb=device_peak,
        skipped_steps=deep.skipped_steps,
        window_telemetry=deep.window_telemetry,
        world_size=deep.world_size,
        shrunk_from_world_size=shrunk_from,
        rank_peak_memory_gb=deep.rank_peak_memory_gb,
        comm_share=deep.comm_share,
        waste_budget=_measured_waste(step_time, deep.comm_share),
    )


def _measured_waste(step_time: float, comm_share: float | None) -> WasteBudget:
    """The split of a measured step that the run itself shows: a multi-rank run's
    exposed communication (the step minus its compute-only twin, ``comm_share``) is the
    ``comm_excess`` bucket, so collective rules see a measured symptom; the rest of the
    step is not split further on a measured run and counts as ``useful_gpu``. A
    single-rank run shows no split (the analytic model's projection holds the others)."""
    if comm_share is None:
        return WasteBudget()
    share = min(max(comm_share, 0.0), 1.0)
    return WasteBudget(useful_gpu=step_time * (1 - share), comm_excess=step_time * share)
