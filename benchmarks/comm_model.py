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

    python benchmarks/comm_model.py [--steps 8] [--repeats 2] [--cases ddp,fsdp]

Needs at least 2 CPU cores; it uses all of them for a few tens of seconds per case.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.runner.distributed import launch, unsupported_reason
from pytest_goblin.runner.training import RunRequest
from pytest_goblin.schemas import WorkloadConfig

ARCH = {"layers": 2, "hidden": 256, "intermediate": 512, "heads": 4, "kv_heads": 2, "vocab": 4096}
"""About 2.9 M parameters: 11 MB of fp32 gradients per all-reduce, a few hundred ms of
compute per step on one core, so both sides of the share are well above timer noise."""

BASE: dict[str, Any] = {
    "model": ARCH,
    "world_size": 2,
    "batch_size": 4,
    "seq_len": 64,
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
