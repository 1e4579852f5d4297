"""Noise floors shared by the xdist workers of one test run, through files.

Every xdist worker is a pytest process of its own, so each would run
``--goblin-calibrate``'s A/A rounds on a device again: minutes on a GPU that
several workers share, and a report listing one device's floor as many times as
workers reached it. The workers of one run instead share a directory named
after xdist's ``testrunuid`` (the same in every worker of a run, new for each
run). Per device, named physically by its ``device_id`` (the lock id its device
worker reports; ``simulated-<name>`` in fake mode), the first worker to need the
floor measures it while holding the device's calibration lock and writes it
there; the others wait for the lock and read it. Workers pinned to different
GPUs have different ids, so each calibrates its own GPU.

A file that cannot be read, or that names another device, is ignored: the floor
is measured again and replaces it. Without filelock (the ``xdist`` and ``torch``
extras bring it; measured runs need it anyway) the workers do not wait for each
other: two may measure one device at once, and the first floor written is the
one both use. The controller removes the run's directory when its session ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_goblin import atomic
from pytest_goblin.runner.measured import file_stem
from pytest_goblin.schemas import NoiseFloor

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

PLUGIN_NAME = "goblin-shared-floors"
DIRECTORY_PREFIX = "pytest-goblin-calibration-"


def run_directory(testrunuid: str) -> Path:
    """Where the workers of the run ``testrunuid`` share their floors."""
    return Path(tempfile.gettempdir()) / f"{DIRECTORY_PREFIX}{file_stem(testrunuid)}"


@dataclass(frozen=True)
class SharedFloors:
    """The floors of one test run's devices, in ``directory``: one file per device."""

    directory: Path

    def floor(self, device_id: str, measure: Callable[[], NoiseFloor]) -> NoiseFloor:
        """The floor of ``device_id``: read when a worker of this run wrote it, else
        measured, holding the device's calibration lock, and written for the others."""
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            return measure()
        path = self.directory / f"{file_stem(device_id)}.json"
        with _lock(path.with_suffix(".lock")):
            found = _read(path, device_id)
            if found is not None:
                return found
            return _publish(path, measure(), device_id)


def _lock(path: Path) -> AbstractContextManager[Any]:
    """The device's calibration lock; none without filelock (see the module's docstring)."""
    try:
        from filelock import FileLock
    except ModuleNotFoundError:
        return nullcontext()
    return FileLock(path)


def _read(path: Path, device_id: str) -> NoiseFloor | None:
    """The floor written at ``path`` for ``device_id``; None when there is none, or the
    file is unreadable, not a floor, or another device's."""
    try:
        floor = NoiseFloor.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    return floor if floor.device_id == device_id else None


def _publish(path: Path, floor: NoiseFloor, device_id: str) -> NoiseFloor:
    """Write ``floor`` unless another worker's is already there (two workers can race
    only without a lock): the one readable file is the floor every worker uses. A write
    that fails costs the other workers a measurement of their own, never this one."""
    text = floor.model_dump_json()
    try:
        atomic.create_text(path, text)
        return floor
    except FileExistsError:
        pass
    except OSError:
        return floor
    theirs = _read(path, device_id)
    if theirs is not None:
        return theirs
    with suppress(OSError):
        atomic.write_text(path, text)  # over a file no worker can read
    return floor


def for_session(config: pytest.Config) -> SharedFloors | None:
    """What this pytest process shares floors through: on an xdist worker, its run's
    directory; otherwise None, the floors stay in the process. Where xdist is
    installed, the process may become a controller: it removes its workers'
    directory when the session ends."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        testrunuid = workerinput.get("testrunuid")
        return SharedFloors(run_directory(testrunuid)) if testrunuid else None
    manager = config.pluginmanager
    if manager.hasplugin("xdist") and not manager.has_plugin(PLUGIN_NAME):
        manager.register(RunDirectories(), PLUGIN_NAME)
    return None


class RunDirectories:
    """On an xdist controller: the runs its workers share floors for, cleaned up at the end."""

    def __init__(self) -> None:
        self.testrunuids: set[str] = set()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: WorkerController) -> None:
        self.testrunuids.add(node.workerinput["testrunuid"])

    def pytest_unconfigure(self) -> None:
        """After the last worker ended: remove what they shared."""
        for testrunuid in self.testrunuids:
            shutil.rmtree(run_directory(testrunuid), ignore_errors=True)
