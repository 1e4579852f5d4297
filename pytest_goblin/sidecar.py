"""Sidecar files: what pytest-goblin needs about a workload that its own format cannot say.

An axolotl, TRL, LLaMA-Factory, torchtune or Hugging Face file has no place for
a model's dims (when its id is not a preset), the launcher's world size, or
per-workload goblin settings, and most of these formats reject unknown keys.
So they go next to it, in ``<file name without extension>.goblin.yaml``::

    # train_qlora.goblin.yaml, beside train_qlora.py
    model: {layers: 24, hidden: 2048, intermediate: 5632, heads: 16, kv_heads: 4, vocab: 32000}
    world_size: 8
    goblin:
      threshold: 0.15
      ignore: [fused-adamw]

A sidecar is never collected as a workload of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from pytest_goblin import safe_yaml
from pytest_goblin.errors import WorkloadError
from pytest_goblin.schemas import WorkloadSettings

SUFFIX = ".goblin.yaml"
OWNER_SUFFIXES = (".py", ".yaml", ".yml", ".json")
KEYS = ("name", "model", "world_size", "goblin")


@dataclass(frozen=True)
class Sidecar:
    """The sidecar's contents: config fields (model, world_size), settings, a name."""

    fields: dict[str, Any] = field(default_factory=dict)
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    name: str | None = None
    display: str | None = None


def sidecar_path(path: Path) -> Path:
    """``configs/train.yml`` → ``configs/train.goblin.yaml``."""
    return path.with_name(path.name.removesuffix(path.suffix) + SUFFIX)


def is_sidecar(path: Path) -> bool:
    """A ``X.goblin.yaml`` beside ``X.py``/``X.yaml``/``X.yml``/``X.json`` belongs to it."""
    if not path.name.endswith(SUFFIX):
        return False
    base = path.name.removesuffix(SUFFIX)
    return any((path.parent / f"{base}{suffix}").is_file() for suffix in OWNER_SUFFIXES)


def load_sidecar(path: Path, display: str) -> Sidecar:
    """The sidecar of the workload file at ``path`` (empty when there is none)."""
    from pydantic import ValidationError

    location = sidecar_path(path)
    if not location.is_file():
        return Sidecar()
    shown = str(PurePosixPath(display).with_name(location.name))
    try:
        data = safe_yaml.load(location.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WorkloadError(shown, "cannot read the sidecar: "
                            + safe_yaml.describe_error(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(shown, f"cannot read the sidecar: {exc}") from None
    if not isinstance(data, dict):
        raise WorkloadError(shown, "a sidecar is a mapping with keys " + ", ".join(KEYS))
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise WorkloadError(shown, f"unknown key (a sidecar has {', '.join(KEYS)}; the rest of "
                            "the config lives in the workload file)", field=unknown[0])
    try:
        settings = WorkloadSettings.model_validate(data.get("goblin") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise WorkloadError(shown, str(first["msg"]), field=f"goblin.{where}") from None
    fields = {key: data[key] for key in ("model", "world_size") if data.get(key) is not None}
    return Sidecar(fields=fields, settings=settings, name=data.get("name"), display=shown)
