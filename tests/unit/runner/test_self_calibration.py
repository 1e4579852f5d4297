"""Self-calibration: a correction fitted to measured runs, saved and found again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import AnalyticModel, DeviceCorrection
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.runner.self_calibration import (
    CALIBRATION_DIR,
    MeasuredRun,
    SavedCalibration,
    calibrate,
    find_calibration,
    fit_correction,
    fitted_spec,
    projection_target,
    rejection,
    save_calibration,
    saved_calibrations,
)
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig

SPEC = get_device("cpu")

TINY: dict[str, Any] = {
    "model": {"layers": 2, "hidden": 128, "intermediate": 344, "heads": 4, "vocab": 512},
    "precision": "fp32",
    "batch_size": 4,
    "seq_len": 256,
    "dataloader_workers": 2,
}

CONFIGS = [
    WorkloadConfig(**TINY),
    WorkloadConfig(**{**TINY, "attention_impl": "eager"}),
    WorkloadConfig(**{**TINY, "dataloader_workers": 0}),
    WorkloadConfig(**{**TINY, "batch_size": 1}),
    WorkloadConfig(**{**TINY, "gradient_checkpointing": True}),
]


def tokens_per_sec(runner: AnalyticModel, config: WorkloadConfig) -> float:
    return config.tokens_per_step / runner.step_budget(config).total


def runs_of(correction: DeviceCorrection) -> list[MeasuredRun]:
    """What a device that really runs like ``correction`` says would measure."""
    device = AnalyticModel(SPEC, correction)
    return [MeasuredRun(config=c, tokens_per_sec=tokens_per_sec(device, c)) for c in CONFIGS]


def saved(fingerprint: str, name: str, minutes_ago: int = 0) -> SavedCalibration:
    return SavedCalibration(
        fingerprint=fingerprint,
        device_name=name,
        catalogue_key="cpu",
        correction=DeviceCorrection(compute=0.5),
        fitted_from_runs=1,
        rms_log_error=0.0,
        saved_at=datetime.now(timezone.utc) - timedelta(minutes=minutes_ago),
        runs=runs_of(DeviceCorrection())[:1],
    )


def test_the_fit_reproduces_a_slower_device_with_more_host_overhead() -> None:
    runs = runs_of(DeviceCorrection(compute=0.1, host=3.0, data=2.0))
    correction, rms = fit_correction(SPEC, runs)
    fitted = AnalyticModel(SPEC, correction)
    for run in runs:
        assert tokens_per_sec(fitted, run.config) == pytest.approx(run.tokens_per_sec, rel=0.03)
    assert rms < 0.03


def test_runs_the_published_model_predicts_leave_it_as_it_is() -> None:
    correction, _ = fit_correction(SPEC, runs_of(DeviceCorrection()))
    for value in correction.model_dump().values():
        assert value == pytest.approx(1.0, rel=0.05)


KNOB_BASE: dict[str, Any] = {**TINY, "optimizer": "adamw_torch_fused", "attention_impl": "sdpa"}
KNOB_CHANGES: dict[str, dict[str, Any]] = {
    "eager attention": {"attention_impl": "eager"},
    "no dataloader workers": {"dataloader_workers": 0},
    "checkpointing": {"gradient_checkpointing": True},
    "LoRA": {"finetune": "lora", "lora_rank": 16},
    "batch 1": {"batch_size": 1},
    "foreach AdamW": {"optimizer": "adamw_torch"},
}
"""A base config and one change per mechanism, like ``benchmarks/calibration.py``'s knobs."""


def knob_ratios(runner: AnalyticModel) -> dict[str, float]:
    base = WorkloadConfig(**KNOB_BASE)
    return {
        knob: tokens_per_sec(runner, WorkloadConfig(**{**KNOB_BASE, **change}))
        / tokens_per_sec(runner, base)
        for knob, change in KNOB_CHANGES.items()
    }


