"""Detection of a known slowdown: the baseline sleeps 30% of its step, the patch does not.

The sleep goes in through the worker's fault hook (``PYTEST_GOBLIN_FAULT=sleep=S:name=slow``);
prints how many of N comparisons fail as they should (target: at least 95%).

    python benchmarks/detection.py [--comparisons 50] [--steps 20] [--slowdown 0.3]
"""

from __future__ import annotations

import argparse
import time

from paired_runs import SLOW, TINY, comparisons, print_outliers, step_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--slowdown", type=float, default=0.3)
    args = parser.parse_args()
    started = time.monotonic()
    step = step_time(args.steps)
    sleep = args.slowdown * step / (1 - args.slowdown)
    env = {"PYTEST_GOBLIN_FAULT": f"sleep={sleep:.5f}:name=slow"}
    results = comparisons(SLOW, TINY, args.comparisons, args.steps, env)
    missed = [r for r in results if r.decision != "failed"]
    detected = len(results) - len(missed)
    print(
        f"detection of a {args.slowdown:.0%} slowdown (sleep {1e3 * sleep:.1f} ms on a "
        f"{1e3 * step:.1f} ms step): {detected} of {len(results)} = "
        f"{detected / len(results):.0%} (target >= 95%); took "
        f"{time.monotonic() - started:.0f} s"
    )
    print_outliers("missed", missed)


if __name__ == "__main__":
    main()
