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

``seq_len: 2048`` is only for a file that leaves the sequence length unknown
(a torchtune recipe with ``tokenizer.max_seq_len: null``, a Trainer script):
the file's own value, or its framework's default, is what really trains, so a
sidecar that says otherwise is an error rather than an override (see
``check_fills``). ``objective: dpo`` likewise says which trainer runs a TRL file whose
keys (``beta``, ``max_prompt_length``) DPO, ORPO, CPO and KTO share. ``strategy: fsdp`` (or ``ddp``, ``deepspeed``) with
``world_size``, ``zero_stage`` (1 shards optimizer state, 2 also gradients, 3
also parameters), ``offload_optimizer`` / ``offload_params``, ``fsdp_version`` and
``communication_data_type`` describes how a
launcher (``accelerate launch``, ``torchrun``, an accelerate DeepSpeed or FSDP
config) runs a file that does not say it itself; where the file names its
sharding (axolotl ``fsdp:``, a ``deepspeed:`` config the frameworks ship,
torchtune's FSDP keys), a different sidecar value is an error.

A sidecar is never collected as a workload of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import yaml

from pytest_goblin import safe_yaml
from pytest_goblin.errors import WorkloadError
from pytest_goblin.schemas import WorkloadSettings

SUFFIX = ".goblin.yaml"
OWNER_SUFFIXES = (".py", ".yaml", ".yml", ".json")
LAUNCH = (
    "world_size",
    "strategy",
    "zero_stage",
    "offload_optimizer",
    "offload_params",
    "fsdp_version",
    "communication_data_type",
)
"""How a launcher runs the file: ranks, sharding, ZeRO stage, CPU offload, the FSDP version
(an accelerate FSDP config's ``fsdp_version``) and DeepSpeed's ``communication_data_type``
(a DeepSpeed config file the workload only names)."""
KEYS = ("name", "model", *LAUNCH, "seq_len", "objective", "goblin")
FILLS = ("seq_len", "objective", *LAUNCH[1:])
"""Sidecar fields that only fill in what the file leaves unknown, never override it."""


@dataclass(frozen=True)
class Sidecar:
    """The sidecar's contents: config fields (model, world_size, seq_len), settings, a name."""

    fields: dict[str, Any] = field(default_factory=dict)
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    name: str | None = None
    display: str | None = None


def sidecar_path(path: Path) -> Path:
    """``configs/train.yml`` → ``configs/train.goblin.yaml``."""
    return path.with_name(path.name.removesuffix(path.suffix) + SUFFIX)


def sidecar_display(display: str) -> str:
    """How errors name the sidecar of the workload file shown as ``display``."""
    return str(PurePosixPath(display).with_name(sidecar_path(Path(display)).name))


def is_sidecar(path: Path) -> bool:
    """A ``X.goblin.yaml`` beside ``X.py``/``X.yaml``/``X.yml``/``X.json`` belongs to it.

    Asked of every ``.goblin.yaml`` file collection meets: the owners are looked up as
    strings, four stats with no ``Path`` built for each."""
    text = os.fspath(path)
    if not text.endswith(SUFFIX):
        return False
    base = text.removesuffix(SUFFIX)
    return any(os.path.isfile(base + suffix) for suffix in OWNER_SUFFIXES)


def load_sidecar(path: Path, display: str) -> Sidecar:
    """The sidecar of the workload file at ``path`` (empty when there is none)."""
    from pydantic import ValidationError

    location = sidecar_path(path)
    if not location.is_file():
        return Sidecar()
    shown = sidecar_display(display)
    try:
        data = safe_yaml.load(location.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WorkloadError(
            shown, "cannot read the sidecar: " + safe_yaml.describe_error(exc)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(shown, f"cannot read the sidecar: {exc}") from None
    if not isinstance(data, dict):
        raise WorkloadError(shown, "a sidecar is a mapping with keys " + ", ".join(KEYS))
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise WorkloadError(
            shown,
            f"unknown key (a sidecar has {', '.join(KEYS)}; the rest of "
            "the config lives in the workload file)",
            field=unknown[0],
        )
    try:
        settings = WorkloadSettings.model_validate(data.get("goblin") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise WorkloadError(shown, str(first["msg"]), field=f"goblin.{where}") from None
    fields = {
        key: data[key] for key in ("model", *LAUNCH, "objective") if data.get(key) is not None
    }
    if data.get("seq_len") is not None:
        fields["seq_len"] = _seq_len(data["seq_len"], shown)
    return Sidecar(fields=fields, settings=settings, name=data.get("name"), display=shown)


def _seq_len(value: Any, shown: str) -> int:
    """``seq_len`` as the native format takes it (WorkloadConfig's own bounds)."""
    from pydantic import TypeAdapter, ValidationError

    from pytest_goblin.schemas import WorkloadConfig

    try:
        return TypeAdapter(Annotated[int, WorkloadConfig.model_fields["seq_len"]]).validate_python(
            value
        )
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"])
        raise WorkloadError(shown, f"{message} (got {value!r})", field="seq_len") from None


def check_fills(
    sidecar: Sidecar, reading_fields: dict[str, Any], sources: dict[str, str], display: str
) -> None:
    """A sidecar value for a field the file already decides must agree with the file.

    The file (or, where it is silent, its framework's default) is what really
    trains; a different sidecar value would audit a run that never happens.
    """
    for name in FILLS:
        if name not in sidecar.fields or name not in reading_fields:
            continue
        value, given = reading_fields[name], sidecar.fields[name]
        if value == given:
            continue
        source = sources.get(name)
        decided = (
            f"{display} sets it: `{source}` is {value}"
            if source
            else f"{display} trains at its framework's default, {value}"
        )
        raise WorkloadError(
            sidecar.display or sidecar_display(display),
            f"{given} differs from the file's own {name}: {decided}. A sidecar's "
            f"{name} is only for a file that leaves it unknown; change the file "
            "or remove it here",
            field=name,
        )
