"""A/A false fails: the same config as baseline and "patch", measured for real.

Prints how many of N A/A comparisons fail at the default threshold (target: 0 of 50).

    python benchmarks/aa_false_fail.py [--comparisons 50] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

from paired_runs import TINY, comparisons, print_outliers

from pytest_goblin.plugin.settings import DEFAULT_THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    started = time.monotonic()
    results = comparisons(TINY, TINY, args.comparisons, args.steps, {})
    failed = [r for r in results if r.decision == "failed"]
    inconclusive = sum(r.inconclusive for r in results)
    print(
        f"A/A: {len(failed)} false fails of {len(results)} at threshold "
        f"{DEFAULT_THRESHOLD:.0%} (target 0 of 50), {inconclusive} passed as inconclusive; "
        f"took {time.monotonic() - started:.0f} s"
    )
    print_outliers("false fail", failed)


if __name__ == "__main__":
    main()