def knob_runs(device: AnalyticModel) -> list[MeasuredRun]:
    configs = [WorkloadConfig(**KNOB_BASE)]
    configs += [WorkloadConfig(**{**KNOB_BASE, **change}) for change in KNOB_CHANGES.values()]
    return [MeasuredRun(config=c, tokens_per_sec=tokens_per_sec(device, c)) for c in configs]


def test_the_fit_recovers_every_knob_ratio_of_a_device_unlike_the_published_one() -> None:
    """A device slower at everything, with slow attention, fast memory, heavy host
    overhead and costly samples: its knob ratios are far from the published model's,
    and the fit to its seven runs brings every one back."""
    hidden = DeviceCorrection(compute=0.05, attention=0.4, bandwidth=3.0, host=4.0, data=6.0)
    device = AnalyticModel(SPEC, hidden)
    truth = knob_ratios(device)
    published = knob_ratios(AnalyticModel(SPEC))
    assert any(abs(published[k] / truth[k] - 1) > 0.1 for k in truth)
    correction, rms = fit_correction(SPEC, knob_runs(device))
    fitted = knob_ratios(AnalyticModel(SPEC, correction))
    for knob, ratio in truth.items():
        assert fitted[knob] == pytest.approx(ratio, rel=0.002), knob
    assert rms < 0.001
    # seven runs, one per mechanism and a base: each multiplier is pinned down
    for name, value in hidden.model_dump().items():
        assert getattr(correction, name) == pytest.approx(value, rel=0.02), name


def test_a_mechanism_no_run_exercises_stays_as_published() -> None:
    """Every run has dataloader workers to hide the input cost: the data multiplier has
    nothing to learn from, and stays 1 while the others move."""
    device = AnalyticModel(SPEC, DeviceCorrection(compute=0.2, host=2.0))
    runs = [run for run in knob_runs(device) if run.config.dataloader_workers > 0]
    correction, _ = fit_correction(SPEC, runs)
    assert correction.data == pytest.approx(1.0, abs=1e-6)
    assert correction.compute < 0.5


def test_no_mechanism_is_corrected_beyond_the_bound() -> None:
    """Runs a thousand times slower than any mechanism explains (an overloaded host)
    drive the multipliers to the bound, not past it."""
    runs = [
        MeasuredRun(config=run.config, tokens_per_sec=run.tokens_per_sec / 1e6)
        for run in runs_of(DeviceCorrection())
    ]
    correction, rms = fit_correction(SPEC, runs)
    for value in correction.model_dump().values():
        assert 1 / 100 - 1e-9 <= value <= 100 + 1e-9
    assert rms > 1.0  # what the bound leaves unexplained is reported, not hidden


def test_a_fit_needs_runs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit_correction(SPEC, [])


def test_a_calibrated_projection_is_still_projected() -> None:
    metrics = AnalyticModel(SPEC, DeviceCorrection(compute=0.2)).run(CONFIGS[0], steps=2)
    plain = AnalyticModel(SPEC).run(CONFIGS[0], steps=2)
    assert metrics.projected and metrics.runner_kind == "fake"
    assert metrics.tokens_per_sec < plain.tokens_per_sec


def test_a_saved_calibration_is_found_by_fingerprint_name_or_catalogue_entry(
    tmp_path: Path,
) -> None:
    calibration = calibrate(SPEC, "abc123", "AMD EPYC 9554", runs_of(DeviceCorrection()))
    path = save_calibration(tmp_path, calibration)
    assert path == tmp_path / CALIBRATION_DIR / "abc123.json"
    for name in ("abc123", "amd epyc 9554", "CPU"):
        found = find_calibration(tmp_path, name)
        assert found is not None and found.correction == calibration.correction
    assert found.fitted_from_runs == len(CONFIGS)
    assert find_calibration(tmp_path, "mi300x") is None


def test_the_newest_calibration_wins_and_a_broken_file_is_skipped(tmp_path: Path) -> None:
    save_calibration(tmp_path, saved("old", "box", minutes_ago=10))
    save_calibration(tmp_path, saved("new", "box"))
    (tmp_path / CALIBRATION_DIR / "broken.json").write_text("{not json")
    assert [c.fingerprint for c in saved_calibrations(tmp_path)] == ["new", "old"]
    found = find_calibration(tmp_path, "box")
    assert found is not None and found.fingerprint == "new"


