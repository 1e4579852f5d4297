"""Firefly training-argument JSON files (``python train.py --train_args_file args.json``).

Firefly (github.com/yangjianxin1/Firefly, ``train.py`` at commit e22b406ee440)
parses one JSON file into its ``CustomizedArguments`` and the Hugging Face
``TrainingArguments`` with ``HfArgumentParser.parse_json_file``, which refuses
unknown keys, so a patch writes only those two classes' keys. What the script
does with them, and so what this reader models:

* ``train_mode`` (default ``qlora``): full, lora, or qlora (4-bit NF4 base);
  LoRA goes on every linear layer but ``lm_head`` (``find_all_linear_names``),
  rank ``lora_rank`` (default 64) and alpha ``lora_alpha`` (default 16); a patch
  between LoRA and QLoRA writes ``train_mode``;
* ``max_seq_length`` has no default: the file must give it;
* the model is loaded in fp16 when ``fp16`` is set and in bf16 otherwise, and
  ``train.py`` asserts that one of ``bf16``/``fp16`` is set; the 4-bit compute
  dtype follows the same choice;
* ``task_type`` ``pretrain`` packs texts into ``max_seq_length`` chunks,
  ``sft`` pads each conversation, ``dpo`` is preference training (refused:
  pytest-goblin models supervised fine-tuning only);
* no ``attn_implementation`` is passed (it is commented out), so attention is
  transformers' default, SDPA; ``use_unsloth`` loads through unsloth's
  ``FastLanguageModel`` with gradient checkpointing always on.
"""

from __future__ import annotations

from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import (
    ALL_LINEAR,
    Edit,
    Fields,
    Reading,
    Unpatchable,
    as_bool,
    as_int,
    check_model,
    is_true,
)
from pytest_goblin.formats.hf_args import read_trainer_keys, trainer_edit
from pytest_goblin.formats.vocabulary import FIREFLY, TRAINING_ARGUMENTS, TRL_DPO_ONLY, TRL_SFT

NAME = "firefly"
SUFFIXES = frozenset({".json"})

MARKERS = frozenset(
    FIREFLY - TRAINING_ARGUMENTS - TRL_SFT - TRL_DPO_ONLY - {"lora_rank", "train_file", "eval_file"}
)
"""Keys only Firefly's CustomizedArguments has (``task_type``, ``template_name``, ``train_mode``,
…): the model, ``max_seq_length``, LoRA and DPO keys are TRL's or LLaMA-Factory's too, and
``train_file`` is also transformers' example scripts'."""
_TRAIN_MODES = {"full": "full", "lora": "lora", "qlora": "qlora"}
_PINNED_OPTIM = "adamw_torch"
"""The ``optim`` default of transformers 4.34, which Firefly's requirements.txt pins (its
``fsdp`` runs FSDP1, ``hf_args.trainer_fsdp_version``)."""
_TRAIN = ("bf16", "fp16", "learning_rate", "per_device_train_batch_size")


def detect(data: Any) -> bool:
    """``model_name_or_path`` plus a key only Firefly's CustomizedArguments has."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("model_name_or_path"), str)
        and bool(MARKERS & data.keys())
    )


def read(data: dict[str, Any], display: str) -> Reading:
    check_model(data["model_name_or_path"], display, "model_name_or_path")
    f = Fields(display, data.get)
    f.put("model_name", data["model_name_or_path"], "model_name_or_path")
    task = str(data.get("task_type", "sft"))
    if task == "dpo":
        raise WorkloadError(
            display,
            "task_type dpo is preference training (chosen and rejected sequences and a "
            "reference model); pytest-goblin models supervised fine-tuning only",
            field="task_type",
        )
    if task not in ("sft", "pretrain"):
        raise WorkloadError(
            display, f"task_type {task!r}: Firefly's train.py accepts pretrain, sft, dpo"
        )
    if data.get("max_seq_length") is None:
        raise WorkloadError(
            display,
            "max_seq_length is required: Firefly's CustomizedArguments gives it no default",
            field="max_seq_length",
        )
    f.take("seq_len", "max_seq_length", as_int, None)
    read_trainer_keys(f, lr_default=5e-5, optim_default=_PINNED_OPTIM, fsdp_version_default=1)
    f.take("gradient_checkpointing", "gradient_checkpointing", as_bool, False)
    f.put("precision", *_precision(data, display))
    f.put("attention_impl", "sdpa")
    f.put("packing", task == "pretrain", "task_type" if "task_type" in data else None)
    mode = str(data.get("train_mode", "qlora"))
    if mode not in _TRAIN_MODES:
        raise WorkloadError(
            display,
            f"train_mode {mode!r}: Firefly's train.py accepts full, lora, qlora",
            field="train_mode",
        )
    f.put("finetune", _TRAIN_MODES[mode], "train_mode" if "train_mode" in data else None)
    if mode != "full":
        f.take("lora_rank", "lora_rank", as_int, 64)
        f.take("lora_alpha", "lora_alpha", as_int, 16)
        f.put("lora_targets", list(ALL_LINEAR))
        if is_true(data, "use_unsloth", display):
            f.put("gradient_checkpointing", True, "use_unsloth")
    return f.reading()


def _precision(data: dict[str, Any], display: str) -> tuple[str, str]:
    """fp16 when ``fp16`` is set, else bf16; ``train.py`` refuses a run with neither."""
    for key in ("fp16", "bf16"):
        if is_true(data, key, display):
            return key, key
    raise WorkloadError(
        display,
        "neither bf16 nor fp16 is true, and Firefly's train.py asserts that one is",
        field="bf16",
    )


def edits(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    """The keys that give ``field`` the value ``value``, in Firefly's vocabulary."""
    edit = trainer_edit(field, value, ("dataloader_num_workers", "gradient_checkpointing"))
    if edit is not None:
        return [edit]
    if field == "gradient_checkpointing":
        if not value and data.get("use_unsloth"):
            raise Unpatchable(field, "use_unsloth loads the model with checkpointing always on")
        return [Edit(("gradient_checkpointing",), value, _TRAIN)]
    if field == "seq_len":
        return [Edit(("max_seq_length",), value)]
    if field in ("lora_rank", "lora_alpha"):
        return [Edit((field,), value, ("lora_rank", "train_mode"))]
    if field == "finetune" and value in ("lora", "qlora"):
        # train.py (e22b406ee440) asserts train_mode in full/lora/qlora and loads a 4-bit
        # base only for qlora (load_model's BitsAndBytesConfig, load_unsloth_model's
        # load_in_4bit), LoRA on every linear layer either way
        return [Edit(("train_mode",), value, ("template_name", "model_name_or_path"))]
    if field == "precision":
        if value not in ("bf16", "fp16"):
            raise Unpatchable(field, "Firefly's train.py asserts bf16 or fp16")
        other = "fp16" if value == "bf16" else "bf16"
        found = [Edit((value,), True, _TRAIN)]
        if data.get(other):
            found.append(Edit((other,), False))
        return found
    reasons = {
        "attention_impl": "train.py passes no attn_implementation (transformers' default)",
        "lora_targets": "train.py puts LoRA on every linear layer (find_all_linear_names)",
        "packing": "train.py packs for task_type pretrain and pads for sft",
    }
    raise Unpatchable(field, reasons.get(field, f"Firefly has no key for {field}"))
