"""The end-of-session outputs beside the JSON report: Markdown, HTML and the saved run.

Runs once, on the controller (never on an xdist worker), after every result is
in. Returns what the terminal should say about them, so the session hook only
prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_goblin import history
from pytest_goblin.atomic import describe_write_error, write_text
from pytest_goblin.gitinfo import current_commit
from pytest_goblin.report import html, markdown
from pytest_goblin.report.summary import RunInfo
from pytest_goblin.schemas import WorkloadResult

if TYPE_CHECKING:
    # Only the plugin builds settings; reporters read them, so pytest stays out of
    # this module's imports.
    from pytest_goblin.plugin.settings import GoblinSettings


@dataclass
class Published:
    """What was written where, as lines for the terminal, and Markdown meant for stdout."""

    lines: list[str] = field(default_factory=list)
    markdown_stdout: str | None = None
    failures: list[str] = field(default_factory=list)
    """Each output that could not be written: what, where, and why."""


def publish(
    results: Sequence[WorkloadResult],
    info: RunInfo,
    settings: GoblinSettings,
    rootpath: Path,
    interrupted: bool = False,
) -> Published:
    """Write what the settings ask for. An ``interrupted`` run (Ctrl-C) is not saved to
    history: a later ``--goblin-compare latest`` would meet a run missing workloads.

    Each output is written on its own: one that cannot be written (a directory in its
    place, no permission, a full disk) is listed in ``failures`` and the others are
    still written."""
    out = Published()
    if settings.md_path:
        text = markdown.render(results, info)
        try:
            written = markdown.write(settings.md_path, settings.invocation_dir, text)
        except (OSError, ValueError) as exc:
            where = settings.invocation_dir / settings.md_path
            out.failures.append(f"Markdown summary {where}: {describe_write_error(exc)}")
        else:
            if written is None:
                out.markdown_stdout = text
            else:
                out.lines.append(f"Markdown summary: {written}")
    if settings.html_path is not None:
        path = settings.invocation_dir / settings.html_path
        try:
            write_text(path, html.render(results, info))
        except (OSError, ValueError) as exc:
            out.failures.append(f"HTML report {path}: {describe_write_error(exc)}")
        else:
            out.lines.append(f"HTML report: {path}")
    if settings.save is not None:
        if interrupted:
            out.lines.append("history: not saved: the run was interrupted")
        else:
            try:
                out.lines.append(_save(results, settings, rootpath))
            except (OSError, ValueError) as exc:
                where = settings.storage / history.RUNS_DIR
                out.failures.append(f"saved run under {where}: {describe_write_error(exc)}")
    return out


def _save(results: Sequence[WorkloadResult], settings: GoblinSettings, rootpath: Path) -> str:
    if not any(r.baseline is not None and r.device is not None for r in results):
        return "history: nothing saved: no workload has numbers"
    commit = current_commit(rootpath)
    name = settings.save or history.auto_name(commit)
    path = history.save(settings.storage, name, results, commit)
    return f"history: saved run {path.stem} to {_relative(path)}"


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
