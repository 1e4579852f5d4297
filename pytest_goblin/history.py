"""Saved runs and regression against them (``--goblin-save``, ``--goblin-compare``).

A run is saved as one JSON file, ``<storage>/runs/NNNN_<name>.json`` (storage is
``.goblin/`` under the rootdir, or ini ``goblin_storage``), written atomically
and never over another run. NNNN orders the runs; ``latest`` is the highest.

Schema version 1::

    {"schema_version": 1, "generator": "pytest-goblin X", "id": "0003_main",
     "name": "main", "saved_at": "2025-01-31T12:00:00Z",
     "commit": {"id", "branch", "dirty"} | null,
     "workloads": {NODEID: {"name", "path", "outcome", "config_hash",
                            "device": {kind, name, platform, memory_gb, arch},
                            "device_fingerprint", "baseline": RunMetrics,
                            "patched": RunMetrics | null, "speedup", "speedup_ci"}}}

Compatibility rule: a reader of version N reads every version up to N; within a
version fields are only added and readers ignore fields they do not know. A
file from a newer version is refused with a message, never misread.

Only workloads on the same device fingerprint are compared: a number from
another device (or a projected number against a measured one) says nothing
about a regression, so it is reported as not comparable.

A measured comparison is judged on an interval, not on two point estimates:
both runs store their windows' tokens/s, and a drop only counts as a regression
when the whole bootstrap interval of the change lies beyond the fail percentage
(the same rule as a verdict's threshold), so one noisy run cannot fail a PR.
Projected numbers are exact, so for them the point is the interval.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_goblin import __version__
from pytest_goblin.atomic import create_text
from pytest_goblin.audit.stats import DEFAULT_CONFIDENCE, independent_ratio
from pytest_goblin.errors import GoblinError
from pytest_goblin.gitinfo import Commit
from pytest_goblin.kb.conditions import did_you_mean
from pytest_goblin.schemas import DeviceInfo, HistoryComparison, RunMetrics, WorkloadResult

SCHEMA_VERSION = 1
RUNS_DIR = "runs"
NUMBERS_DIR = "numbers"
"""One empty file per run number taken, so that concurrent saves never share one."""
LATEST = "latest"
_RUN_FILE = re.compile(r"(\d{4,})_(.+)\.json")
_FINGERPRINT_FIELDS = ("kind", "name", "platform", "arch", "memory_gb")
INTERVAL_WINDOWS = 3
"""Windows each run needs before a measured change is judged on its interval: from
fewer, a bootstrap cannot tell a change from noise, so the point is used and said."""


class HistoryError(GoblinError):
    """A saved run that cannot be used: names the file and what to do."""


class _Lenient(BaseModel):
    """Unknown fields are ignored (a newer minor version may add some); numbers must be
    finite: a NaN read from a corrupt run would end up as a bare ``NaN`` in the JSON report."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class SavedMetrics(_Lenient):
    tokens_per_sec: float = Field(gt=0)
    step_time_s: float | None = Field(default=None, gt=0)
    mfu_pct: float | None = Field(default=None, ge=0)
    hbm_peak_gb: float | None = Field(default=None, ge=0)
    projected: bool | None = None
    samples: list[Annotated[float, Field(gt=0)]] = []


class SavedWorkload(_Lenient):
    name: str
    path: str = ""
    outcome: str = ""
    config_hash: str = ""
    device: dict[str, Any]
    device_fingerprint: str
    baseline: SavedMetrics
    patched: SavedMetrics | None = None
    speedup: float | None = Field(default=None, gt=0)
    speedup_ci: tuple[float, float] | None = None


class SavedCommit(_Lenient):
    id: str
    branch: str | None = None
    dirty: bool = False


class SavedRun(_Lenient):
    schema_version: int
    id: str
    name: str
    saved_at: str
    generator: str = ""
    commit: SavedCommit | None = None
    workloads: dict[str, SavedWorkload]

    def describe(self) -> str:
        """``0003_main (commit 1a2b3c4d, saved 2025-01-31T12:00:00Z)``."""
        if self.commit is None:
            return f"{self.id} (saved {self.saved_at})"
        dirty = "+dirty" if self.commit.dirty else ""
        return f"{self.id} (commit {self.commit.id[:8]}{dirty}, saved {self.saved_at})"


@dataclass(frozen=True)
class RunFile:
    number: int
    name: str
    path: Path

    @property
    def id(self) -> str:
        return self.path.stem


