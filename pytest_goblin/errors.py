"""Exceptions that carry a message meant for the user, not a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_goblin.printable import printable

if TYPE_CHECKING:
    from pytest_goblin.runner.analytic import MemoryEstimate
    from pytest_goblin.schemas import DeviceInfo, NoiseFloor


class GoblinError(Exception):
    """Base class: the message is complete and names what the user must fix."""


class WorkloadError(GoblinError):
    """A workload file that cannot be read: names the file and the field."""

    def __init__(self, path: str, message: str, field: str | None = None) -> None:
        self.path = path
        self.field = field
        # a key or value quoted from the file may hold a newline or an escape sequence
        self.message = printable(message)
        self.format: str | None = None
        """The format the file was recognised as before reading it failed (None when the
        error came first): the errored item's result still says what the file is."""
        where = f"{printable(path)}: field '{printable(field)}'" if field else printable(path)
        super().__init__(f"{where}: {self.message}")


class NotAWorkload(GoblinError):
    """A readable file whose content is not a workload."""


class AuditError(GoblinError):
    """The audit could not be completed (the item ends as an error)."""


class UnsupportedConfig(GoblinError):
    """The device cannot run this config (flash attention on a CPU, fp8, a missing
    library): the item is skipped with this reason, never run as something else."""

    def __init__(self, reason: str, device: DeviceInfo | None = None) -> None:
        super().__init__(reason)
        self.device = device


class RunFailed(GoblinError):
    """A measured run ended without a result: the config's run failed (an error, a
    diverged loss); the audit goes on and may try something else."""


class OutOfMemory(RunFailed):
    """The config does not fit the device's memory: a measured run ran out (its message
    starts with ``oom:``), or the analytic model projects a peak above the device's
    memory (``memory`` then holds the estimate, so a report can show what did not fit)."""

    def __init__(self, message: str, memory: MemoryEstimate | None = None) -> None:
        super().__init__(message)
        self.memory = memory


class DeviceFault(GoblinError):
    """The device worker crashed or timed out. The run says nothing about the config,
    so the audit stops and its item errors; the next run starts a fresh worker."""


class ThresholdBelowNoise(GoblinError):
    """``--goblin-calibrate`` measured more noise on the device than the workload's
    threshold: its verdict would flake, so the item errors with the figures."""

    def __init__(self, message: str, floor: NoiseFloor) -> None:
        super().__init__(message)
        self.floor = floor
