"""The git commit a run was made at, so a saved run says what code it measured.

Outside a git checkout, or without git, there is no commit: that is not an error.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Commit:
    id: str
    branch: str | None
    dirty: bool


def current_commit(where: Path) -> Commit | None:
    """HEAD of the checkout holding ``where``, or None when there is none."""
    head = _git(where, "rev-parse", "HEAD")
    if head is None:
        return None
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    return Commit(id=head, branch=None if branch in (None, "HEAD") else branch, dirty=bool(status))


def _git(where: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
