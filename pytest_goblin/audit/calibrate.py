"""The noise floor: ``--goblin-calibrate`` runs a baseline against itself (A/A).

Two runs of the same config should be equally fast; how far apart they come
out is the noise a verdict has to see through. Once per physical device and
test run, the first workload audited there has its baseline config measured in
paired rounds against itself, exactly as a verdict measures baseline against
patch; xdist workers that reach the same device share that floor
(``pytest_goblin.plugin.shared_floors``).
The A/A interval's half-width around 1 is the noise band: a threshold below
it asks the gate to see differences it cannot tell from noise, so such a
workload errors with the figures instead of flaking.

The minimum detectable effect is the smallest true speedup the same sampling
finds with 80% power at 95% confidence: (z₀.₉₇₅ + z₀.₈₀) / z₀.₉₇₅ times the band,
the usual sample-size rule (e.g. NIST/SEMATECH e-Handbook §7.2.2.2). A
projected device has no noise: its floor is 0 from a single pair of runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Protocol

from pytest_goblin.audit.confirm import paired_windows
from pytest_goblin.audit.stats import noise_band, paired_speedup
from pytest_goblin.runner.protocol import Runner
from pytest_goblin.schemas import NoiseFloor, RunMetrics, WorkloadConfig, WorkloadResult

CALIBRATION_ROUNDS = 3
"""A/A rounds (6 runs): enough windows for a stable interval at under a third of
the cost of a verdict's worst case (``--goblin-max-repeats``, 10 rounds); a
verdict that samples longer resolves finer, so the band errs on the side of
refusing too small a threshold."""

_Z_CONFIDENCE = NormalDist().inv_cdf(0.975)
_Z_POWER = NormalDist().inv_cdf(0.80)
MDE_FACTOR = (_Z_CONFIDENCE + _Z_POWER) / _Z_CONFIDENCE


def calibrate(
    runner: Runner,
    config: WorkloadConfig,
    steps: int,
    workload: str,
    device: str,
    rounds: int = CALIBRATION_ROUNDS,
    device_id: str | None = None,
) -> NoiseFloor:
    """Measure ``config`` against itself in ``rounds`` paired rounds on ``runner``, the
    device named ``device`` (``device_id``: which one physically, where known)."""
    first: list[float] = []
    second: list[float] = []
    labels: list[int] = []
    runs: list[RunMetrics] = []
    for index in range(rounds):
        a, b = runner.run(config, steps), runner.run(config, steps)
        runs += [a, b]
        a_windows, b_windows = paired_windows(a, b)
        first += a_windows
        second += b_windows
        labels += [index] * len(a_windows)
        if a.projected:
            break
    estimate = paired_speedup(first, second, rounds=labels)
    band = noise_band(estimate)
    return NoiseFloor(
        device=device,
        device_id=device_id,
        workload=workload,
        projected=runs[0].projected,
        rounds=len(runs) // 2,
        n=estimate.n,
        ratio=round(estimate.speedup, 4),
        ratio_ci=(round(estimate.ci[0], 4), round(estimate.ci[1], 4)),
        band=round(band, 4),
        mde=round(band * MDE_FACTOR, 4),
        cv=round(max(estimate.cv_baseline, estimate.cv_patched), 4),
    )


def describe(floor: NoiseFloor, qualified: bool = False) -> str:
    """One line for a summary header; ``qualified`` names the physical device too."""
    device = floor.device
    if qualified and floor.device_id:
        device += f" ({floor.device_id})"
    if floor.projected:
        return (
            f"noise floor on {device}: 0 (projected runs have no noise; "
            "calibrate on the device with a measured run)"
        )
    low, high = floor.ratio_ci
    return (
        f"noise floor on {device}: ±{floor.band:.1%} (A/A of {floor.workload}: "
        f"{floor.ratio:.3f}× [{low:.3f}, {high:.3f}] from {floor.n} paired windows, "
        f"CV {floor.cv:.1%}); minimum detectable effect {floor.mde:.1%}"
    )


def describe_all(floors: Sequence[NoiseFloor]) -> list[str]:
    """One line per floor. A device name that two floors share is followed by each one's
    ``device_id``, so the floors of two GPUs of one model do not read as duplicates."""
    names = Counter(floor.device for floor in floors)
    return [describe(floor, qualified=names[floor.device] > 1) for floor in floors]


def noise_floors(results: Sequence[WorkloadResult]) -> list[NoiseFloor]:
    """The distinct floors the results carry, in order: one per physical device, since
    the xdist workers of a run share each device's floor."""
    floors: list[NoiseFloor] = []
    for result in results:
        if result.noise_floor is not None and result.noise_floor not in floors:
            floors.append(result.noise_floor)
    return floors


def refusal(floor: NoiseFloor, threshold: float, source: str) -> str | None:
    """Why ``threshold`` (set by ``source``) cannot be used on this device, or None when it
    clears the noise band."""
    if threshold >= floor.band:
        return None
    return (
        f"threshold {threshold:.1%} ({source}) is below the noise band measured by "
        f"--goblin-calibrate on {floor.device}: runs of the same config differ by up to "
        f"±{floor.band:.1%} there, so a {threshold:.1%} gap cannot be told from noise; "
        f"set {source} to at least {floor.band:.3f} (minimum detectable effect "
        f"{floor.mde:.1%}) or quieten the runner"
    )


class FloorStore(Protocol):
    """Noise floors shared between processes (the xdist plugin keeps one per run)."""

    def floor(self, device_id: str, measure: Callable[[], NoiseFloor]) -> NoiseFloor:
        """The floor stored for ``device_id``, or ``measure()``'s, stored for the others."""
        ...


@dataclass
class Calibrations:
    """The session's noise floors, one per device, measured on first use.

    ``shared`` (on an xdist worker) holds the floors the run's other workers
    measured: a floor whose key names the physical device is taken from there, or
    measured and left there for them.
    """

    floors: dict[str, NoiseFloor] = field(default_factory=dict)
    shared: FloorStore | None = None

    def floor(
        self, key: str, measure: Callable[[], NoiseFloor], physical: bool = False
    ) -> NoiseFloor:
        """The floor under ``key``; ``physical`` when ``key`` is a ``device_id``, the same
        in every process, so that the run's other workers may share it."""
        if key not in self.floors:
            shared = self.shared if physical else None
            self.floors[key] = shared.floor(key, measure) if shared is not None else measure()
        return self.floors[key]
