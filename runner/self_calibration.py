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
from pytest_goblin.runner.analytic import AnalyticModel, DeviceCorrection
from pytest_goblin.schemas import CalibrationRef, DeviceInfo, WorkloadConfig, WorkloadResult

CALIBRATION_DIR = "calibration"
"""Folder under the storage directory that holds one ``<fingerprint>.json`` per device."""

PARAMETERS = tuple(DeviceCorrection.model_fields)

PRIOR_WEIGHT = 1e-6
"""Pull of each log-multiplier towards 0 (the published model), against the squared log
errors of the runs: it fixes a mechanism that no run exercises (no run without
dataloader workers, say) where it was published, instead of leaving it wherever it does
no harm. Weak enough to leave the exercised ones alone: a generic CPU entry whose
placeholder peak is 30x what a real core reaches needs a compute multiplier near 1/30,
and a pull of 1e-3 would cost it as much as a 10% error on one run (the fit then spread
that error over the knobs)."""

MAX_LOG_MULTIPLIER = math.log(100.0)
"""No mechanism is corrected by more than 100x either way: beyond that the runs say
more about the machine's load than about the device (a fit to runs measured on an
overloaded host pushed the host overhead to 2,000x)."""

JACOBIAN_STEP = 1e-6
"""Forward-difference step in the log-multipliers for the fit's Jacobian."""
MAX_ITERATIONS = 100
TOLERANCE = 1e-12
"""The fit stops when an accepted step lowers the squared error by less than this."""


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


def _correction(theta: list[float]) -> DeviceCorrection:
    return DeviceCorrection(
        **{name: math.exp(v) for name, v in zip(PARAMETERS, theta, strict=True)}
    )


def _errors(spec: DeviceSpec, runs: list[MeasuredRun], theta: list[float]) -> list[float]:
    """ln(projected / measured) of each run under ``exp(theta)``."""
    runner = AnalyticModel(spec, _correction(theta))
    return [
        math.log(run.config.tokens_per_step / runner.step_budget(run.config).total)
        - math.log(run.tokens_per_sec)
        for run in runs
    ]


def _residuals(spec: DeviceSpec, runs: list[MeasuredRun], theta: list[float]) -> list[float]:
    """The runs' log errors, then the prior's pull on each log-multiplier."""
    prior = math.sqrt(PRIOR_WEIGHT)
    return _errors(spec, runs, theta) + [prior * v for v in theta]


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """``matrix x = vector`` by Gaussian elimination with partial pivoting (the system is
    the fit's five normal equations: no linear-algebra library is needed)."""
    n = len(vector)
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        if rows[col][col] == 0.0:
            raise ZeroDivisionError("singular normal equations")
        for r in range(col + 1, n):
            factor = rows[r][col] / rows[col][col]
            for c in range(col, n + 1):
                rows[r][c] -= factor * rows[col][c]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (rows[r][n] - sum(rows[r][c] * x[c] for c in range(r + 1, n))) / rows[r][r]
    return x


def fit_correction(spec: DeviceSpec, runs: list[MeasuredRun]) -> tuple[DeviceCorrection, float]:
    """The correction that best fits ``runs`` on ``spec``, and the RMS log error left.

    Levenberg-Marquardt on the log-multipliers (a forward-difference Jacobian, the
    damping raised until a step lowers the error and lowered after each one that does),
    each multiplier kept within ``MAX_LOG_MULTIPLIER``. The model's step time is a sum
    of mechanisms, each a power of one multiplier, so the log errors are smooth in the
    log-multipliers and the fit converges in a few dozen iterations; a search along one
    multiplier at a time stalls in the valleys two mechanisms share (compute and
    attention both price the attention kernels), leaving errors of several percent on
    runs the model can match exactly.
    """
    if not runs:
        raise ValueError("self-calibration needs at least one measured run")
    theta = [0.0] * len(PARAMETERS)
    residuals = _residuals(spec, runs, theta)
    cost = sum(r * r for r in residuals)
    damping = 1e-3
    for _ in range(MAX_ITERATIONS):
        columns = []
        for j in range(len(theta)):
            shifted = [v + JACOBIAN_STEP if i == j else v for i, v in enumerate(theta)]
            moved = _residuals(spec, runs, shifted)
            columns.append([(m - r) / JACOBIAN_STEP for m, r in zip(moved, residuals, strict=True)])
        normal = [
            [sum(a * b for a, b in zip(ci, cj, strict=True)) for cj in columns] for ci in columns
        ]
        gradient = [sum(a * r for a, r in zip(c, residuals, strict=True)) for c in columns]
        while damping < 1e12:
            damped = [
                [
                    value + (damping * (value + 1e-9) if i == j else 0.0)
                    for j, value in enumerate(row)
                ]
                for i, row in enumerate(normal)
            ]
            step = _solve(damped, [-g for g in gradient])
            trial = [
                max(-MAX_LOG_MULTIPLIER, min(MAX_LOG_MULTIPLIER, v + d))
                for v, d in zip(theta, step, strict=True)
            ]
            trial_residuals = _residuals(spec, runs, trial)
            trial_cost = sum(r * r for r in trial_residuals)
            if trial_cost < cost:
                break
            damping *= 4
        else:
            break
        gain = cost - trial_cost
        theta, residuals, cost = trial, trial_residuals, trial_cost
        damping = max(damping / 3, 1e-9)
        if gain < TOLERANCE:
            break
    errors = _errors(spec, runs, theta)
    return _correction(theta), math.sqrt(sum(e * e for e in errors) / len(runs))


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


MAX_RMS_LOG_ERROR = 0.2
"""A fit that leaves its runs further than this from the model (RMS of ln(projected /
measured), about 22%) is not saved: no setting of the five mechanisms explains the
runs, so they disagree with each other rather than with the published model (a
shared machine whose load changed mid-session measured one config at 104 and at 404
tokens/s), and the fit would only move multipliers to their bounds. The published
model, within about 10% of a quiet machine's runs, is then the better projection."""


def rejection(calibration: SavedCalibration) -> str | None:
    """Why ``calibration`` must not be saved, or None."""
    if calibration.rms_log_error <= MAX_RMS_LOG_ERROR:
        return None
    return (
        f"the {calibration.fitted_from_runs} measured runs disagree with one another: the "
        f"best fit leaves an RMS log error of {calibration.rms_log_error:.2f} (more than "
        f"{MAX_RMS_LOG_ERROR:g}), as when the machine's load changes during the session; "
        "projections keep the published model"
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


def fitted_spec(device: DeviceInfo, fake_device: str, storage: Path | None) -> DeviceSpec:
    """The catalogue entry a measured device's calibration is fitted on: the entry the
    device is, the generic CPU for a CPU (as ``runner.measurement.catalogue_spec`` holds
    a CPU's runs against it), else the entry ``--goblin-fake-device`` projects from (a
    GPU the catalogue does not list)."""
    if device.catalogue_key:
        return get_device(device.catalogue_key)
    if device.kind == "cpu":
        return get_device("cpu")
    return projection_target(fake_device, storage).spec


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
