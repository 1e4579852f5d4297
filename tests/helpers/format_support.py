"""Helpers for the format tests: copy a file under tests/data/format_files, patch it, apply diffs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from helpers import paths
from pytest_goblin.schemas import Change
from pytest_goblin.workload.read import Workload, load_workload

FILES = paths.DATA / "format_files"


def copy_in(tmp_path: Path, relpath: str) -> Path:
    """The test file at ``relpath`` copied under ``tmp_path`` (same relative path)."""
    target = tmp_path / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FILES / relpath, target)
    return target


def load(tmp_path: Path, relpath: str) -> Workload:
    """Load a copy of a test file, displayed relative to ``tmp_path`` like the plugin does."""
    copy_in(tmp_path, relpath)
    return load_workload(tmp_path / relpath, display=relpath)


def write(tmp_path: Path, relpath: str, text: str) -> Workload:
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_workload(path, display=relpath)


def change(workload: Workload, field: str, new: Any) -> Change:
    """A Change of ``field`` (dotted for env_vars) from its current value to ``new``."""
    value: Any = workload.config.model_dump()
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return Change(field=field, old=value, new=new, rule_id="test-rule")


def apply_diff(tool: list[str], diff: str, root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``git apply`` or ``patch -p1`` on ``diff`` in ``root``."""
    return subprocess.run(tool, input=diff, text=True, cwd=root, capture_output=True, check=False)
