"""Exceptions that carry a message meant for the user, not a traceback."""

from __future__ import annotations


class GoblinError(Exception):
    """Base class: the message is complete and names what the user must fix."""


class WorkloadError(GoblinError):
    """A workload file that cannot be read: names the file and the field."""

    def __init__(self, path: str, message: str, field: str | None = None) -> None:
        self.path = path
        self.field = field
        self.message = message
        where = f"{path}: field '{field}'" if field else path
        super().__init__(f"{where}: {message}")


class NotAWorkload(GoblinError):
    """A readable file whose content is not a workload."""


class AuditError(GoblinError):
    """The audit could not be completed (the item ends as an error)."""
