"""Small, dependency-free statistics for paired throughput comparisons.

Baseline and patched are measured in alternating windows (A B A B …), so
window i of each arm saw the same drift. The speedup is the ratio of median
tokens/s, and its confidence interval comes from a paired bootstrap: windows
are resampled as pairs, which keeps the drift shared. The bootstrap is
seeded, so the same samples always give the same interval (a CI gate must
not flip on a re-run of the same numbers).

Windows of one run are not independent of each other: a neighbour that
hogs the machine for the length of a run slows every window of it alike. So
when the pairs come from several rounds (``rounds``), the bootstrap is
two-stage (Davison & Hinkley, *Bootstrap Methods and their Application*,
§3.8): it resamples rounds first, then pairs within each chosen round. A
disturbance that hit one round then widens the interval instead of passing
for a confident effect, and rounds that agree keep it narrow.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 20261124


@dataclass(frozen=True)
class SpeedupEstimate:
    """patched ÷ baseline throughput, with how sure we are of it."""

    speedup: float
    ci: tuple[float, float]
    n: int
    cv_baseline: float
    cv_patched: float


def cv(samples: Sequence[float]) -> float:
    """Coefficient of variation (stdev ÷ mean); 0 for fewer than two samples."""
    if len(samples) < 2:
        return 0.0
    mean = statistics.fmean(samples)
    return statistics.stdev(samples) / mean if mean else math.inf


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values, q in [0, 1]."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def paired_speedup(
    baseline: Sequence[float],
    patched: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    rounds: Sequence[int] | None = None,
) -> SpeedupEstimate:
    """Ratio of medians with a paired-bootstrap percentile interval.

    ``baseline[i]`` and ``patched[i]`` are tokens/s of the i-th window pair;
    ``rounds[i]``, when given, is the round (pair of runs) it came from, and
    makes the bootstrap two-stage. With a single pair the interval is the
    point: there is no spread to use.
    """
    if len(baseline) != len(patched):
        raise ValueError(f"paired samples differ in length ({len(baseline)} vs {len(patched)})")
    if not baseline:
        raise ValueError("no samples")
    if min(baseline) <= 0 or min(patched) <= 0:
        raise ValueError("throughput samples must be positive")
    if rounds is not None and len(rounds) != len(baseline):
        raise ValueError(f"{len(rounds)} round labels for {len(baseline)} pairs")
    point = statistics.median(patched) / statistics.median(baseline)
    n = len(baseline)
    if n == 1:
        ci = (point, point)
    else:
        rng = random.Random(seed)
        clusters = _clusters(rounds or [0] * n)
        ratios = []
        for _ in range(resamples):
            picks = _resample(clusters, rng)
            ratios.append(
                statistics.median(patched[i] for i in picks)
                / statistics.median(baseline[i] for i in picks)
            )
        ratios.sort()
        tail = (1.0 - confidence) / 2
        ci = (_percentile(ratios, tail), _percentile(ratios, 1.0 - tail))
    return SpeedupEstimate(
        speedup=point, ci=ci, n=n, cv_baseline=cv(baseline), cv_patched=cv(patched)
    )


def _clusters(rounds: Sequence[int]) -> list[list[int]]:
    """The pair indexes of each round, in the order rounds first appear."""
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(rounds):
        groups.setdefault(label, []).append(index)
    return list(groups.values())


def _resample(clusters: list[list[int]], rng: random.Random) -> list[int]:
    """One bootstrap draw of pair indexes: as many rounds as there are, drawn with
    replacement, and within each drawn round as many of its pairs, drawn with replacement
    (a single round is the plain paired bootstrap)."""
    chosen = (
        clusters
        if len(clusters) == 1
        else [clusters[rng.randrange(len(clusters))] for _ in clusters]
    )
    return [members[rng.randrange(len(members))] for members in chosen for _ in members]


def independent_ratio(
    before: Sequence[float],
    after: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, tuple[float, float]]:
    """``median(after) ÷ median(before)`` for samples from two separate sessions, with a
    bootstrap percentile interval that resamples each side on its own.

    Windows of two sessions have no pairing (no shared drift), so unlike
    ``paired_speedup`` each side is drawn independently. The interval only
    knows each session's own spread; a slowdown of the whole machine between
    the sessions is not in it (which is what a saved run is compared for).
    """
    if not before or not after:
        raise ValueError("no samples")
    if min(before) <= 0 or min(after) <= 0:
        raise ValueError("throughput samples must be positive")
    point = statistics.median(after) / statistics.median(before)
    if len(before) == 1 and len(after) == 1:
        return point, (point, point)
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(after, k=len(after)))
        / statistics.median(rng.choices(before, k=len(before)))
        for _ in range(resamples)
    )
    tail = (1.0 - confidence) / 2
    return point, (_percentile(ratios, tail), _percentile(ratios, 1.0 - tail))


def noise_band(estimate: SpeedupEstimate) -> float:
    """Half-width of an A/A interval around 1: the smallest effect worth claiming."""
    low, high = estimate.ci
    return max(1.0 - low, high - 1.0, 0.0)
