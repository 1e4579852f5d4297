"""Reading workload files into Workloads, and writing patches back as diffs.

Files are parsed, never executed (``yaml.safe_load``, ``json``). Every error
names the file and, where there is one, the field.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_goblin.errors import NotAWorkload, WorkloadError
from pytest_goblin.formats import native
from pytest_goblin.redact import redact_mapping, redact_text
from pytest_goblin.schemas import Change, WorkloadConfig, WorkloadSettings

WORKLOAD_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
MAX_FILE_BYTES = 1_000_000
"""Workload files are small; a bigger file is refused rather than parsed."""
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: same semantics, much faster."""


@dataclass(frozen=True)
class WorkloadSource:
    """Where a workload came from: the file, its format and its text."""

    path: Path
    display_path: str
    format: str
    text: str


@dataclass(frozen=True)
class Workload:
    name: str
    config: WorkloadConfig
    settings: WorkloadSettings
    source: WorkloadSource


def default_name(path: Path) -> str:
    """``llama.goblin.yaml`` → ``llama``: the workload name when the file gives none."""
    name = path.name
    for suffix in (".goblin.yaml", ".goblin.yml", ".goblin.json", ".yaml", ".yml", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_data(path: Path, display: str) -> tuple[str, Any]:
    """The file's text and parsed content, or a WorkloadError that says why not."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkloadError(display, f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise WorkloadError(display, f"file is {len(raw)} bytes; workloads are limited to 1 MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError(display, f"not UTF-8 text (byte {exc.start})") from None
    if path.suffix == ".json":
        try:
            return text, json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkloadError(
                display, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        return text, yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WorkloadError(display, f"invalid YAML{where}: {problem}") from None


def is_workload_data(data: Any) -> bool:
    """Whether parsed content looks like a workload in any supported format."""
    return native.detect(data)


def load_workload(path: Path, display: str | None = None) -> Workload:
    """Read and validate one workload file."""
    display = display or str(path)
    text, data = load_data(path, display)
    return parse_workload(path, display, text, data)


def parse_workload(path: Path, display: str, text: str, data: Any) -> Workload:
    """Validate already-loaded content into a Workload."""
    if data is None:
        raise WorkloadError(display, "file is empty")
    if not native.detect(data):
        raise NotAWorkload(
            f"{display}: not a workload: expected a mapping with `model` or `model_name` "
            "and WorkloadConfig fields"
        )
    config, settings = native.read(data, display)
    config = config.model_copy(update={
        "env_vars": redact_mapping(config.env_vars),
        "extras": redact_mapping(config.extras),
    })
    name = config.name or default_name(path)
    source = WorkloadSource(path=path, display_path=display, format=native.NAME, text=text)
    return Workload(name=name, config=config, settings=settings, source=source)


def patch_diff(workload: Workload, changes: list[Change]) -> str:
    """A unified diff of the user's own file with the changes applied.

    The edit is checked by reading the edited text back: a diff that would not
    produce the patched config is never shown.
    """
    new_values = {change.field: change.new for change in changes}
    source = workload.source
    edited = native.apply(source.text, source.path.suffix, new_values)
    reread = json.loads(edited) if source.path.suffix == ".json" else yaml.safe_load(edited)
    config, _ = native.read(reread, source.display_path)
    for change in changes:
        if _get_path(config, change.field) != change.new:
            raise ValueError(f"editing {source.display_path} in place did not set {change.field}")
    lines = difflib.unified_diff(
        source.text.splitlines(keepends=True),
        edited.splitlines(keepends=True),
        fromfile=f"a/{source.display_path}",
        tofile=f"b/{source.display_path}",
    )
    return redact_text("".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in lines
    ))


def _get_path(config: WorkloadConfig, dotted: str) -> Any:
    value: Any = config.model_dump()
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
