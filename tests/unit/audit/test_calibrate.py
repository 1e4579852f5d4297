"""The noise floor: --goblin-calibrate runs a baseline against itself (A/A)."""

from __future__ import annotations

import json
import random

import pytest

from helpers.workloads import MISTUNED_YAML
from pytest_goblin.audit.calibrate import (
    MDE_FACTOR,
    Calibrations,
    calibrate,
    describe,
    noise_floors,
    refusal,
)
from pytest_goblin.audit.run import audit_workload
from pytest_goblin.errors import ThresholdBelowNoise
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.runner.device_session import DeviceSession, SimulatedDevice
from pytest_goblin.schemas import NoiseFloor, RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

CONFIG = WorkloadConfig(model="qwen2.5-0.5b", precision="bf16")


class Jittery:
    """Measured-looking runs of one level with multiplicative noise per window."""

    def __init__(self, noise: float, windows: int = 5, seed: int = 3) -> None:
        self.noise = noise
        self.windows = windows
        self.rng = random.Random(seed)
        self.runs = 0

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.runs += 1
        samples = [1000.0 * self.rng.lognormvariate(0, self.noise) for _ in range(self.windows)]
        return RunMetrics(
            steps=steps,
            tokens_per_sec=sum(samples) / len(samples),
            step_time_s=1.0,
            tokens_per_step=4096,
            hbm_peak_gb=1.0,
            mfu_pct=1.0,
            projected=False,
            runner_kind="torch",
            device="cpu",
            samples=samples,
        )


def floor(band: float) -> NoiseFloor:
    return NoiseFloor(
        device="Rig",
        workload="w",
        projected=False,
        rounds=3,
        n=15,
        ratio=1.0,
        ratio_ci=(1 - band, 1 + band),
        band=band,
        mde=band * MDE_FACTOR,
        cv=0.02,
    )


def test_an_a_a_run_pairs_every_window_of_three_rounds() -> None:
    runner = Jittery(noise=0.02)
    result = calibrate(runner, CONFIG, 50, "w", "Rig")
    assert (runner.runs, result.rounds, result.n) == (6, 3, 15)
    assert result.ratio_ci[0] <= result.ratio <= result.ratio_ci[1]


def test_the_band_is_the_a_a_interval_half_width_and_grows_with_noise() -> None:
    quiet = calibrate(Jittery(noise=0.01), CONFIG, 50, "w", "Rig")
    noisy = calibrate(Jittery(noise=0.10), CONFIG, 50, "w", "Rig")
    low, high = quiet.ratio_ci
    assert quiet.band == pytest.approx(max(1 - low, high - 1), abs=1e-4)
    assert 0 < quiet.band < noisy.band


def test_the_minimum_detectable_effect_is_the_band_scaled_for_80_percent_power() -> None:
    result = calibrate(Jittery(noise=0.05), CONFIG, 50, "w", "Rig")
    assert pytest.approx((1.95996 + 0.84162) / 1.95996, rel=1e-4) == MDE_FACTOR
    assert result.mde == pytest.approx(result.band * MDE_FACTOR, abs=1e-4)


def test_the_same_samples_give_the_same_floor() -> None:
    assert calibrate(Jittery(0.05), CONFIG, 50, "w", "Rig") == calibrate(
        Jittery(0.05), CONFIG, 50, "w", "Rig"
    )


def test_a_projected_device_has_a_zero_floor_from_one_pair() -> None:
    device = SimulatedDevice("mi300x")
    result = calibrate(device, CONFIG, 50, "w", device.info.name)
    assert (result.projected, result.rounds, result.band, result.mde) == (True, 1, 0.0, 0.0)
    assert "projected runs have no noise" in describe(result)


def test_a_threshold_below_the_band_is_refused_with_the_figures() -> None:
    message = refusal(floor(0.06), 0.05, "--goblin-threshold / goblin_threshold")
    assert message is not None
    assert (
        "threshold 5.0% (--goblin-threshold / goblin_threshold) is below the noise band" in message
    )
    assert "±6.0%" in message and "at least 0.060" in message


def test_a_threshold_at_or_above_the_band_is_accepted() -> None:
    assert refusal(floor(0.06), 0.06, "x") is None
    assert refusal(floor(0.06), 0.10, "x") is None


def test_each_device_is_calibrated_once_per_session() -> None:
    calibrations = Calibrations()
    made: list[str] = []

    def measure(name: str) -> NoiseFloor:
        made.append(name)
        return floor(0.01)

    for key in ("rocm:a", "rocm:a", "rocm:b", "rocm:a"):
        calibrations.floor(key, lambda key=key: measure(key))
    assert made == ["rocm:a", "rocm:b"]


def test_the_summary_lists_each_distinct_floor_once(failed, passed) -> None:  # type: ignore[no-untyped-def]
    one, two = floor(0.01), floor(0.02)
    results = [
        failed.model_copy(update={"noise_floor": one}),
        passed.model_copy(update={"noise_floor": one}),
        passed.model_copy(update={"noise_floor": two}),
        failed,
    ]
    assert noise_floors(results) == [one, two]


