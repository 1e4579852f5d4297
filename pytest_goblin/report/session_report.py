"""What every reporter is handed at the end of a session (``pytest_goblin_report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_goblin.report.summary import RunInfo
from pytest_goblin.schemas import WorkloadResult

if TYPE_CHECKING:
    # Only the plugin builds settings; the reporters read them, so pytest stays out of
    # this module's imports.
    from pytest_goblin.plugin.settings import GoblinSettings


@dataclass
class SessionReport:
    """The whole session's results and context, once, on the controller.

    ``results``: one WorkloadResult per audited workload, sorted by node id
    (the same objects the JSON report dumps). ``run``: device, backend,
    threshold, ``projected``, and the saved run compared with. ``settings``:
    the session's resolved options. ``exitstatus``: pytest's exit status.
    Reporters append to ``lines`` what the terminal should say they did, and
    to ``stdout`` text to print after the goblin section (``--goblin-md -``).
    ``failures``: each output that could not be written, with its path and the
    reason; printed after the summary, and the run exits with pytest's internal-error
    status, since a gate whose report is missing must not look like a plain failure.
    """

    results: list[WorkloadResult]
    run: RunInfo
    settings: GoblinSettings
    rootpath: Path
    exitstatus: int
    lines: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
