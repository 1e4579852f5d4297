"""The native goblin format: a YAML or JSON mapping of WorkloadConfig fields.

Keys are the WorkloadConfig field names, plus a ``goblin:`` section with the
per-workload plugin settings. Keys left out take the Hugging Face Trainer's
defaults, so an unset key never
looks like a finding that the user did not write.

Patches are written back by editing the user's text in place: only the lines
that hold a changed value move, comments and order stay.
"""

from __future__ import annotations

import difflib
from typing import Any

from pytest_goblin.errors import NotAWorkload, WorkloadError
from pytest_goblin.formats import llamafactory_v1, torchtune
from pytest_goblin.formats.json_edit import JsonText
from pytest_goblin.formats.yaml_edit import YamlText
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


def names_a_model(data: Any) -> bool:
    """A mapping with ``model`` or ``model_name``, whatever its other keys.

    ``detect`` needs most keys to be ours, so that a stray YAML met while scanning
    a directory is left alone; a file that is a workload by its name or because
    the user named it is read with this looser test instead, so that a
    ``model``-only workload runs and a misspelt key is an error naming that key. A
    LLaMA-Factory v1 file also names its ``model``: one with a key v1 refuses is that
    framework's near miss, never ours; so is a torchtune config that does not train
    (generation, evaluation), which ``formats.missing_markers`` names.
    """
    return (
        isinstance(data, dict)
        and bool(_IDENTIFYING_KEYS & data.keys())
        and not llamafactory_v1.detect(data)
        and not torchtune.has_components(data)
    )


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
            msg = _unknown_key(err["loc"], settings=prefix is not None)
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        problems.append(f"'{loc}': {msg}" if loc else msg)
    if len(problems) == 1:
        # a combination the schema refuses has no field, and its message may hold ": "
        message = problems[0].split(": ", 1)[1] if first_field else problems[0]
        return WorkloadError(path, message, field=first_field)
    return WorkloadError(path, "invalid fields: " + "; ".join(problems))


def _unknown_key(loc: tuple[Any, ...], settings: bool) -> str:
    """What a top-level unknown key is not, and the known key it is closest to (a typo,
    usually)."""
    if len(loc) != 1:
        return "unknown key"
    model = WorkloadSettings if settings else WorkloadConfig
    close = difflib.get_close_matches(str(loc[0]), list(model.model_fields), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key (not a {'goblin setting' if settings else 'WorkloadConfig field'}{hint})"


def apply(text: str, suffix: str, new_values: dict[str, Any]) -> str:
    """The user's file with ``new_values`` (dotted WorkloadConfig paths) written in."""
    if suffix == ".json":
        document = JsonText(text)
        for path, value in new_values.items():
            document.set(path.split("."), value)
        return document.text()
    yaml_document = YamlText(text)
    for path, value in new_values.items():
        parts = path.split(".")
        yaml_document.set(parts, value, before=SETTINGS_KEY, quote=len(parts) > 1)
    return yaml_document.text()
