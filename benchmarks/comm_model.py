"""The analytic model's communication terms against measured 2-rank runs on the CPU.

Each case is a tiny decoder trained by 2 gloo ranks through the measured path multi-rank
workloads take (``runner/distributed.py``: torch's elastic launcher, DDP or FSDP2
``fully_shard``). The measured exposed communication is ``comm_share`` x step time, where
``comm_share = 1 - compute-only step / full step`` (the compute-only steps skip gradient
synchronisation); the projected one is the analytic model's ``comm_excess`` on the
catalogue's CPU device. Printed per case: measured and projected step time, comm share and
comm seconds, and the ratio of measured to projected comm seconds, the check of the model's
all-reduce / all-gather terms (``INTERCONNECT_GBS["cpu"]``, ``COLLECTIVE_*_LATENCY_S``,
the DDP bucket and ``find_unused_parameters`` costs). The GPU rows of those constants
cannot be checked on a CPU.

First, gloo's all-reduce alone (2 ranks, nothing else running in them): the latency of a
one-element all-reduce and the bus bandwidth (``2 (n-1)/n`` x bytes / time) of one the
size of the DDP cases' gradients, what ``INTERCONNECT_GBS`` and the latency constants
stand for. On a shared host the training rows also carry the ranks' contention for the
cores (a rank descheduled while its peer waits shows as communication).

    python benchmarks/comm_model.py [--steps 8] [--repeats 2] [--cases ddp,fsdp,fsdp-accum2]

Needs at least 2 CPU cores; it uses all of them for a few tens of seconds per case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import (
    COLLECTIVE_BASE_LATENCY_S,
    COLLECTIVE_STEP_LATENCY_S,
    INTERCONNECT_GBS,
    AnalyticModel,
)
from pytest_goblin.runner.distributed import launch, unsupported_reason
from pytest_goblin.runner.training import RunRequest
from pytest_goblin.schemas import WorkloadConfig

ARCH = {"layers": 2, "hidden": 256, "intermediate": 512, "heads": 4, "kv_heads": 2, "vocab": 4096}
"""About 3.3 M parameters: 13 MB of fp32 gradients per step; with 32 tokens per rank the
compute is tens of ms per step on one core, so communication is a large share of the step
and stands out of the noise of a shared host."""

BASE: dict[str, Any] = {
    "model": ARCH,
    "world_size": 2,
    "batch_size": 1,
    "seq_len": 32,
    "precision": "fp32",
    "optimizer": "adamw_torch",
}

CASES: dict[str, dict[str, Any]] = {
    "ddp": {"strategy": "ddp", "ddp_find_unused_parameters": False},
    "ddp-find-unused": {"strategy": "ddp", "ddp_find_unused_parameters": True},
    "ddp-bucket-1mb": {
        "strategy": "ddp",
        "ddp_find_unused_parameters": False,
        "ddp_bucket_cap_mb": 1,
    },
    "fsdp": {"strategy": "fsdp"},
    # two micro-batches per step: FSDP2 all-gathers in each one's forward and backward and
    # reduce-scatters once (the first micro-batch runs under set_requires_gradient_sync(False))
    "fsdp-accum2": {"strategy": "fsdp", "grad_accum_steps": 2},
}


@dataclass
class Row:
    case: str
    measured_step_s: float
    measured_share: float
    projected_step_s: float
    projected_share: float

    @property
    def measured_comm_s(self) -> float:
        return self.measured_share * self.measured_step_s

    @property
    def projected_comm_s(self) -> float:
        return self.projected_share * self.projected_step_s


def _probe_rank(rank: int, store: str, elements: int, reps: int, out: str) -> None:
    """One rank of the all-reduce probe: the median and the best seconds of a 1-element
    and of an ``elements``-element all-reduce, written by rank 0 to ``out``."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        timings = []
        for size in (1, elements):
            tensor = torch.ones(size)
            for _ in range(3):
                dist.all_reduce(tensor)
            samples = []
            for _ in range(reps):
                dist.barrier()
                start = time.perf_counter()
                dist.all_reduce(tensor)
                samples.append(time.perf_counter() - start)
            timings += [statistics.median(samples), min(samples)]
        if rank == 0:
            Path(out).write_text(" ".join(str(t) for t in timings))
    finally:
        dist.destroy_process_group()


