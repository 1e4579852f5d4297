"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _default_mode() -> int:
    """What ``open`` would give a new file: 0o666 less the umask (``mkstemp`` makes 0o600,
    which would hide a report from the CI step that uploads it as another user)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _complete_temp(path: Path, text: str) -> Path:
    """A temporary file beside ``path`` holding all of ``text``, on disk, with the mode a
    plain write would give; removed again if writing it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    tmp = _complete_temp(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_text(path: Path, text: str) -> None:
    """Like ``write_text``, but never replaces: FileExistsError when ``path`` exists.

    The complete temporary file is hard-linked to ``path``, which fails if the
    name is taken, so two writers racing for one name cannot overwrite each other.
    """
    tmp = _complete_temp(path, text)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