class NoisySession(DeviceSession):
    """A session whose default device is a measured-looking, noisy one."""

    def __init__(self, noise: float) -> None:
        super().__init__("mi300x")
        self.rig = Jittery(noise)

    def runner_for(self, device=None, settings=None):  # type: ignore[no-untyped-def]
        projector = SimulatedDevice("mi300x")
        rig = self.rig

        class Runner:
            info = projector.info.model_copy(update={"kind": "rocm", "name": "Rig"})

            def __init__(self) -> None:
                self.projector = projector

            def unsupported(self, config: WorkloadConfig) -> None:
                return None

            def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
                return rig.run(config, steps)

        return Runner()


def test_an_audit_refuses_a_threshold_below_the_devices_noise(
    workload,
    kb: KnowledgeBase,  # type: ignore[no-untyped-def]
) -> None:
    mistuned: Workload = workload(MISTUNED_YAML)
    with pytest.raises(ThresholdBelowNoise) as raised:
        audit_workload(
            mistuned,
            NoisySession(noise=0.10),
            GoblinSettings(threshold=0.01),
            kb,
            calibrations=Calibrations(),
        )
    assert str(raised.value).startswith("workloads/w.goblin.yaml: threshold 1.0% ")
    assert raised.value.floor.band > 0.01


def test_a_workloads_own_threshold_is_named_when_it_is_refused(
    workload,
    kb: KnowledgeBase,  # type: ignore[no-untyped-def]
) -> None:
    mistuned: Workload = workload(MISTUNED_YAML + "goblin:\n  threshold: 0.01\n")
    with pytest.raises(ThresholdBelowNoise, match=r"the workload's goblin.threshold"):
        audit_workload(
            mistuned, NoisySession(noise=0.10), GoblinSettings(), kb, calibrations=Calibrations()
        )


def test_an_audit_above_the_noise_carries_the_floor(
    workload,
    kb: KnowledgeBase,  # type: ignore[no-untyped-def]
) -> None:
    session = NoisySession(noise=0.005)
    outcome = audit_workload(
        workload(MISTUNED_YAML),
        session,
        GoblinSettings(max_repeats=2),
        kb,
        calibrations=Calibrations(),
    )
    assert outcome.noise_floor is not None and outcome.noise_floor.device == "Rig"
    assert outcome.noise_floor.band < 0.10


NOISY_RIG = """
import random

from pytest_goblin.runner.device_session import SimulatedDevice


class Rig:
    '''A shared runner: the analytic model's numbers with 30% window-to-window noise.'''

    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Busy Rig"})
        self.rng = random.Random(5)

    def unsupported(self, config):
        return None

    def run(self, config, steps):
        metrics = self.projector.run(config, steps)
        samples = [metrics.tokens_per_sec * self.rng.lognormvariate(0, 0.3) for _ in range(5)]
        return metrics.model_copy(update={"projected": False, "samples": samples})


def pytest_goblin_make_runner(device, settings):
    return None if settings.fake else Rig()
"""


def test_calibrating_a_noisy_rig_errors_every_workload_and_reports_the_floor(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(NOISY_RIG)
    pytester.makefile(".goblin.yaml", a=MISTUNED_YAML, b=MISTUNED_YAML.replace("fp32", "bf16"))
    result = pytester.runpytest(
        "--goblin", "--goblin-calibrate", "-p", "no:cacheprovider", "--goblin-json", "out.json"
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "a.goblin.yaml: threshold 10.0% (--goblin-threshold / goblin_threshold) is below the "
            "noise band measured by --goblin-calibrate on Busy Rig*",
            "noise floor on Busy Rig: ±*% (A/A of llama-mistuned: * from 15 paired windows, *",
        ]
    )
    document = json.loads((pytester.path / "out.json").read_text())
    (only,) = document["noise_floors"]
    assert only["device"] == "Busy Rig" and only["band"] > 0.10
    assert [w["outcome"] for w in document["workloads"]] == ["error", "error"]
    assert all(w["noise_floor"] == only for w in document["workloads"])


def test_calibrate_in_fake_mode_says_projections_have_no_noise(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", a=MISTUNED_YAML)
    result = pytester.runpytest(
        "--goblin",
        "--goblin-fake",
        "--goblin-calibrate",
        "-p",
        "no:cacheprovider",
        "--goblin-md",
        "out.md",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["noise floor on AMD Instinct MI300X: 0 (projected runs have no noise*"]
    )
    assert "noise floor on AMD Instinct MI300X: 0" in (pytester.path / "out.md").read_text()


def test_without_calibrate_no_floor_is_measured_or_shown(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", a=MISTUNED_YAML)
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-json", "out.json"
    )
    assert "noise floor" not in result.stdout.str()
    assert json.loads((pytester.path / "out.json").read_text())["noise_floors"] == []