@dataclass
class Probe:
    """gloo all-reduce on 2 ranks: a 1-element one's seconds and a gradient-sized one's bus
    bandwidth, median and best of the samples (the best is the uncontended figure on a
    shared host)."""

    latency_s: float
    best_latency_s: float
    bus_gbs: float
    best_bus_gbs: float


def probe_all_reduce(gradient_bytes: int, reps: int = 30) -> Probe:
    """Time gloo's all-reduce alone, 2 forked ranks of one thread each."""
    with tempfile.TemporaryDirectory(prefix="comm-probe-") as tmp:
        store, out = os.path.join(tmp, "store"), os.path.join(tmp, "out")
        mp.start_processes(
            _probe_rank,
            args=(store, gradient_bytes // 4, reps, out),
            nprocs=2,
            start_method="fork",
        )
        latency, best_latency, big, best_big = (float(t) for t in Path(out).read_text().split())
    bus_bytes = 2 * (2 - 1) / 2 * gradient_bytes  # a ring all-reduce's bytes per rank
    return Probe(latency, best_latency, bus_bytes / big / 1e9, bus_bytes / best_big / 1e9)


def measure(config: WorkloadConfig, steps: int, repeats: int) -> tuple[float, float]:
    """Median step time and comm share of ``repeats`` launches of ``config``."""
    steps_s, shares = [], []
    for seed in range(repeats):
        request = RunRequest(config=config, steps=steps, warmup=2, sample_cost_s=0.0, seed=seed)
        result = launch(request, torch.device("cpu"))
        if result.comm_share is None:
            raise RuntimeError(f"{config.name}: the run reported no comm share")
        steps_s.append(result.step_time_s)
        shares.append(result.comm_share)
    return statistics.median(steps_s), statistics.median(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per case (median)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = parser.parse_args()
    model = AnalyticModel(get_device("cpu"))
    rows = []
    started = time.perf_counter()
    ddp = WorkloadConfig(**BASE, **CASES["ddp"])
    gradient_bytes = ddp.arch.total_params * 4  # fp32 gradients of every parameter
    probe = probe_all_reduce(gradient_bytes)
    latency = COLLECTIVE_BASE_LATENCY_S["cpu"] + 2 * COLLECTIVE_STEP_LATENCY_S["cpu"]
    print(
        f"gloo all-reduce alone, 2 ranks, median (best) of 30: 1 element "
        f"{probe.latency_s * 1e6:.0f} us ({probe.best_latency_s * 1e6:.0f}), model "
        f"{latency * 1e6:.0f} us; {gradient_bytes / 1e6:.1f} MB at {probe.bus_gbs:.2f} GB/s "
        f"({probe.best_bus_gbs:.2f}) bus bandwidth, model {INTERCONNECT_GBS['cpu']:g} GB/s"
    )
    for case in args.cases.split(","):
        config = WorkloadConfig(name=case, **BASE, **CASES[case])
        reason = unsupported_reason(config, torch.device("cpu"))
        if reason:
            raise SystemExit(f"{case}: {reason}")
        step_s, share = measure(config, args.steps, args.repeats)
        budget = model.step_budget(config)
        rows.append(Row(case, step_s, share, budget.total, budget.comm_excess / budget.total))
    print(f"2 gloo ranks, torch {torch.__version__}, {args.steps} timed steps, ", end="")
    print(f"median of {args.repeats} runs; comm in ms per step")
    header = (
        f"{'case':<17}{'meas. step':>11}{'share':>7}{'comm':>8}"
        f"{'proj. step':>12}{'share':>7}{'comm':>8}{'meas/proj':>11}"
    )
    print(header)
    for row in rows:
        ratio = row.measured_comm_s / row.projected_comm_s if row.projected_comm_s else float("nan")
        print(
            f"{row.case:<17}{row.measured_step_s * 1e3:>9.0f}ms{row.measured_share:>7.2f}"
            f"{row.measured_comm_s * 1e3:>8.1f}{row.projected_step_s * 1e3:>10.0f}ms"
            f"{row.projected_share:>7.2f}{row.projected_comm_s * 1e3:>8.1f}{ratio:>10.2f}x"
        )
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
