"""How often the measured verdict is wrong, on the CPU torch runner.

Two figures, each from real paired measurements of a tiny Llama model:

- false fails: A/A comparisons (the same config as baseline and "patch"): how many fail
  at the default threshold (target: 0 of 50);
- detection: the baseline is slowed by a sleep per step worth 30% of its step time
  (worker fault hook ``PYTEST_GOBLIN_FAULT=sleep=S:name=slow``), the "patch" is the same
  config without it: how many comparisons fail as they should (target: at least 95%).

Prints figures; asserts nothing.

    python benchmarks/verdict_reliability.py [--comparisons 50] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import time

from pytest_goblin.confirm import SamplingPolicy, confirm
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.session import DeviceSession
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.settings import DEFAULT_MAX_REPEATS, DEFAULT_THRESHOLD

TINY = WorkloadConfig(
    name="fast",
    model={"layers": 2, "hidden": 128, "intermediate": 344, "heads": 4, "kv_heads": 2,
           "vocab": 1024},
    batch_size=2, seq_len=256, precision="fp32", attention_impl="sdpa",
    optimizer="adamw_torch_fused", dataloader_workers=0, lr=1e-3,
)
SLOW = TINY.model_copy(update={"name": "slow"})


def comparisons(baseline: WorkloadConfig, patched: WorkloadConfig, count: int, steps: int,
                env: dict[str, str]) -> list[str]:
    """The decision of ``count`` independent paired comparisons (fresh workers each)."""
    os.environ.update(env)
    policy = SamplingPolicy(threshold=DEFAULT_THRESHOLD, max_rounds=DEFAULT_MAX_REPEATS)
    decisions = []
    for _ in range(count):
        session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=2))
        try:
            runner = session.runner_for()
            decisions.append(confirm(runner, baseline, patched, steps, policy).decision)
        finally:
            session.close()
    for key in env:
        os.environ.pop(key, None)
    return decisions


def step_time(steps: int) -> float:
    session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=2))
    try:
        return session.runner_for().run(TINY, steps).step_time_s
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    started = time.monotonic()
    aa = comparisons(TINY, TINY, args.comparisons, args.steps, {})
    false_fails = aa.count("failed")
    print(f"A/A: {false_fails} false fails of {len(aa)} at threshold {DEFAULT_THRESHOLD:.0%} "
          f"(target 0 of 50); decisions {sorted(set(aa))}")
    step = step_time(args.steps)
    sleep = 0.3 * step / 0.7  # the baseline spends 30% of its step sleeping
    env = {"PYTEST_GOBLIN_FAULT": f"sleep={sleep:.5f}:name=slow"}
    injected = comparisons(SLOW, TINY, args.comparisons, args.steps, env)
    detected = injected.count("failed")
    print(f"detection of a 30% slowdown (sleep {1e3 * sleep:.1f} ms on a {1e3 * step:.1f} ms "
          f"step): {detected} of {len(injected)} = {detected / len(injected):.0%} "
          "(target >= 95%)")
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