def device_fingerprint(device: DeviceInfo | dict[str, Any]) -> str:
    """A short hash of what makes two devices the same: kind, name, platform, arch, memory.

    ``kind`` is ``simulated`` for projected numbers, so a projected run never
    matches a measured one.
    """
    data = device.model_dump(mode="json") if isinstance(device, DeviceInfo) else device
    identity = {key: data.get(key) for key in _FINGERPRINT_FIELDS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def list_runs(storage: Path) -> list[RunFile]:
    """The saved runs, oldest first."""
    folder = storage / RUNS_DIR
    if not folder.is_dir():
        return []
    runs = []
    for path in folder.iterdir():
        match = _RUN_FILE.fullmatch(path.name)
        if match and path.is_file():
            runs.append(RunFile(int(match.group(1)), match.group(2), path))
    return sorted(runs, key=lambda run: run.number)


def find_run(storage: Path, wanted: str) -> RunFile | None:
    """``latest``, a full id (``0003_main``), or the newest run saved under a name."""
    runs = list_runs(storage)
    if wanted == LATEST:
        return runs[-1] if runs else None
    exact = [run for run in runs if run.id == wanted]
    named = [run for run in runs if run.name == wanted]
    matches = exact or named
    return matches[-1] if matches else None


def missing_text(storage: Path, wanted: str, fail_pct: float | None = None) -> str:
    """Why there is nothing to compare with, what there is instead (with the closest names
    to a mistyped one), and, under ``--goblin-compare-fail``, that nothing is gated."""
    runs = list_runs(storage)
    where = storage / RUNS_DIR
    gates = (
        f"; --goblin-compare-fail {fail_pct:g} fails nothing in this run"
        if fail_pct is not None
        else ""
    )
    if not runs:
        return (
            f"no saved run under {where} yet: nothing to compare with "
            f"(save one with --goblin-save){gates}"
        )
    known = ", ".join(run.id for run in runs[-5:])
    hint = did_you_mean(wanted, {*(run.name for run in runs), *(run.id for run in runs)})
    return (
        f"no saved run named {wanted!r}{hint} under {where}: nothing to compare with "
        f"(latest: {known}){gates}"
    )


def load_run(path: Path) -> SavedRun:
    """Read one saved run, or a HistoryError that says why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read saved run: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryError(
            f"{path}: saved run is corrupt (not JSON: {exc}); delete it or compare with another run"
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise HistoryError(f"{path}: not a pytest-goblin saved run (no schema_version)")
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path}: saved by a newer pytest-goblin ({data.get('generator') or 'unknown'}, schema "
            f"version {version}); this pytest-goblin {__version__} reads schema versions up to "
            f"{SCHEMA_VERSION}: upgrade pytest-goblin or compare with another run"
        )
    try:
        return SavedRun.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:3]
        )
        raise HistoryError(
            f"{path}: saved run is corrupt ({problems}); delete it or compare with another run"
        ) from None


def select(storage: Path, wanted: str) -> SavedRun | None:
    """The run ``--goblin-compare`` asks for, or None when none is saved under that name."""
    found = find_run(storage, wanted)
    return load_run(found.path) if found else None


def auto_name(commit: Commit | None) -> str:
    """The name of a run saved without one: its commit, or ``run`` outside git."""
    if commit is None:
        return "run"
    return commit.id[:12] + ("-dirty" if commit.dirty else "")


def document(
    run_id: str,
    name: str,
    results: Sequence[WorkloadResult],
    commit: Commit | None,
    saved_at: datetime,
) -> dict[str, Any]:
    """The JSON document of a run: every workload that has a measured (or projected) baseline."""
    workloads = {}
    for result in results:
        if result.baseline is None or result.device is None:
            continue
        workloads[result.nodeid] = {
            "name": result.name,
            "path": result.path,
            "outcome": result.outcome,
            "config_hash": result.baseline.config_hash,
            "device": result.device.model_dump(mode="json"),
            "device_fingerprint": device_fingerprint(result.device),
            "baseline": result.baseline.model_dump(mode="json"),
            "patched": result.patched.model_dump(mode="json") if result.patched else None,
            "speedup": result.speedup,
            "speedup_ci": list(result.speedup_ci) if result.speedup_ci else None,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-goblin {__version__}",
        "id": run_id,
        "name": name,
        "saved_at": saved_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": (
            {"id": commit.id, "branch": commit.branch, "dirty": commit.dirty} if commit else None
        ),
        "workloads": workloads,
    }


def save(
    storage: Path,
    name: str,
    results: Sequence[WorkloadResult],
    commit: Commit | None,
    saved_at: datetime | None = None,
) -> Path:
    """Save a run under the next free number; returns its file.

    A number is taken by creating ``<storage>/numbers/NNNN`` (which fails if it exists), so
    two sessions saving at once, even under different names, never share a run number."""
    when = saved_at or datetime.now(timezone.utc)
    runs = list_runs(storage)
    used = {run.number for run in runs}
    number = runs[-1].number + 1 if runs else 1
    while True:
        if number in used or not _take_number(storage, number):
            number += 1
            continue
        run_id = f"{number:04d}_{name}"
        path = storage / RUNS_DIR / f"{run_id}.json"
        document_ = document(run_id, name, results, commit, when)
        text = json.dumps(document_, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        try:
            create_text(path, text)
        except FileExistsError:
            number += 1
            continue
        return path


def _take_number(storage: Path, number: int) -> bool:
    """Claim a run number for this session; False when another session holds it."""
    try:
        create_text(storage / NUMBERS_DIR / f"{number:04d}", "")
    except FileExistsError:
        return False
    return True


def compare(
    saved: SavedRun, result: WorkloadResult, fail_pct: float | None
) -> HistoryComparison | None:
    """This result's baseline against the saved run; None when the result has no numbers."""
    if result.baseline is None or result.device is None:
        return None
    now = result.baseline.tokens_per_sec
    entry = saved.workloads.get(result.nodeid)
    commit = saved.commit.id if saved.commit else None
    if entry is None:
        return HistoryComparison(
            run=saved.id,
            status="new",
            tokens_per_sec=now,
            saved_commit=commit,
            reason=f"not in saved run {saved.id}",
        )
    then = entry.baseline.tokens_per_sec
    if entry.device_fingerprint != device_fingerprint(result.device):
        was = _device_label(entry.device)
        return HistoryComparison(
            run=saved.id,
            status="not_comparable",
            saved_tokens_per_sec=then,
            tokens_per_sec=now,
            saved_commit=commit,
            reason=f"saved on {was}, now on {_device_label(result.device.model_dump())}",
        )
    change = (now - then) / then * 100 if then > 0 else 0.0
    interval = _change_interval(entry.baseline, result.baseline, result.baseline.projected)
    floor = None if fail_pct is None else -fail_pct
    beyond = floor is not None and change < floor
    regressed = beyond and (interval is None or (floor is not None and interval[1] < floor))
    changed = bool(entry.config_hash) and entry.config_hash != result.baseline.config_hash
    reason = (
        f"baseline {now:,.0f} tok/s against {then:,.0f} tok/s in saved run {saved.id} "
        f"({change:+.1f}%{_describe_interval(interval, result)})"
    )
    if regressed:
        reason += f": slower by more than {fail_pct:g}%"
    elif beyond and interval is not None:
        reason += (
            f": slower by more than {fail_pct:g}% at the medians, but the interval "
            f"reaches {interval[1]:+.1f}%: within the two runs' noise, not a regression"
        )
    if changed:
        reason += "; the config changed since"
    return HistoryComparison(
        run=saved.id,
        status="compared",
        saved_tokens_per_sec=then,
        tokens_per_sec=now,
        change_pct=change,
        change_ci_pct=interval,
        regressed=regressed,
        fail_pct=fail_pct,
        config_changed=changed,
        saved_commit=commit,
        reason=reason,
    )


def _change_interval(
    then: SavedMetrics, now: RunMetrics, projected: bool
) -> tuple[float, float] | None:
    """The confidence interval of the change in %, from both runs' windows; None for
    projected numbers (exact) or when a run has fewer than ``INTERVAL_WINDOWS`` windows."""
    if projected or min(len(then.samples), len(now.samples)) < INTERVAL_WINDOWS:
        return None
    _, (low, high) = independent_ratio(then.samples, now.samples)
    return (low - 1) * 100, (high - 1) * 100


def _describe_interval(interval: tuple[float, float] | None, result: WorkloadResult) -> str:
    if result.projected:
        return ", projected"
    if interval is None:
        return f", measured; point estimates: a run has fewer than {INTERVAL_WINDOWS} windows"
    return (
        f" [{interval[0]:+.1f}%, {interval[1]:+.1f}%] at {DEFAULT_CONFIDENCE:.0%} "
        "confidence, measured"
    )


def change_text(comparison: HistoryComparison) -> str:
    """``-7.9%``, with its interval when it has one: ``-7.9% [-9.4%, -6.2%]``."""
    text = f"{comparison.change_pct or 0.0:+.1f}%"
    if comparison.change_ci_pct is not None:
        low, high = comparison.change_ci_pct
        text += f" [{low:+.1f}%, {high:+.1f}%]"
    return text


def summary_line(saved: SavedRun, results: Sequence[WorkloadResult], fail_pct: float | None) -> str:
    """One line for the terminal: what was compared with what, and how it came out."""
    comparisons = [r.history for r in results if r.history is not None]
    counts = {
        status: sum(1 for c in comparisons if c.status == status)
        for status in ("compared", "not_comparable", "new")
    }
    parts = [f"{counts['compared']} compared"]
    if fail_pct is not None:
        parts.append(f"{sum(1 for c in comparisons if c.regressed)} regressed beyond {fail_pct:g}%")
    if counts["not_comparable"]:
        parts.append(f"{counts['not_comparable']} not comparable (other device)")
    if counts["new"]:
        parts.append(f"{counts['new']} new")
    return f"history: against {saved.describe()}: {', '.join(parts)}"


def _device_label(device: dict[str, Any]) -> str:
    name = str(device.get("name") or "unknown device")
    return f"{name} (simulated)" if device.get("kind") == "simulated" else name
