"""Self-calibration: the analytic model fitted to one real device's measured runs.

The catalogue gives a device's published peaks and the model's constants are fitted
to published runs (``calibration_points.yaml``); a particular machine still runs at
its own clocks, with its own BLAS, host CPU and input pipeline. From a session's
measured runs (workload and measured tokens/s) this fits a ``DeviceCorrection``: the
multipliers on the model's mechanisms that make its projections match them, and
saves it under the storage directory keyed by the device's fingerprint. A later
projected run for that device loads it. A calibrated projection is still a
projection: it changes the numbers, never their label.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_goblin.atomic import write_text
from pytest_goblin.catalogue.devices import DeviceSpec, get_device
from pytest_goblin.runner.analytic import DeviceCorrection, FakeRunner
from pytest_goblin.schemas import CalibrationRef, WorkloadConfig, WorkloadResult

CALIBRATION_DIR = "calibration"
"""Folder under the storage directory that holds one ``<fingerprint>.json`` per device."""

PARAMETERS = tuple(DeviceCorrection.model_fields)

PRIOR_WEIGHT = 1e-3
"""Pull of each log-multiplier towards 0 (the published model): a mechanism that no
run exercises (no run without dataloader workers, say) stays as published instead of
drifting to wherever it does no harm."""

MAX_LOG_MULTIPLIER = math.log(100.0)
"""No mechanism is corrected by more than 100x either way: beyond that the runs say
more about the machine's load than about the device (a fit to runs measured on an
overloaded host pushed the host overhead to 2,000x)."""

START_STEP = math.log(4.0)
MIN_STEP = 1e-4
MAX_SWEEPS = 400


class MeasuredRun(BaseModel):
    """One measured run the fit learns from: what ran, and the tokens/s it reached."""

    model_config = ConfigDict(frozen=True)

    config: WorkloadConfig
    tokens_per_sec: float = Field(gt=0)


class SavedCalibration(BaseModel):
    """A device's fitted correction, with what it was fitted from."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str = Field(description="device_fingerprint of the measured device")
    device_name: str = Field(description="the measured device as its runs named it")
    catalogue_key: str = Field(description="the catalogue entry projections start from")
    correction: DeviceCorrection
    fitted_from_runs: int = Field(ge=1)
    rms_log_error: float = Field(ge=0, description="fit residual, RMS of ln(projected/measured)")
    saved_at: datetime
    runs: list[MeasuredRun]

    def ref(self) -> CalibrationRef:
        """How a projected run names this calibration in reports."""
        return CalibrationRef(
            source=f"self-calibration of {self.device_name}",
            fingerprint=self.fingerprint,
            fitted_from_runs=self.fitted_from_runs,
            saved_at=self.saved_at,
        )


def _objective(spec: DeviceSpec, runs: list[MeasuredRun], theta: dict[str, float]) -> float:
    """Squared log errors of the runs under ``exp(theta)``, plus the prior."""
    runner = FakeRunner(spec, DeviceCorrection(**{k: math.exp(v) for k, v in theta.items()}))
    total = 0.0
    for run in runs:
        budget = runner.step_budget(run.config)
        projected = run.config.tokens_per_step / budget.total
        total += math.log(projected / run.tokens_per_sec) ** 2
    return total + PRIOR_WEIGHT * sum(v * v for v in theta.values())


def fit_correction(spec: DeviceSpec, runs: list[MeasuredRun]) -> tuple[DeviceCorrection, float]:
    """The correction that best fits ``runs`` on ``spec``, and the RMS log error left.

    Deterministic coordinate descent on the log-multipliers: try each one up and down
    by a step, keep what lowers the objective, halve the step when nothing does. The
    objective is smooth and has five parameters, so no library optimiser is needed.
    """
    if not runs:
        raise ValueError("self-calibration needs at least one measured run")
    theta = dict.fromkeys(PARAMETERS, 0.0)
    best = _objective(spec, runs, theta)
    step = START_STEP
    for _ in range(MAX_SWEEPS):
        if step < MIN_STEP:
            break
        improved = False
        for name in PARAMETERS:
            for direction in (1.0, -1.0):
                trial = {**theta, name: theta[name] + direction * step}
                if abs(trial[name]) > MAX_LOG_MULTIPLIER:
                    continue
                value = _objective(spec, runs, trial)
                if value < best:
                    theta, best, improved = trial, value, True
                    break
        if not improved:
            step /= 2
    correction = DeviceCorrection(**{k: math.exp(v) for k, v in theta.items()})
    residual = best - PRIOR_WEIGHT * sum(v * v for v in theta.values())
    return correction, math.sqrt(max(residual, 0.0) / len(runs))


