"""Shared by the verdict benchmarks: paired comparisons of a tiny Llama on the CPU runner.

Each comparison starts fresh workers and runs ``confirm`` with the default threshold
and repeats, exactly as a measured audit settles its verdict.
"""

from __future__ import annotations

import os

from pytest_goblin.audit.confirm import Confirmation, SamplingPolicy, confirm
from pytest_goblin.plugin.settings import DEFAULT_MAX_REPEATS, DEFAULT_THRESHOLD
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.schemas import WorkloadConfig

TINY = WorkloadConfig(
    name="fast",
    model={
        "layers": 2,
        "hidden": 128,
        "intermediate": 344,
        "heads": 4,
        "kv_heads": 2,
        "vocab": 1024,
    },
    batch_size=2,
    seq_len=256,
    precision="fp32",
    attention_impl="sdpa",
    optimizer="adamw_torch_fused",
    dataloader_workers=0,
    lr=1e-3,
)
SLOW = TINY.model_copy(update={"name": "slow"})


def comparisons(
    baseline: WorkloadConfig, patched: WorkloadConfig, count: int, steps: int, env: dict[str, str]
) -> list[Confirmation]:
    """``count`` independent paired comparisons (fresh workers each), as confirmed."""
    os.environ.update(env)
    policy = SamplingPolicy(threshold=DEFAULT_THRESHOLD, max_rounds=DEFAULT_MAX_REPEATS)
    decisions = []
    for _ in range(count):
        session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=2))
        try:
            runner = session.runner_for()
            decisions.append(confirm(runner, baseline, patched, steps, policy))
        finally:
            session.close()
    for key in env:
        os.environ.pop(key, None)
    return decisions


def print_outliers(label: str, results: list[Confirmation]) -> None:
    """The evidence behind each result the target counts against, one per line."""
    for index, result in enumerate(results):
        print(f"  {label} #{index + 1}: {result.reason}")


def step_time(steps: int, runs: int = 3) -> float:
    """The step time of TINY: the fastest of ``runs`` runs, since another process on the
    machine only ever slows a run down (``timeit``'s reasoning), and the injected sleep
    must be a fraction of the undisturbed step."""
    session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=2))
    try:
        runner = session.runner_for()
        return min(runner.run(TINY, steps).step_time_s for _ in range(runs))
    finally:
        session.close()
