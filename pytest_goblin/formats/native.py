"""The native goblin format: a YAML or JSON mapping of WorkloadConfig fields.

Keys are the WorkloadConfig field names, plus a ``goblin:`` section with the
per-workload plugin settings. Keys left out take the Hugging Face Trainer's
defaults (the seed's field names are the Trainer's), so an unset key never
looks like a finding that the user did not write.

Patches are written back by editing the user's text in place: only the lines
that hold a changed value move, comments and order stay.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from pytest_goblin.errors import NotAWorkload, WorkloadError
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

NAME = "goblin"
SETTINGS_KEY = "goblin"
_IDENTIFYING_KEYS = frozenset({"model", "model_name"})
_CONFIG_KEYS = frozenset(WorkloadConfig.model_fields)


def detect(data: Any) -> bool:
    """A mapping that names a model and uses only our keys is a native workload."""
    if not isinstance(data, dict) or not _IDENTIFYING_KEYS & data.keys():
        return False
    known = sum(1 for key in data if key in _CONFIG_KEYS or key == SETTINGS_KEY)
    return known >= max(2, len(data) // 2)


def read(data: Any, path: str) -> tuple[WorkloadConfig, WorkloadSettings]:
    """Validate a loaded mapping into a config and its settings."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise NotAWorkload(f"{path}: a workload is a mapping of fields, got {type(data).__name__}")
    fields = dict(data)
    raw_settings = fields.pop(SETTINGS_KEY, None) or {}
    try:
        settings = WorkloadSettings.model_validate(raw_settings)
    except ValidationError as exc:
        raise _validation_error(path, exc, prefix=SETTINGS_KEY) from None
    try:
        config = WorkloadConfig.model_validate(fields)
    except ValidationError as exc:
        raise _validation_error(path, exc) from None
    if config.model is None:
        raise WorkloadError(
            path,
            f"no architecture known for model_name {config.model_name!r}; set `model` to a "
            "preset (llama-3-8b, qwen2.5-7b, …) or to dims: "
            "{layers, hidden, intermediate, heads, kv_heads, vocab}",
            field="model",
        )
    return config, settings


def _validation_error(path: str, exc: Any, prefix: str | None = None) -> WorkloadError:
    """Turn a pydantic error into one message that names every bad field."""
    problems = []
    first_field = None
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        first_field = first_field or loc or None
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a WorkloadConfig field)"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        problems.append(f"'{loc}': {msg}" if loc else msg)
    if len(problems) == 1:
        return WorkloadError(path, problems[0].split(": ", 1)[1], field=first_field)
    return WorkloadError(path, "invalid fields: " + "; ".join(problems))


def apply(text: str, suffix: str, new_values: dict[str, Any]) -> str:
    """The user's file with ``new_values`` (dotted WorkloadConfig paths) written in."""
    if suffix == ".json":
        return _apply_json(text, new_values)
    return _apply_yaml(text, new_values)


def _apply_json(text: str, new_values: dict[str, Any]) -> str:
    data = json.loads(text)
    for path, value in new_values.items():
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    indent_match = re.search(r"\n([ \t]+)\S", text)
    indent = indent_match.group(1) if indent_match else None
    out = json.dumps(data, indent=indent, ensure_ascii=False)
    out = out + "\n" if text.endswith("\n") else out
    return out.replace("\n", "\r\n") if "\r\n" in text else out


def _scalar(value: Any, quote_strings: bool = False) -> str:
    if isinstance(value, str) and quote_strings:
        return json.dumps(value)
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def _apply_yaml(text: str, new_values: dict[str, Any]) -> str:
    """Edit line by line in "\n" form, then restore the file's line endings."""
    crlf = "\r\n" in text
    body = text.replace("\r\n", "\n")
    final_newline = body.endswith("\n") or not body
    lines = body.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for path, value in new_values.items():
        parent, _, leaf = path.rpartition(".")
        if parent:
            _set_nested(lines, parent, leaf, value)
        else:
            _set_top_level(lines, path, value)
    edited = "".join(lines)
    if not final_newline:
        edited = edited.removesuffix("\n")
    return edited.replace("\n", "\r\n") if crlf else edited


def _top_level_index(lines: list[str], key: str) -> int | None:
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    return next((i for i, line in enumerate(lines) if pattern.match(line)), None)


def _replace_value(line: str, key_pattern: str, rendered: str) -> str:
    match = re.match(rf"^(\s*{key_pattern}\s*:\s*)(.*?)(\s+#.*)?(\r?\n)?$", line)
    assert match is not None
    return f"{match.group(1)}{rendered}{match.group(3) or ''}{match.group(4) or ''}"


def _set_top_level(lines: list[str], key: str, value: Any) -> None:
    index = _top_level_index(lines, key)
    rendered = _scalar(value)
    if index is not None:
        lines[index] = _replace_value(lines[index], re.escape(key), rendered)
        return
    lines.insert(_insertion_point(lines), f"{key}: {rendered}\n")


def _insertion_point(lines: list[str]) -> int:
    """Where a new top-level key goes: before the ``goblin:`` section and its blank lines."""
    at = _top_level_index(lines, SETTINGS_KEY)
    if at is None:
        return len(lines)
    while at > 0 and not lines[at - 1].strip():
        at -= 1
    return at


def _set_nested(lines: list[str], parent: str, leaf: str, value: Any) -> None:
    """Set ``parent.leaf`` where parent is a top-level block or flow mapping."""
    rendered = _scalar(value, quote_strings=True)
    index = _top_level_index(lines, parent)
    if index is None:
        at = _insertion_point(lines)
        lines[at:at] = [f"{parent}:\n", f"  {leaf}: {rendered}\n"]
        return
    inline = re.match(rf"^{re.escape(parent)}\s*:\s*(\{{.*\}})\s*(#.*)?$", lines[index].rstrip("\n"))
    if inline:
        mapping = yaml.safe_load(inline.group(1)) or {}
        mapping[leaf] = value
        body = ", ".join(f"{k}: {_scalar(v, quote_strings=True)}" for k, v in mapping.items())
        lines[index] = _replace_value(lines[index], re.escape(parent), "{" + body + "}")
        return
    end = index + 1
    indent = "  "
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        child = re.match(rf"^(\s+){re.escape(leaf)}\s*:", lines[end])
        if lines[end].strip() and not lines[end].lstrip().startswith("#"):
            indent = re.match(r"^(\s+)", lines[end]).group(1)  # type: ignore[union-attr]
        if child:
            lines[end] = _replace_value(lines[end], re.escape(leaf), rendered)
            return
        end += 1
    while end > index + 1 and not lines[end - 1].strip():
        end -= 1
    lines.insert(end, f"{indent}{leaf}: {rendered}\n")