def test_no_storage_folder_means_no_calibration(tmp_path: Path) -> None:
    assert saved_calibrations(tmp_path / "absent") == []


def test_a_fake_device_name_resolves_to_a_catalogue_entry_or_a_saved_calibration(
    tmp_path: Path,
) -> None:
    assert projection_target("cpu", tmp_path) == (SPEC, None, False)
    machine = calibrate(SPEC, "abc123", "AMD EPYC 9554", runs_of(DeviceCorrection(compute=0.5)))
    save_calibration(tmp_path, machine)
    for name in ("abc123", "AMD EPYC 9554"):
        assert projection_target(name, tmp_path) == (SPEC, machine, True)
    # a catalogue name is the catalogue entry, with the newest calibration fitted on it
    assert projection_target("CPU", tmp_path) == (SPEC, machine, False)
    assert projection_target("h100", tmp_path) == (get_device("h100"), None, False)


def test_an_unknown_fake_device_lists_the_catalogue_and_the_saved_calibrations(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"valid devices: .*cpu.*none under .*calibration"):
        projection_target("epyc", tmp_path)
    with pytest.raises(ValueError, match="no storage directory"):
        projection_target("epyc", None)
    save_calibration(tmp_path, saved("abc123", "AMD EPYC 9554"))
    with pytest.raises(ValueError, match=r"abc123 \(AMD EPYC 9554\)"):
        projection_target("epyc", tmp_path)


def test_a_device_named_by_its_calibration_is_reported_as_that_machine_projected(
    tmp_path: Path,
) -> None:
    save_calibration(tmp_path, saved("abc123", "AMD EPYC 9554"))
    device = SimulatedDevice.named("abc123", tmp_path)
    assert device.info.name == "AMD EPYC 9554" and device.info.kind == "simulated"
    assert device.info.catalogue_key == "cpu"
    assert device.device_id != SimulatedDevice.named("cpu", tmp_path).device_id
    metrics = device.run(CONFIGS[0], steps=2)
    assert metrics.projected and metrics.calibration is not None
    assert metrics.calibration.fingerprint == "abc123"
    assert metrics.calibration.source == "self-calibration of AMD EPYC 9554"
    # the catalogue name uses the same calibration but keeps the catalogue's name
    assert SimulatedDevice.named("cpu", tmp_path).info.name == SPEC.display_name


def test_a_measured_cpu_is_fitted_on_the_generic_cpu_whatever_the_fake_device() -> None:
    """A live CPU has no catalogue key of its own; its runs are held against the generic
    CPU, never against the session's --goblin-fake-device (mi300x by default)."""
    cpu = DeviceInfo(kind="cpu", name="AMD EPYC", platform="cpu")
    assert fitted_spec(cpu, "mi300x", None) == SPEC
    h100 = DeviceInfo(kind="cuda", name="NVIDIA H100 80GB HBM3", platform="cuda")
    assert fitted_spec(h100.model_copy(update={"catalogue_key": "h100"}), "mi300x", None) == (
        get_device("h100")
    )
    assert fitted_spec(h100, "a100", None) == get_device("a100")  # a GPU the catalogue lacks


def test_runs_no_device_explains_are_not_saved_as_a_calibration() -> None:
    """Consistent runs fit and are kept; each config measured again while the machine's
    load came and went (three times slower) cannot be one device, and is refused."""
    runs = runs_of(DeviceCorrection(compute=0.1, host=2.0))
    assert rejection(calibrate(SPEC, "abc", "box", runs)) is None
    loaded = [MeasuredRun(config=r.config, tokens_per_sec=r.tokens_per_sec / 3) for r in runs]
    reason = rejection(calibrate(SPEC, "abc", "box", runs + loaded))
    assert reason is not None and "disagree" in reason and f"{2 * len(CONFIGS)} measured" in reason
