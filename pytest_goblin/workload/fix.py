"""``--goblin-fix``: write the winning patch into each failing workload's own file.

Like a linter's ``--fix``: only items that fail because a patch beats them,
only the changes that were benchmarked (the ones the file's format can
express), written atomically with the file's permissions kept, and only when
the file is still the text that was audited, and never into a file its owner made
read-only (0444). The terminal summary lists what was written where, and each patch
that was not written with the reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pytest_goblin.atomic import describe_write_error, write_text
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.workload.read import Workload, plan_patch


def write_fix(workload: Workload, result: WorkloadResult) -> WorkloadResult:
    """Write the result's patch into the workload's file; the returned result says whether."""
    if result.patch is None or not result.patch.changes:
        return result
    source = workload.source
    try:
        current = source.path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _not_written(result, f"cannot read {source.display_path}: {exc}")
    if current != source.text:
        return _not_written(result, f"{source.display_path} changed since it was audited")
    planned = plan_patch(workload, result.patch.changes)
    if planned.dropped:
        reasons = "; ".join(f"{change.field}: {why}" for change, why in planned.dropped)
        return _not_written(result, reasons)
    mode = stat.S_IMODE(source.path.stat().st_mode)
    if not mode & stat.S_IWUSR:
        return _not_written(result, f"{source.display_path} is read-only (mode {mode:04o})")
    try:
        write_text(source.path, planned.text)
        os.chmod(source.path, mode)
    except OSError as exc:
        return _not_written(
            result, f"cannot write {source.display_path}: {describe_write_error(exc)}"
        )
    return result.model_copy(update={"fixed": True})


NOT_WRITTEN = "--goblin-fix did not write the patch: "
"""How a result's note says that its patch was not written, before the reason."""


def _not_written(result: WorkloadResult, why: str) -> WorkloadResult:
    return result.model_copy(update={"notes": [*result.notes, NOT_WRITTEN + why]})


def fix_summary(results: Sequence[WorkloadResult]) -> str:
    """What ``--goblin-fix`` wrote: one line per file, then its changes."""
    fixed = [result for result in results if result.fixed and result.patch is not None]
    skipped = [
        (result, note.removeprefix(NOT_WRITTEN))
        for result in results
        for note in result.notes
        if note.startswith(NOT_WRITTEN)
    ]
    lines = [f"--goblin-fix wrote {len(fixed)} file(s):"] if fixed else []
    for result in fixed:
        assert result.patch is not None
        changes = ", ".join(
            f"{c.field} {_show(c.old)} -> {_show(c.new)}" for c in result.patch.changes
        )
        lines.append(f"  {result.path}: {changes}")
    if skipped:
        lines.append(f"--goblin-fix did not write {len(skipped)} patch(es):")
        lines += [f"  {result.path}: {why}" for result, why in skipped]
    return "\n".join(lines)


def _show(value: object) -> str:
    return "unset" if value is None else str(value)
