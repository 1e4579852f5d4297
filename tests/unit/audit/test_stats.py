"""The paired statistics behind verdicts, pinned on synthetic samples."""

from __future__ import annotations

import random

import pytest

from pytest_goblin.audit.stats import cv, independent_ratio, noise_band, paired_speedup


def noisy(rng: random.Random, level: float, n: int, spread: float = 0.05) -> list[float]:
    return [level * rng.lognormvariate(0.0, spread) for _ in range(n)]


def test_speedup_is_the_ratio_of_medians() -> None:
    estimate = paired_speedup([100, 110, 90], [200, 180, 220])
    assert estimate.speedup == pytest.approx(2.0)


def test_the_interval_brackets_the_point() -> None:
    rng = random.Random(1)
    estimate = paired_speedup(noisy(rng, 100, 12), noisy(rng, 130, 12))
    low, high = estimate.ci
    assert low <= estimate.speedup <= high


def test_the_same_samples_always_give_the_same_interval() -> None:
    rng = random.Random(2)
    base, patched = noisy(rng, 100, 10), noisy(rng, 120, 10)
    assert paired_speedup(base, patched).ci == paired_speedup(base, patched).ci


def test_a_single_pair_has_its_point_as_interval() -> None:
    estimate = paired_speedup([100.0], [150.0])
    assert estimate.ci == (1.5, 1.5)
    assert estimate.n == 1


def test_more_noise_gives_a_wider_interval() -> None:
    rng = random.Random(3)
    quiet = paired_speedup(noisy(rng, 100, 12, 0.01), noisy(rng, 100, 12, 0.01))
    loud = paired_speedup(noisy(rng, 100, 12, 0.10), noisy(rng, 100, 12, 0.10))
    assert loud.ci[1] - loud.ci[0] > quiet.ci[1] - quiet.ci[0]


def test_pairing_cancels_drift_shared_by_both_arms() -> None:
    drift = [100 * (1 + 0.05 * i) for i in range(10)]
    estimate = paired_speedup(drift, [1.2 * d for d in drift])
    assert estimate.ci == pytest.approx((1.2, 1.2))


def test_the_95_percent_interval_covers_the_true_ratio_in_most_experiments() -> None:
    rng = random.Random(4)
    covered = 0
    experiments = 100
    for _ in range(experiments):
        estimate = paired_speedup(noisy(rng, 100, 15), noisy(rng, 125, 15), resamples=500)
        covered += estimate.ci[0] <= 1.25 <= estimate.ci[1]
    assert covered / experiments >= 0.85


def test_coefficient_of_variation_per_side() -> None:
    estimate = paired_speedup([90.0, 110.0], [100.0, 100.0])
    assert estimate.cv_patched == 0.0
    assert estimate.cv_baseline == pytest.approx(cv([90.0, 110.0]))
    assert cv([5.0]) == 0.0


def test_unpaired_or_empty_or_non_positive_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_speedup([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no samples"):
        paired_speedup([], [])
    with pytest.raises(ValueError, match="positive"):
        paired_speedup([0.0], [1.0])


def test_noise_band_is_the_a_a_interval_half_width_around_one() -> None:
    rng = random.Random(5)
    estimate = paired_speedup(noisy(rng, 100, 12, 0.03), noisy(rng, 100, 12, 0.03))
    band = noise_band(estimate)
    assert band == pytest.approx(max(1 - estimate.ci[0], estimate.ci[1] - 1))
    assert 0 < band < 0.1


def rounds_of(
    levels: list[float], rng: random.Random, windows: int = 5
) -> tuple[list[float], list[float], list[int]]:
    """A/A-like pairs: per round, the baseline near 100 and the patch near ``level``."""
    base: list[float] = []
    patched: list[float] = []
    labels: list[int] = []
    for index, level in enumerate(levels):
        base += noisy(rng, 100, windows, 0.01)
        patched += noisy(rng, level, windows, 0.01)
        labels += [index] * windows
    return base, patched, labels


def test_a_disturbance_in_some_rounds_only_leaves_the_interval_open_when_rounds_are_known() -> None:
    base, patched, labels = rounds_of([130, 130, 100, 130], random.Random(6))
    by_window = paired_speedup(base, patched)
    by_round = paired_speedup(base, patched, rounds=labels)
    assert by_window.ci[0] > 1.10  # five windows of one run taken as five independent samples
    assert by_round.ci[0] < 1.02


def test_rounds_that_agree_keep_the_interval_narrow() -> None:
    base, patched, labels = rounds_of([125, 125, 125], random.Random(7))
    low, high = paired_speedup(base, patched, rounds=labels).ci
    assert 1.2 < low <= high < 1.3


def test_one_round_is_the_plain_paired_bootstrap() -> None:
    base, patched, labels = rounds_of([120], random.Random(8))
    assert paired_speedup(base, patched, rounds=labels) == paired_speedup(base, patched)


def test_round_labels_must_match_the_pairs() -> None:
    with pytest.raises(ValueError, match="2 round labels for 3 pairs"):
        paired_speedup([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], rounds=[0, 1])


# --- two separate sessions (saved runs) -------------------------------------------------


def test_the_independent_ratio_is_after_over_before_medians_with_a_bracketing_interval() -> None:
    point, (low, high) = independent_ratio([100.0, 110.0, 90.0], [80.0, 88.0, 72.0, 81.0])
    assert point == pytest.approx(80.5 / 100.0)
    assert low <= point <= high


def test_the_independent_interval_is_the_point_for_one_window_each() -> None:
    assert independent_ratio([100.0], [90.0]) == (0.9, (0.9, 0.9))


def test_the_independent_interval_widens_with_either_side_s_noise() -> None:
    steady = [100.0, 101.0, 99.0, 100.5, 99.5, 100.0]
    noisy = [70.0, 130.0, 95.0, 120.0, 80.0, 105.0]

    def width(before: list[float], after: list[float]) -> float:
        _, (low, high) = independent_ratio(before, after)
        return high - low

    assert width(steady, noisy) > 5 * width(steady, steady)
    assert width(noisy, steady) > 5 * width(steady, steady)


def test_the_95_percent_independent_interval_covers_the_true_ratio_in_most_experiments() -> None:
    rng = random.Random(7)
    covered = 0
    for _ in range(40):
        before = [rng.gauss(1000.0, 30.0) for _ in range(12)]
        after = [rng.gauss(900.0, 30.0) for _ in range(12)]
        _, (low, high) = independent_ratio(before, after, resamples=500)
        covered += low <= 0.9 <= high
    assert covered >= 33


def test_independent_samples_must_be_present_and_positive() -> None:
    with pytest.raises(ValueError, match="no samples"):
        independent_ratio([], [1.0])
    with pytest.raises(ValueError, match="positive"):
        independent_ratio([1.0, 0.0], [1.0])
