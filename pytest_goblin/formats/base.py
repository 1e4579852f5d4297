"""What every format module produces and raises, and the helpers they share.

A format reads a file's parsed content into a ``Reading``: WorkloadConfig
inputs plus, for each field, the key of the user's file it came from (fields
the file leaves unset are filled with that framework's real default and have
no source). It writes a patch back as ``Edit``s in its own vocabulary, or
raises ``Unpatchable`` for a change its files have no key for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_goblin.errors import GoblinError, WorkloadError
from pytest_goblin.formats.json_edit import JsonText
from pytest_goblin.formats.vocabulary import Vocabulary
from pytest_goblin.formats.yaml_edit import YamlText

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""LoRA on every linear of a Llama-style block (axolotl lora_target_linear, PEFT all-linear)."""

PEFT_DEFAULT_TARGETS = ["q_proj", "v_proj"]
"""PEFT's default target_modules for llama, mistral, qwen2 and gemma."""

HF_ATTENTION_NAMES = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}
"""How transformers spells each attention class (``attn_implementation``)."""

EIGHT_BIT = (
    "an 8-bit base model (bitsandbytes LLM.int8) without a LoRA adapter: the Hugging Face "
    "Trainer refuses to train a purely quantized model (transformers v5.25.0 "
    "trainer_utils.py validate_quantization_for_training); 8-bit bases are trained, and "
    "modelled, under LoRA (finetune: lora8)"
)
"""Why an 8-bit base model with no adapter is an item error rather than a full fine-tune
read by mistake."""

BOTH_BITS = (
    "load_in_8bit and load_in_4bit are both set: transformers' BitsAndBytesConfig refuses "
    "both at once (v5.25.0 src/transformers/utils/quantization_config.py)"
)
"""Why a file asking for an 8-bit and a 4-bit base at once is an item error."""

DORA = (
    "DoRA (weight-decomposed LoRA: every adapted layer also computes its weight's norm and a "
    "magnitude vector on each forward, 'a bigger overhead than pure LoRA' in PEFT's LoRA "
    "guide, docs/source/developer_guides/lora.md) is not modelled; pytest-goblin models "
    "LoRA and QLoRA adapters"
)
"""Why a DoRA adapter (PEFT ``use_dora``, torchtune ``use_dora``) is an item error rather than
a LoRA reading that would understate its time and memory."""


PREQUANTIZED = re.compile(r"[-_.](awq|gptq|aqlm|eetq|hqq|exl2|gguf)(?=$|[-_.])", re.IGNORECASE)
"""A model id naming a pre-quantized checkpoint (``…-Instruct-AWQ``, ``…-GPTQ-Int4``): the
frameworks train LoRA over its quantized kernels, read from the checkpoint's own config."""


def check_model(name: str, display: str, key: str) -> None:
    """A WorkloadError for a pre-quantized base model, which no reading could model honestly."""
    found = PREQUANTIZED.search(name)
    if found is not None:
        raise WorkloadError(
            display,
            f"{name!r} is a pre-quantized {found.group(1).upper()} checkpoint: LoRA over its "
            "quantized kernels is not one pytest-goblin can model (it models 16/32-bit bases "
            "and 4-bit bitsandbytes QLoRA)",
            field=key,
        )


PARALLELISM_KINDS = ("tensor", "context", "sequence", "pipeline", "expert")
"""The model-parallel axes a reader may find in a file (what ``refuse_parallelism`` names)."""


def refuse_parallelism(display: str, key: str, degree: Any, kind: str) -> None:
    """A WorkloadError when ``key`` asks for a ``kind`` parallel degree above 1.

    Every reader refuses model parallelism in these same words: the analytic model divides
    a step's work and memory by data parallelism only (DDP replicas, FSDP or ZeRO shards of
    whole layers), while tensor parallelism gives each rank a slice of every layer, context
    and sequence parallelism a slice of every sequence, pipeline parallelism a stage of the
    layers and expert parallelism a subset of the experts, with communication the model has
    no terms for. A degree of 1 (the frameworks' default) is a data-parallel run and passes.
    """
    if kind not in PARALLELISM_KINDS:
        raise ValueError(f"unknown parallelism kind {kind!r}")
    if as_int(degree, display, key) > 1:
        raise WorkloadError(
            display,
            f"{key}: {degree} is {kind} parallelism; pytest-goblin models data parallelism "
            f"only (DDP, FSDP, DeepSpeed ZeRO), so this run is not modelled: set {key}: 1 "
            "to audit it as a data-parallel run, or deselect this item",
            field=key,
        )