def calibrate(
    spec: DeviceSpec, fingerprint: str, device_name: str, runs: list[MeasuredRun]
) -> SavedCalibration:
    """Fit ``runs`` and wrap the result with what a report needs to name it."""
    correction, rms = fit_correction(spec, runs)
    return SavedCalibration(
        fingerprint=fingerprint,
        device_name=device_name,
        catalogue_key=spec.name,
        correction=correction,
        fitted_from_runs=len(runs),
        rms_log_error=rms,
        saved_at=datetime.now(timezone.utc),
        runs=runs,
    )


def calibration_path(storage: Path, fingerprint: str) -> Path:
    return storage / CALIBRATION_DIR / f"{fingerprint}.json"


def save_calibration(storage: Path, calibration: SavedCalibration) -> Path:
    """Write the calibration atomically under the storage directory; return its path."""
    path = calibration_path(storage, calibration.fingerprint)
    write_text(path, calibration.model_dump_json(indent=2) + "\n")
    return path


def saved_calibrations(storage: Path) -> list[SavedCalibration]:
    """Every readable saved calibration, newest first (an unreadable file is skipped:
    a projection without a correction is still a valid projection)."""
    folder = storage / CALIBRATION_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        try:
            found.append(SavedCalibration.model_validate_json(path.read_text()))
        except (OSError, ValueError, ValidationError):
            continue
    return sorted(found, key=lambda c: c.saved_at, reverse=True)


def find_calibration(storage: Path, name: str) -> SavedCalibration | None:
    """The newest calibration whose fingerprint, measured device name or catalogue entry
    is ``name`` (case-insensitive), or None."""
    wanted = name.strip().lower()
    for calibration in saved_calibrations(storage):
        keys = {calibration.fingerprint, calibration.device_name.lower(), calibration.catalogue_key}
        if wanted in keys:
            return calibration
    return None


class ProjectionTarget(NamedTuple):
    """What a fake device name resolved to."""

    spec: DeviceSpec
    calibration: SavedCalibration | None
    by_calibration: bool
    """The name was a saved calibration's, not a catalogue entry's: reports name the
    machine the calibration was fitted on."""


def projection_target(name: str, storage: Path | None) -> ProjectionTarget:
    """What ``--goblin-fake-device NAME`` projects for: the catalogue entry, and the
    self-calibration its numbers use.

    A catalogue name gives that entry with the newest calibration saved for it (None if
    none). Any other name must be a saved calibration's fingerprint or measured device
    name: the run projects for that machine, from the catalogue entry it was fitted on
    with its correction. Anything else is a ValueError listing both kinds of name, since
    a typo must not project for the wrong hardware.
    """
    try:
        spec = get_device(name)
    except ValueError as unknown:
        saved = find_calibration(storage, name) if storage is not None else None
        if saved is None:
            raise ValueError(f"{unknown}; {_saved_names(storage)}") from None
        return ProjectionTarget(get_device(saved.catalogue_key), saved, by_calibration=True)
    saved = find_calibration(storage, spec.name) if storage is not None else None
    return ProjectionTarget(spec, saved, by_calibration=False)


def _saved_names(storage: Path | None) -> str:
    """The calibration names a fake device may also take, for an error message."""
    where = "no storage directory" if storage is None else str(storage / CALIBRATION_DIR)
    saved = saved_calibrations(storage) if storage is not None else []
    if not saved:
        return f"or a saved self-calibration's fingerprint or device name (none under {where})"
    names = ", ".join(f"{c.fingerprint} ({c.device_name})" for c in saved)
    return f"or a saved self-calibration under {where}: {names}"


def runs_from_results(results: list[WorkloadResult]) -> list[MeasuredRun]:
    """The measured runs of a session's results: each baseline, and each patched run whose
    changes are plain config fields (anything else is left out, never guessed)."""
    runs: list[MeasuredRun] = []
    for result in results:
        if result.config is None or result.projected is not False:
            continue
        try:
            config = WorkloadConfig(**result.config)
        except ValidationError:
            continue
        if result.baseline is not None and not result.baseline.projected:
            runs.append(MeasuredRun(config=config, tokens_per_sec=result.baseline.tokens_per_sec))
        patched = result.patched
        if patched is None or patched.projected or result.patch is None:
            continue
        changes = {change.field: change.new for change in result.patch.changes}
        if not set(changes) <= set(WorkloadConfig.model_fields):
            continue
        try:
            after = WorkloadConfig(**{**result.config, **changes})
        except ValidationError:
            continue
        runs.append(MeasuredRun(config=after, tokens_per_sec=patched.tokens_per_sec))
    return runs


def describe(ref: CalibrationRef) -> str:
    """One line for the summary header."""
    return (
        f"calibration: {ref.source} ({ref.fingerprint}), fitted from {ref.fitted_from_runs} "
        f"measured runs, saved {ref.saved_at:%Y-%m-%d %H:%M} UTC"
    )
