"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A report path is the user's: when it is a symlink, the file it points to is written
(the link stays a link), and when it names something that is not a regular file (a
device such as ``/dev/full``, a FIFO, a directory) nothing is replaced: the write is
refused with an OSError that says so. Renaming a temporary file over ``/dev/full``
as root would replace the device node with a plain file.
"""

from __future__ import annotations

import errno
import os
import stat
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


def target(path: Path) -> Path:
    """Where writing ``path`` should land: through a symlink to the file it names, and
    never over something that is not a regular file (OSError naming it)."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return real
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise OSError(errno.EEXIST, f"{kind}; refusing to replace it", str(path))
    return real


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` (or the file it links to) and
    rename it into place."""
    path = target(path)
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


def describe_write_error(exc: BaseException) -> str:
    """Why a file could not be written, in one line (``[Errno 21] Is a directory`` → ``Is a
    directory``), without the temporary file's name an OSError may carry."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"