class Unpatchable(GoblinError):
    """A change the file's format has no key for: reported, never half-written."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Unset:
    """A field the file leaves unknown and its framework has no default for.

    torchtune's ``max_seq_len: null`` keeps every sample at its full length, so
    the sequence length depends on the data: only the user can say it, in the
    sidecar. ``key`` is where the file would say it; ``reason`` why it is unknown.
    ``settable`` False: no key of the file can say it (which TRL trainer runs a file is the
    launching script's choice), so only the sidecar can, and ``key`` is what leaves it open.
    """

    key: str
    reason: str
    settable: bool = True


@dataclass(frozen=True)
class Reading:
    """WorkloadConfig inputs read from a file, and the key each field came from."""

    fields: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    unset: dict[str, Unset] = field(default_factory=dict)
    """Fields the file leaves unknown: each must come from the sidecar, or reading fails."""


@dataclass(frozen=True)
class Edit:
    """One key of the user's file to set; ``after`` names related keys to insert it next to."""

    path: tuple[str, ...]
    value: Any
    after: tuple[str, ...] = ()
    quote: bool = False
    """Write a string value in double quotes (as environment values usually are)."""


@dataclass(frozen=True)
class Format:
    """A file format: how to recognise it, read it and write a patch into it."""

    name: str
    suffixes: frozenset[str]
    detect: Callable[[Any], bool]
    read: Callable[..., Reading] | None = None
    """(parsed content, display path) → Reading; None for the native format, whose
    fields are WorkloadConfig's own and which validates itself (``native.read``).
    With ``reads_text``, (parsed content, display path, file text) → Reading."""
    edits: Callable[[Any, str, Any], list[Edit]] | None = None
    """(parsed content, WorkloadConfig field, new value) → the keys to set, or Unpatchable."""
    apply: Callable[[str, str, dict[str, Any]], str] | None = None
    """Writes a whole patch itself (native, Python scripts) instead of ``edits``."""
    vocabulary: Vocabulary | None = None
    """The top-level keys the framework accepts: a file with others is not this format when
    the framework is strict, and an edit of a key outside it is never written."""
    reads_text: bool = False
    """``read`` also takes the file's text: what the format states only in comments
    (a torchtune config's launch command, ``tune run --nproc_per_node 2 …``)."""

    def accepts(self, data: Any) -> bool:
        """Whether ``data`` is this format's: its markers, and no key a strict framework refuses."""
        if not self.detect(data):
            return False
        return self.vocabulary is None or not (
            self.vocabulary.strict and self.vocabulary.unknown(data)
        )


def check_vocabulary(fmt: Format, data: Any, field: str, edits: Sequence[Edit]) -> None:
    """Unpatchable when an edit for ``field`` writes a key the framework does not accept.

    A framework that refuses unknown keys would fail the run; one that ignores
    them would train as before while the report claims a change. A key the file
    already sets is accepted (a script's own argument class may add keys, such
    as ``torch_dtype`` beside TrainingArguments).
    """
    vocabulary = fmt.vocabulary
    if vocabulary is None:
        return
    for edit in edits:
        if edit.path[0] not in vocabulary.keys and edit.path[0] not in data:
            effect = "refuses" if vocabulary.strict else "ignores"
            raise Unpatchable(
                field,
                f"{vocabulary.framework} has no key {edit.path[0]!r} (it {effect} keys it does "
                f"not know; keys from {vocabulary.source})",
            )


def apply_edits(text: str, suffix: str, edits: Sequence[Edit]) -> str:
    """The YAML or JSON text with every edit written in place."""
    if suffix == ".json":
        document = JsonText(text)
        for edit in edits:
            document.set(edit.path, edit.value)
        return document.text()
    yaml_document = YamlText(text)
    for edit in edits:
        yaml_document.set(edit.path, edit.value, after=edit.after, quote=edit.quote)
    return yaml_document.text()


class Fields:
    """WorkloadConfig inputs being read from a file, and the key (or call) each came from."""

    def __init__(
        self,
        display: str,
        get: Callable[[str], Any],
        labels: dict[str, str] | None = None,
    ) -> None:
        self.display = display
        self.get = get
        self._labels = labels or {}
        self.fields: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.unset: dict[str, Unset] = {}

    def label(self, key: str) -> str:
        """Where ``key`` is written in the file, as error messages and sources say it."""
        return self._labels.get(key, key)

    def take(
        self, field: str, key: str, convert: Callable[[Any, str, str], Any], default: Any
    ) -> None:
        """``field`` from ``key`` (converted), or the framework's ``default`` when unset."""
        value = self.get(key)
        if value is None:
            self.fields[field] = default
        else:
            self.put(field, convert(value, self.display, self.label(key)), key)

    def put(self, field: str, value: Any, key: str | None = None) -> None:
        """Set ``field``; ``key`` (when the file wrote the value) becomes its source."""
        self.fields[field] = value
        if key is not None:
            self.sources[field] = self.label(key)

    def record(self, name: str, value: Any, key: str) -> None:
        """Record in ``extras`` something the run already uses that no field holds (Liger
        kernels, ``group_by_length``, parameter offload), so advice does not repeat it."""
        self.fields.setdefault("extras", {})[name] = value
        self.sources[f"extras.{name}"] = self.label(key)

    def unknown(self, field: str, key: str, reason: str) -> None:
        """``field`` is not in the file (``key`` is where it would be) and has no default."""
        self.unset[field] = Unset(self.label(key), reason)

    def reading(self) -> Reading:
        return Reading(fields=self.fields, sources=self.sources, unset=self.unset)


# --- reading values the way the frameworks do --------------------------------------


def as_str(value: Any, display: str, key: str) -> str:
    return str(value)


def lookup(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted key path, or None where any part is missing."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def as_bool(value: Any, display: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise WorkloadError(display, f"expected true or false, got {value!r}", field=key)


def is_true(data: Mapping[str, Any], key: str, display: str, label: str | None = None) -> bool:
    """Whether switch ``key`` of ``data`` is on: absent or null is off, as the frameworks
    default their switches; a value that is not a boolean is an error naming ``label``
    (``key`` unless the file nests it)."""
    value = data.get(key)
    return value is not None and as_bool(value, display, label or key)


def as_int(value: Any, display: str, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise WorkloadError(display, f"expected an integer, got {value!r}", field=key)


def as_float(value: Any, display: str, key: str) -> float:
    """A number; YAML 1.1 reads ``2e-5`` as a string, which the frameworks accept."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise WorkloadError(display, f"expected a number, got {value!r}", field=key)


def hf_attention(value: Any, display: str, key: str) -> str:
    """A transformers ``attn_implementation`` as our attention class.

    Fused kernels whose memory is linear in sequence length (FlashAttention 2/3,
    flex attention, xformers, SageAttention, hub flash kernels) count as flash.
    """
    name = str(value).strip().lower()
    if name == "eager":
        return "eager"
    if name in ("sdpa", "sdp"):
        return "sdpa"
    fused = ("flash", "flex", "xformers", "sage")
    if any(word in name for word in fused):
        return "flash"
    raise WorkloadError(
        display,
        f"attention implementation {value!r} is not one pytest-goblin can model "
        "(eager, sdpa, flash_attention_2, flash_attention_3, flex_attention)",
        field=key,
    )


def hf_precision_from_dtype(value: Any) -> str | None:
    """The precision a model loaded with this dtype trains in without autocast."""
    name = str(value).lower().removeprefix("torch.")
    return {
        "bfloat16": "bf16",
        "bf16": "bf16",
        "float16": "fp16",
        "fp16": "fp16",
        "half": "fp16",
        "float32": "fp32",
        "fp32": "fp32",
        "float": "fp32",
        "auto": "bf16",
    }.get(name)


def targets_list(value: Any) -> list[str]:
    """LoRA targets from a list, a comma string, or an all-linear spelling."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    else:
        items = [str(part) for part in value]
    if any(item.lower() in ("all", "all-linear", "all_linear") for item in items):
        return list(ALL_LINEAR)
    return items


def sidecar_hint(path: Path) -> str:
    """How to give a model's dims for a file whose format has no place for them."""
    from pytest_goblin.workload.sidecar import sidecar_path

    return (
        f"give the architecture in {sidecar_path(path).name} next to it: `model:` set to a "
        "preset (llama-3-8b, qwen2.5-7b, …) or to dims {layers, hidden, intermediate, heads, "
        "kv_heads, vocab}"
    )
