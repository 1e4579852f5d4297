"""Hugging Face TrainingArguments and TRL SFTConfig, as args files.

Two formats share the vocabulary of ``transformers.TrainingArguments``:

* ``trl``: the YAML given to ``trl sft --config``: SFTConfig, ModelConfig and
  script keys in one namespace. TRL's defaults differ from the Trainer's
  (TRL v1.9.0 ``trl/trainer/base_config.py``, ``sft_config.py``,
  ``model_config.py``): bf16 is on unless fp16 is (``bf16: None ⇒ not fp16``),
  gradient checkpointing is on, ``max_length`` is 1024, the learning rate
  2e-5, and ModelConfig's LoRA is rank 16, alpha 32. A key only DPOConfig has is
  read as DPO with DPOConfig's defaults (learning rate 1e-6, checkpointing on, as
  ``_BaseConfig`` gives both trainers), GRPOConfig's keys are refused by name.
* ``hf-args``: a JSON or YAML file for ``HfArgumentParser`` (``python run_clm.py
  args.json``): TrainingArguments keys, maybe with model arguments such as
  ``model_name_or_path``, ``torch_dtype`` and ``block_size``. Trainer defaults
  (transformers v4.57.6/v5.25.0 ``src/transformers/training_args.py``): fp32,
  no checkpointing, batch 8, ``adamw_torch_fused`` on torch ≥ 2.8, pinned
  memory, 0 workers. TrainingArguments has no sequence length: without one of
  ``SEQ_KEYS`` it is unknown and must come from the sidecar.

``interpret`` is shared with the Python script reader, which finds the same
keys as keyword arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import (
    BOTH_BITS,
    DORA,
    EIGHT_BIT,
    HF_ATTENTION_NAMES,
    PEFT_DEFAULT_TARGETS,
    Edit,
    Fields,
    Reading,
    Unpatchable,
    Unset,
    as_bool,
    as_float,
    as_int,
    as_str,
    check_model,
    hf_attention,
    hf_precision_from_dtype,
    is_true,
    lookup,
    targets_list,
)
from pytest_goblin.formats.deepspeed import zero_fields
from pytest_goblin.formats.vocabulary import TRAINING_ARGUMENTS as TRAINING_ARGUMENTS_KEYS
from pytest_goblin.formats.vocabulary import (
    TRL_DPO_ONLY,
    TRL_DPO_OWN,
    TRL_GRPO_ONLY,
    TRL_KEYS,
    TRL_SFT,
)

TRL = "trl"
HF_ARGS = "hf-args"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})

TRL_MARKERS = frozenset(
    {
        "max_length",
        "max_seq_length",
        "packing",
        "packing_strategy",
        "padding_free",
        "dataset_text_field",
        "assistant_only_loss",
        "completion_only_loss",
        "use_peft",
        "lora_r",
        "lora_target_modules",
        "model_init_kwargs",
        "dataset_train_split",
        "use_bnb_nested_quant",
        "bnb_4bit_quant_type",
        "eval_packing",
    }
)
TRAINING_ARGUMENTS = frozenset(
    {
        "output_dir",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "bf16",
        "fp16",
        "tf32",
        "optim",
        "gradient_checkpointing",
        "warmup_steps",
        "warmup_ratio",
        "lr_scheduler_type",
        "logging_steps",
        "save_steps",
        "save_strategy",
        "eval_strategy",
        "evaluation_strategy",
        "do_train",
        "do_eval",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "torch_compile",
        "weight_decay",
        "per_device_eval_batch_size",
        "report_to",
        "max_grad_norm",
        "group_by_length",
        "overwrite_output_dir",
        "logging_dir",
    }
)
_BATCH_KEYS = frozenset(
    {"per_device_train_batch_size", "gradient_accumulation_steps", "optim", "bf16", "fp16"}
)
_FOREIGN = frozenset(
    {
        "base_model",
        "stage",
        "finetuning_type",
        "cutoff_len",
        "flash_attn",
        "lora_target",
        "zero_optimization",
        "train_micro_batch_size_per_gpu",
        "train_batch_size",
        "compute_environment",
        "distributed_type",
        "architectures",
        "hidden_size",
    }
)
_TRL_OWN = (
    TRL_SFT
    - TRAINING_ARGUMENTS_KEYS
    - {
        "model_name_or_path",
        "model_revision",
        "torch_dtype",
        "dtype",
        "trust_remote_code",
        "attn_implementation",
    }
)
"""Keys ``trl sft`` parses that a Trainer script's own model arguments (``run_clm.py``'s
``ModelArguments``: model, revision, dtype, remote code, attention) do not also have."""
TRAINER_DEFAULT_OPTIM = "adamw_torch_fused"
"""TrainingArguments' ``optim`` default in transformers v4.57.6 and v5.25.0
(``src/transformers/training_args.py``, ``default_optim``): fused AdamW wherever torch is
2.8 or newer, as every current ROCm and CUDA wheel is (plain ``adamw_torch`` before)."""


TRL_MAX_LENGTH = 1024
"""SFTConfig's ``max_length`` default (TRL v1.9.0 ``trl/trainer/sft_config.py``)."""
NO_SEQ_LEN = (
    "TrainingArguments has no sequence length and none of the script's usual keys is set "
    "(its tokenizer or data collator decides), so the sequence length is unknown"
)
IN_USE_FLAGS = ("use_liger_kernel", "group_by_length")
"""TrainingArguments switches a run may already use, recorded under ``extras`` (the knowledge
base's advisories check ``extras.use_liger_kernel`` and ``extras.group_by_length``)."""
COMPUTE_DTYPE = "bnb_4bit_compute_dtype"
"""Where a 4-bit base model's matmuls get their dtype (``BitsAndBytesConfig``; transformers'
default is float32): without an autocast flag, a QLoRA's base matmuls run in it."""
SEQ_KEYS = ("max_length", "max_seq_length", "block_size", "model_max_length")
DDP_KEYS = ("ddp_find_unused_parameters", "ddp_bucket_cap_mb")
"""TrainingArguments' DDP keys, read into the fields of the same names: the Trainer passes them
to ``DistributedDataParallel`` (transformers v5.25.0 ``src/transformers/trainer.py``
``_build_accelerator_args``; unset, ``find_unused_parameters`` is the Trainer's own choice,
``WorkloadConfig.find_unused_parameters``, and ``bucket_cap_mb`` torch's default)."""
DTYPE_KEYS = ("dtype", "torch_dtype")
_TRAIN = (
    "bf16",
    "fp16",
    "learning_rate",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
)
_LOADER = ("dataloader_num_workers", "dataloader_pin_memory", "gradient_accumulation_steps")
MAPPED_KEYS = frozenset(
    {
        "model_name_or_path",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        *SEQ_KEYS,
        "bf16",
        "fp16",
        "tf32",
        *DTYPE_KEYS,
        "attn_implementation",
        "gradient_checkpointing",
        "optim",
        "use_peft",
        "lora_r",
        "lora_alpha",
        "lora_target_modules",
        "load_in_4bit",
        "load_in_8bit",
        "packing",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "torch_compile",
        "torch_compile_mode",
        "torch_compile_backend",
        "learning_rate",
        "warmup_steps",
        "deepspeed",
        "fsdp",
        *DDP_KEYS,
    }
)
"""Keys whose value becomes part of the WorkloadConfig."""


def _is_mapping_without(data: Any, keys: frozenset[str]) -> bool:
    if not isinstance(data, dict) or keys & data.keys():
        return False
    return not any(isinstance(v, dict) and "_component_" in v for v in data.values())


def detect_trl(data: Any) -> bool:
    """``model_name_or_path`` plus a key only TRL's SFTConfig or ModelConfig has, or a file
    whose every key is one ``trl sft`` parses and one of them TRL's own (TRL's
    ``examples/cli_configs/example_config.yaml`` sets only the model, ``dataset_name``
    and three Trainer keys)."""
    if not _is_mapping_without(data, _FOREIGN) or not isinstance(
        data.get("model_name_or_path"), str
    ):
        return False
    if (TRL_MARKERS | TRL_DPO_ONLY | TRL_GRPO_ONLY) & data.keys():
        return True
    return not TRL_KEYS.unknown(data) and bool(_TRL_OWN & data.keys())


def detect_hf_args(data: Any) -> bool:
    """Three or more TrainingArguments keys, at least one about the batch or precision."""
    if not _is_mapping_without(data, _FOREIGN | TRL_MARKERS):
        return False
    known = TRAINING_ARGUMENTS & data.keys()
    return (
        len(known) >= 3
        and bool(_BATCH_KEYS & known)
        and all(isinstance(data[key], bool) for key in ("bf16", "fp16") if key in data)
    )


_HEADER_LAUNCH = re.compile(
    r"^[ \t]*#[ \t]*(?P<said>Config for (?P<nodes>\d+) nodes? of (?P<gpus>\d+)\b[^\n]*?"
    r"\bwith (?:DeepSpeed ZeRO-?(?P<stage>[123])|(?P<fsdp>FSDP)(?P<version>[12])?)\b)",
    re.IGNORECASE | re.MULTILINE,
)
"""open-r1's recipes state their launch in a header comment ("# Config for 1 node of 8 H100s
with DeepSpeed ZeRO-3", "# Config for 16 nodes of 8 H100s with FSDP1"; huggingface/open-r1
recipes/OlympicCoder-*/sft/config_v00.00.yaml), run with its accelerate configs
(recipes/accelerate_configs/zero3.yaml: zero_stage 3, no offload; fsdp.yaml: FULL_SHARD, no
offload, no ``fsdp_version``, so accelerate's FSDP1 unless the comment says FSDP2). Only a
comment naming nodes, devices per node and the sharding is read."""


_SLURM_LAUNCH = re.compile(
    r"^[ \t]*#[ \t]*(?P<said>sbatch\b[^\n]*?\bslurm/train\.slurm\b[^\n]*?)[ \t]*$", re.MULTILINE
)
OPEN_R1_ACCELERATORS: dict[str, tuple[str, int | None]] = {
    "zero3": ("deepspeed", 3),
    "zero2": ("deepspeed", 2),
    "fsdp": ("fsdp", 3),
    "ddp": ("ddp", None),
}
"""open-r1's ``recipes/accelerate_configs/<name>.yaml`` (zero3/zero2: DeepSpeed stage 3/2
without offload, fsdp: FULL_SHARD, ddp) as strategy and ZeRO stage."""
OPEN_R1_GPUS_PER_NODE = 8
"""open-r1 ``slurm/train.slurm`` (2a7bb45 and main 1416fa0): ``#SBATCH --gres=gpu:8``, world size
``$NUM_NODES*$GPUS_PER_NODE``, accelerate config ``recipes/accelerate_configs/$ACCELERATOR.yaml``
(the fourth argument, or ``--accelerator``)."""


def _slurm_launch(text: str) -> tuple[dict[str, Any], str] | None:
    """An open-r1 ``sbatch … slurm/train.slurm`` command in a comment, as launch fields."""
    found = _SLURM_LAUNCH.search(text)
    if found is None:
        return None
    before, _, after = found.group("said").partition("slurm/train.slurm")
    options = before.split()
    nodes = 1
    for at, token in enumerate(options):
        name, equals, value = token.partition("=")
        if name in ("-N", "--nodes") and not equals and at + 1 < len(options):
            value = options[at + 1]
        if name in ("-N", "--nodes") and value.isdigit():
            nodes = int(value)
    words = after.split()
    if "--accelerator" in words[:-1]:
        accelerator = words[words.index("--accelerator") + 1]
    else:
        positional = [w for w in words if not w.startswith("-")]
        accelerator = positional[3] if len(positional) > 3 else ""
    if accelerator not in OPEN_R1_ACCELERATORS:
        return None
    strategy, stage = OPEN_R1_ACCELERATORS[accelerator]
    fields: dict[str, Any] = {"strategy": strategy, "world_size": nodes * OPEN_R1_GPUS_PER_NODE}
    if stage is not None:
        fields["zero_stage"] = stage
    if strategy == "fsdp":
        fields["fsdp_version"] = 1  # fsdp.yaml names none: accelerate's default
    line = text.count("\n", 0, found.start("said")) + 1
    return fields, f"the launch comment, line {line}: {found.group('said')}"


def header_launch(text: str) -> tuple[dict[str, Any], str] | None:
    """The strategy, ZeRO stage and world size a header comment states, and its label: open-r1's
    "Config for N nodes of M GPUs with …" or its ``sbatch … slurm/train.slurm`` command."""
    found = _HEADER_LAUNCH.search(text)
    if found is None:
        return _slurm_launch(text)
    world = int(found.group("nodes")) * int(found.group("gpus"))
    stage = int(found.group("stage") or 3)
    fields: dict[str, Any] = {
        "strategy": "fsdp" if found.group("fsdp") else "deepspeed",
        "world_size": world,
        "zero_stage": stage,
    }
    if found.group("fsdp"):
        fields["fsdp_version"] = int(found.group("version") or 1)
    line = text.count("\n", 0, found.start("said")) + 1
    return fields, f"the header comment, line {line}: {found.group('said')}"


def read_trl(data: dict[str, Any], display: str, text: str = "") -> Reading:
    """A ``trl`` CLI file; ``text`` (the file as written) gives a header comment's launch."""
    reading = _read_trl(data, display)
    launched = header_launch(text)
    if launched is not None and "strategy" not in reading.sources:
        fields, label = launched
        for field, value in fields.items():
            reading.fields[field] = value
            reading.sources[field] = label
    return reading


def _read_trl(data: dict[str, Any], display: str) -> Reading:
    online = sorted(TRL_GRPO_ONLY & data.keys(), key=lambda key: (key != "num_generations", key))
    if online:
        raise WorkloadError(
            display,
            f"{', '.join(online)}: keys of TRL's GRPO trainer (GRPOConfig, "
            "trl/trainer/grpo_config.py), which samples num_generations completions per "
            "prompt and trains on their rewards; pytest-goblin models supervised "
            "fine-tuning only",
            field=online[0],
        )
    if TRL_DPO_OWN & data.keys():
        reading = interpret(data, {key: key for key in data}, display, trl=True, dpo=True)
        read_dpo(data, display, reading, sorted(TRL_DPO_OWN & data.keys())[0])
        return reading
    preference = sorted(TRL_DPO_ONLY & data.keys())
    if preference:
        return _read_shared_preference(data, display, preference)
    _refuse_unbounded_padding_free(data, display)
    return interpret(data, {key: key for key in data}, display, trl=True)


def _padding_free(values: dict[str, Any], f: Fields) -> None:
    """SFTConfig's ``padding_free`` as ``packing``: the collator concatenates the micro-batch's
    samples into one sequence with ``position_ids`` and no padding, so every computed token is
    a real one, as with packing, and attention stays within each sample (TRL v1.9.0
    ``trl/trainer/sft_trainer.py`` ``DataCollatorForLanguageModeling``; packing with the
    default ``bfd`` strategy turns it on itself). TRL only warns when the attention is not
    FlashAttention, "known to reliably support" it. DPOConfig's ``padding_free`` is not read:
    v1.9.0's DPOTrainer falls back to padding ("temporarily unavailable after a refactor")."""
    key = "padding_free"
    if is_true(values, key, f.display, f.label(key)):
        f.put("packing", True, key)


def _refuse_unbounded_padding_free(data: dict[str, Any], display: str) -> None:
    """``trl sft`` refuses ``padding_free`` without packing while ``max_length`` (1024 unset)
    is enforced: "When `padding_free=True` without packing, `max_length` is not enforced"
    (ValueError, TRL v1.9.0 ``trl/trainer/sft_trainer.py``, since v1.0.0). A file that writes
    ``max_seq_length``, SFTConfig's name for it until v0.20.0, is for a TRL that did not."""
    if data.get("padding_free") is not True or data.get("packing") is True:
        return
    if "max_seq_length" in data:
        return
    if "max_length" in data and data["max_length"] is None:
        return
    raise WorkloadError(
        display,
        "padding_free: true without packing while max_length is "
        f"{data.get('max_length', TRL_MAX_LENGTH)}; TRL's SFTTrainer raises 'When "
        "`padding_free=True` without packing, `max_length` is not enforced': set packing: "
        "true, or max_length: null with truncated data",
        field="padding_free",
    )


_RECIPE_TRAINERS = {
    "dpo": "DPO",
    "orpo": "ORPO",
    "cpo": "CPO",
    "kto": "KTO",
    "simpo": "SimPO (TRL's CPOTrainer)",
}
"""Recipe directories named after the TRL trainer whose script runs them: the alignment
handbook launches ``scripts/dpo.py recipes/zephyr-7b-beta/dpo/config_full.yaml`` and keeps
ORPO recipes under ``orpo/`` (https://github.com/huggingface/alignment-handbook, README and
``recipes/``)."""


def _read_shared_preference(data: dict[str, Any], display: str, keys: list[str]) -> Reading:
    """A TRL file with only the keys DPO, ORPO, CPO and KTO configs share (``beta``,
    ``max_prompt_length``; trl/trainer/*_config.py, v0.19.0): the script that runs it decides
    the trainer. A recipe directory named after one says which; otherwise the sidecar must
    (``objective: dpo``), since DPO is the only preference trainer pytest-goblin models."""
    directory = PurePosixPath(display).parent.name.lower()
    trainer = _RECIPE_TRAINERS.get(directory)
    if trainer is not None and directory != "dpo":
        raise WorkloadError(
            display,
            f"{', '.join(keys)}: preference keys in a recipe directory {directory}/, which "
            f"{trainer} runs; pytest-goblin models SFT and DPO only",
            field=keys[0],
        )
    reading = interpret(data, {key: key for key in data}, display, trl=True, dpo=True)
    if trainer is not None:
        reading.fields["objective"] = "dpo"
        reading.sources["objective"] = f"the recipe directory {directory}/"
        return reading
    reading.fields.pop("objective", None)
    reading.unset["objective"] = Unset(
        keys[0],
        f"{', '.join(keys)}: keys TRL's DPO, ORPO, CPO and KTO configs share "
        "(trl/trainer/*_config.py, v0.19.0), so the script that runs the file decides the "
        "trainer and the file does not say which; pytest-goblin models DPO (read from "
        f"DPOConfig's own keys: {', '.join(sorted(TRL_DPO_OWN)[:3])}, …, or a recipe directory "
        "dpo/) and no other preference trainer: if TRL's DPOTrainer runs it, say so with "
        "`objective: dpo`",
        settable=False,
    )
    return reading


def read_dpo(
    data: dict[str, Any],
    display: str,
    reading: Reading,
    source: str,
    labels: dict[str, str] | None = None,
) -> None:
    """DPOConfig (TRL v0.19.0 trl/trainer/dpo_trainer.py; v1.9.0 likewise, without
    ``reference_free`` and ``force_use_ref_model``): no reference with ``reference_free``,
    log-probs computed once with ``precompute_ref_log_probs``, the PEFT model with its
    adapter disabled (unless ``force_use_ref_model``), else a copy. ``source`` says what
    makes the file DPO; ``labels`` where each key is written (a script's call and line)."""

    def flag(key: str) -> bool:
        label = (labels or {}).get(key, key)
        return is_true(data, key, display, label)

    reading.fields["objective"] = "dpo"
    reading.sources["objective"] = source
    key: str | None
    if flag("reference_free"):
        reference, key = "none", "reference_free"
    elif flag("precompute_ref_log_probs"):
        reference, key = "precomputed", "precompute_ref_log_probs"
    elif reading.fields["finetune"] != "full" and not flag("force_use_ref_model"):
        reference, key = "adapter", "use_peft"
    else:
        reference, key = "model", "force_use_ref_model" if flag("force_use_ref_model") else None
    reading.fields["reference"] = reference
    if key is not None:
        reading.sources["reference"] = (labels or {}).get(key, key)


def read_hf_args(data: dict[str, Any], display: str) -> Reading:
    return interpret(data, {key: key for key in data}, display, trl=False)


def interpret(
    values: dict[str, Any],
    labels: dict[str, str],
    display: str,
    *,
    trl: bool,
    dpo: bool = False,
    lora_defaults: tuple[int, int] = (16, 32),
    target_defaults: tuple[str, ...] = tuple(PEFT_DEFAULT_TARGETS),
    transformers: tuple[int, int] | None = None,
    sft_loss: bool = True,
    trl_version: tuple[int, int] | None = None,
) -> Reading:
    """WorkloadConfig inputs from TrainingArguments/SFTConfig/ModelConfig keys.

    ``transformers`` is the ``(major, minor)`` version a script pins, whose defaults
    (optimizer, attention) it trains with; None reads today's. ``sft_loss`` False leaves
    SFTConfig's ``loss_type`` unread, for a script whose model forward another library
    replaces with its own loss (unsloth); ``trl_version`` is the TRL ``(major, minor)`` a
    script pins, whose ``loss_type`` default it trains with (None: v1.9.0's).

    ``labels`` says where each key was written (the key itself in an args
    file, a call and line in a script); error messages and sources use it.
    """
    f = Fields(display, values.get, labels)
    if values.get("model_name_or_path") is not None:
        model = str(values["model_name_or_path"])
        check_model(model, display, f.label("model_name_or_path"))
        f.put("model_name", model, "model_name_or_path")
    read_trainer_keys(
        f,
        lr_default=DPO_LR if dpo else 2e-5 if trl else 5e-5,
        optim_default=trainer_default_optim(transformers),
        fsdp_version_default=trainer_fsdp_version(transformers),
    )
    seq_key = next((key for key in SEQ_KEYS if values.get(key) is not None), None)
    null_key = next((key for key in ("max_length", "max_seq_length") if key in values), None)
    if seq_key is not None:
        f.take("seq_len", seq_key, as_int, None)
    elif trl and null_key is not None:
        # TRL v1.9.0 sft_config.py / dpo_config.py: "If `None`, no truncation is applied"
        f.unknown(
            "seq_len",
            null_key,
            f"{null_key} is null, so TRL truncates nothing and the sequence length is the "
            "data's, unknown to the file",
        )
    elif trl:
        f.put("seq_len", TRL_MAX_LENGTH)
    else:
        f.unknown("seq_len", " or ".join(SEQ_KEYS), NO_SEQ_LEN)
    # SFTConfig and DPOConfig alike default to checkpointing on (TRL v1.9.0
    # trl/trainer/base_config.py, _BaseConfig; DPOConfig since v0.24.0), the Trainer off.
    f.take("gradient_checkpointing", "gradient_checkpointing", as_bool, trl)
    f.take("packing", "packing", as_bool, False)
    if trl and not dpo:
        _padding_free(values, f)
    f.put("precision", *_precision(values, display, f.label, trl))
    attention_key = attention_location(values)
    older = transformers is not None and transformers < ATTN_IMPLEMENTATION_SINCE
    f.put("attention_impl", "eager" if older else "sdpa")
    if attention_key:
        f.put(
            "attention_impl",
            hf_attention(lookup(values, attention_key), display, f.label(attention_key)),
            attention_key,
        )
    _adapter(values, f, lora_defaults, target_defaults)
    # A model loaded in 16 bits trains its 16-bit weights under the Trainer's autocast;
    # PEFT casts 16-bit adapters to fp32 (get_peft_model's autocast_adapter_dtype=True,
    # peft v0.20.0), so only a full fine-tune is pure.
    dtype_key = dtype_location(values)
    loaded = hf_precision_from_dtype(lookup(values, dtype_key)) if dtype_key else None
    if f.fields["finetune"] == "full" and loaded in ("bf16", "fp16"):
        f.put("pure_precision", True, dtype_key)
    # SFTConfig's deprecated spelling, copied to use_liger_kernel until TRL 0.18
    # (v0.16.0 trl/trainer/sft_config.py __post_init__).
    legacy = values.get("use_liger")
    if (
        trl
        and values.get("use_liger_kernel") is None
        and legacy is not None
        and as_bool(legacy, display, f.label("use_liger"))
    ):
        f.record("use_liger_kernel", True, "use_liger")
    if trl and not dpo and sft_loss:
        _sft_loss_type(values, f, trl_version)
    env = values.get("env")
    if trl and isinstance(env, dict):
        f.put("env_vars", dict(env), "env")
    if trl:
        _activation_offloading(values, f)
    return f.reading()


TRL_CHUNKED_NLL_TOKENS = 256
"""Valid tokens per chunk of SFTConfig's ``loss_type: chunked_nll`` (TRL v1.9.0
``trl/trainer/sft_trainer.py`` ``_CHUNKED_LM_HEAD_CHUNK_SIZE``), recorded as
``extras.chunked_nll``."""
CHUNKED_NLL_DEFAULT_SINCE = (1, 7)
"""The TRL release whose SFTConfig defaults ``loss_type`` to ``chunked_nll`` (v1.7.0
``trl/trainer/sft_config.py``; ``nll`` through v1.6.0)."""
TRL_LOSS_TYPES = ("nll", "dft", "chunked_nll")
"""SFTConfig's ``loss_type`` values (TRL v1.9.0 ``trl/trainer/sft_trainer.py``: anything else
raises "Invalid `loss_type`")."""


def _sft_loss_type(values: dict[str, Any], f: Fields, trl_version: tuple[int, int] | None) -> None:
    """SFTConfig's ``loss_type``, as TRL v1.9.0 resolves it (``trl/trainer/sft_config.py``
    ``__post_init__``): unset, it is ``chunked_nll`` unless ``use_liger_kernel`` is on (then
    ``nll``, Liger's fused loss). The default changed in TRL v1.7.0 (``nll`` before; v1.4.0
    to v1.6.0 offered ``chunked_nll`` only when asked for); the reader follows v1.9.0, as for
    every TRL default, unless a script pins an older TRL (``trl_version``).

    ``chunked_nll`` patches the model's forward (``sft_trainer.py``
    ``_patch_chunked_ce_lm_head``): the decoder runs up to its last hidden state, tokens
    labelled -100 are dropped before the ``lm_head`` matmul, and the cross-entropy runs over
    ``TRL_CHUNKED_NLL_TOKENS`` valid tokens at a time, each chunk under its own activation
    checkpoint, so the full logits are never held. It is recorded as
    ``extras.chunked_nll`` (the tokens per chunk) for the analytic model. ``nll`` and ``dft``
    keep the model's full logits. TRL refuses ``chunked_nll`` beside ``use_liger_kernel`` and
    under a PEFT adapter on ``lm_head``; so does the reader, naming the key."""
    key = "loss_type"
    liger = f.fields.get("extras", {}).get("use_liger_kernel") is True
    written = values.get(key)
    if written is None:
        older = trl_version is not None and trl_version < CHUNKED_NLL_DEFAULT_SINCE
        if not liger and not older:
            f.fields.setdefault("extras", {})["chunked_nll"] = TRL_CHUNKED_NLL_TOKENS
            _chunked_nll_lm_head(f, f"{key} (unset: chunked_nll, TRL ≥ v1.7.0)")
        return
    if written not in TRL_LOSS_TYPES:
        raise WorkloadError(
            f.display,
            f"{written!r} is not a loss_type SFTConfig accepts ({', '.join(TRL_LOSS_TYPES)}; "
            "TRL v1.9.0 trl/trainer/sft_trainer.py raises 'Invalid `loss_type`')",
            field=f.label(key),
        )
    if written != "chunked_nll":
        return
    if liger:
        raise WorkloadError(
            f.display,
            "loss_type: chunked_nll beside use_liger_kernel: TRL's SFTTrainer raises "
            "\"`loss_type='chunked_nll'` is not compatible with `use_liger_kernel=True`\" "
            "(TRL v1.9.0 trl/trainer/sft_trainer.py); drop one of them",
            field=f.label(key),
        )
    f.record("chunked_nll", TRL_CHUNKED_NLL_TOKENS, key)
    _chunked_nll_lm_head(f, f"{key}: chunked_nll")


def _chunked_nll_lm_head(f: Fields, what: str) -> None:
    """TRL's chunked loss reads ``lm_head.weight`` directly, so it raises under a PEFT
    adapter on ``lm_head`` ("not supported when `lm_head` is wrapped by a PEFT adapter",
    TRL v1.9.0 ``trl/trainer/sft_trainer.py``)."""
    if f.fields.get("finetune") == "full" or "lm_head" not in f.fields.get("lora_targets", ()):
        return
    raise WorkloadError(
        f.display,
        f"{what} with a LoRA adapter on lm_head: TRL's SFTTrainer raises "
        "\"`loss_type='chunked_nll'` is not supported when `lm_head` is wrapped by a PEFT "
        'adapter" (TRL v1.9.0 trl/trainer/sft_trainer.py); set loss_type: nll or leave '
        "lm_head out of the target modules",
        field=f.label("loss_type"),
    )


def _activation_offloading(values: dict[str, Any], f: Fields) -> None:
    """SFTConfig's and DPOConfig's ``activation_offloading``: TRL's ``OffloadActivations``
    around the whole ``training_step`` (TRL v1.9.0 ``trl/trainer/sft_trainer.py``,
    ``dpo_trainer.py``; ``trl/models/activation_offloading.py``), so every saved tensor of
    the step but the output head's goes to pinned host memory, the loss's too; with or
    without checkpointing.

    Refused beside reentrant checkpointing (``gradient_checkpointing_kwargs.use_reentrant:
    true``, or what TRL forces for PEFT under DeepSpeed ZeRO-3): the offloading hooks stay
    on through the backward, so a reentrant checkpoint's recompute is copied to the host and
    back again inside it, which the analytic model does not price. TRL's own default is
    non-reentrant (``use_reentrant=False`` under transformers < 5, transformers 5's
    default)."""
    key = "activation_offloading"
    if values.get(key) is None or not as_bool(values[key], f.display, f.label(key)):
        return
    f.put("activation_offloading", True, key)
    f.put("activation_offloader", "trl", key)
    if not f.fields["gradient_checkpointing"]:
        return
    kwargs = values.get("gradient_checkpointing_kwargs")
    if isinstance(kwargs, str):
        # a dict-typed argument given as JSON, as HfArgumentParser takes it
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError:
            kwargs = None
    reentrant = isinstance(kwargs, dict) and kwargs.get("use_reentrant") is True
    forced = (
        f.fields.get("strategy") == "deepspeed"
        and f.fields.get("zero_stage") == 3
        and f.fields["finetune"] != "full"
    )
    if reentrant or forced:
        why = (
            "gradient_checkpointing_kwargs.use_reentrant: true"
            if reentrant
            else "PEFT under DeepSpeed ZeRO-3, for which TRL forces use_reentrant: true"
        )
        raise WorkloadError(
            f.display,
            f"activation_offloading: true beside reentrant checkpointing ({why}): TRL's "
            "offloading hooks stay on through the backward, so each layer's recompute is "
            "copied to the host and back again inside it, which pytest-goblin does not "
            "model; it models TRL's offloading beside non-reentrant checkpointing (TRL's "
            "default) or without checkpointing",
            field=f.label(key),
        )


FSDP_OPTION_STAGES = {
    "full_shard": 3,
    "hybrid_shard": 3,
    "shard_grad_op": 2,
    "hybrid_shard_zero2": 2,
    "no_shard": 0,
}
"""TrainingArguments' ``fsdp`` options (transformers v4.57.6 ``trainer_utils.FSDPOption``) as
the ZeRO stage whose states they split; ``offload`` is FSDP's CPU offload of parameters."""

TRAINER_FSDP2_SINCE = (5, 10)
"""The transformers release from which TrainingArguments builds FSDP2 unless ``fsdp_config``
says ``version: 1``: v5.10.0 ``training_args.py`` reads ``int(self.fsdp_config.get("version",
2))``, v5.9.0 ``get("version", 1)``; v4.57.6 passes no version, so accelerate's plugin takes
FSDP1 (``FSDP_VERSION`` unset: "1", accelerate 1.15.0.dev0 ``src/accelerate/utils/
dataclasses.py`` ``FullyShardedDataParallelPlugin.__post_init__``)."""
FSDP_VERSIONS = (1, 2)
"""The FSDP versions accelerate's plugin builds (``FullyShardedDataParallelPlugin``)."""


def trainer_fsdp_version(version: tuple[int, int] | None) -> int:
    """The FSDP version TrainingArguments' ``fsdp`` runs when ``fsdp_config`` names none, at
    a transformers ``(major, minor)`` a script pins (None: today's)."""
    return 2 if version is None or version >= TRAINER_FSDP2_SINCE else 1


def as_fsdp_version(value: Any, display: str, key: str) -> int:
    """An ``fsdp_config`` version: 1 (FullyShardedDataParallel) or 2 (``fully_shard``)."""
    version = as_int(value, display, key)
    if version not in FSDP_VERSIONS:
        raise WorkloadError(
            display, f"FSDP version {version} is not 1 or 2 (accelerate builds those)", field=key
        )
    return version


DPO_LR = 1e-6
"""DPOConfig's ``learning_rate`` default (TRL v0.19.0 and v1.9.0 trl/trainer/dpo_config.py)."""


ATTN_IMPLEMENTATION_SINCE = (4, 36)
"""``from_pretrained(attn_implementation=...)`` and the SDPA default arrived in transformers
v4.36.0 (``modeling_utils.py`` ``_autoset_attn_implementation``); v4.35.0 has neither, and its
``models/llama/modeling_llama.py`` computes attention eagerly."""
TRAINER_KEYS_SINCE = {
    "dataloader_persistent_workers": (4, 36),
    "dataloader_prefetch_factor": (4, 38),
}
"""TrainingArguments fields a patch may add that older releases lack (``training_args.py``:
absent from the v4.35.0 and v4.37.0 wheels respectively, present in v4.36.0 and v4.38.0):
an older TrainingArguments raises TypeError on them."""


def trainer_default_optim(version: tuple[int, int] | None) -> str:
    """TrainingArguments' ``optim`` default at a transformers ``(major, minor)`` a script pins
    (None: today's).

    ``default_optim`` in ``src/transformers/training_args.py``: ``"adamw_hf"`` (transformers'
    own AdamW) up to v4.31.0, ``"adamw_torch"`` from v4.32.0, ``"adamw_torch_fused"`` on
    torch 2.8 or newer from v4.54.0 (read in the v4.31.0, v4.32.0, v4.53.0 and v4.54.0 wheels).
    """
    if version is None:
        return TRAINER_DEFAULT_OPTIM
    if version < (4, 32):
        return "adamw_hf"
    if version < (4, 54):
        return "adamw_torch"
    return TRAINER_DEFAULT_OPTIM


def read_trainer_keys(
    f: Fields,
    *,
    lr_default: float,
    optim_default: str = TRAINER_DEFAULT_OPTIM,
    fsdp_version_default: int = 2,
) -> None:
    """The TrainingArguments keys every Trainer-based format shares, with the Trainer's defaults.

    ``warmup_steps`` below 1 is a ratio (transformers v5), not a step count;
    setting a compile mode or backend turns ``torch_compile`` on. ``fsdp_config``'s
    ``version`` (or ``fsdp_version``: TrainingArguments drops the ``fsdp_`` prefix of its
    keys, v5.25.0 ``training_args.py``) picks FSDP1 or FSDP2, ``fsdp_version_default``
    (``trainer_fsdp_version``) where it names none.
    """
    f.take("batch_size", "per_device_train_batch_size", as_int, 8)
    f.take("grad_accum_steps", "gradient_accumulation_steps", as_int, 1)
    f.take("optimizer", "optim", as_str, optim_default)
    f.take("lr", "learning_rate", as_float, lr_default)
    f.take("dataloader_workers", "dataloader_num_workers", as_int, 0)
    f.take("dataloader_pin_memory", "dataloader_pin_memory", as_bool, True)
    f.take("dataloader_persistent_workers", "dataloader_persistent_workers", as_bool, False)
    f.take("dataloader_prefetch_factor", "dataloader_prefetch_factor", as_int, None)
    warmup = f.get("warmup_steps")
    if warmup is not None and as_float(warmup, f.display, f.label("warmup_steps")) >= 1:
        f.put("warmup_steps", as_int(warmup, f.display, f.label("warmup_steps")), "warmup_steps")
    f.put("torch_compile", False)
    key = next(
        (
            k
            for k in ("torch_compile", "torch_compile_mode", "torch_compile_backend")
            if f.get(k) is not None
        ),
        None,
    )
    if key is not None:
        on = as_bool(f.get(key), f.display, f.label(key)) if key == "torch_compile" else True
        f.put("torch_compile", on, key)
    if f.get("deepspeed"):
        f.put("strategy", "deepspeed", "deepspeed")
        for field, value in zero_fields(f.get("deepspeed"), f.display, "deepspeed").items():
            f.put(field, value, "deepspeed")
    elif f.get("fsdp"):
        f.put("strategy", "fsdp", "fsdp")
        options = f.get("fsdp")
        options = options.split() if isinstance(options, str) else list(options or [])
        stages = [FSDP_OPTION_STAGES[o] for o in options if o in FSDP_OPTION_STAGES]
        if stages:
            f.put("zero_stage", stages[0], "fsdp")
        if "offload" in options:
            f.put("offload_params", True, "fsdp")
        f.put("fsdp_version", fsdp_version_default)
        fsdp_config = f.get("fsdp_config")
        for key in ("version", "fsdp_version"):
            if isinstance(fsdp_config, dict) and fsdp_config.get(key) is not None:
                label = f"{f.label('fsdp_config')}.{key}"
                f.put("fsdp_version", as_fsdp_version(fsdp_config[key], f.display, label))
                f.sources["fsdp_version"] = label
    for key in IN_USE_FLAGS:
        if f.get(key) is not None and as_bool(f.get(key), f.display, f.label(key)):
            f.record(key, True, key)
    _liger_fused_loss(f)
    read_sync_each_batch(f)
    f.take("ddp_find_unused_parameters", "ddp_find_unused_parameters", as_bool, None)
    f.take("ddp_bucket_cap_mb", "ddp_bucket_cap_mb", as_int, None)


def read_sync_each_batch(f: Fields) -> None:
    """``accelerator_config``'s ``gradient_accumulation_kwargs.sync_each_batch``: the Trainer
    hands it to accelerate's ``GradientAccumulationPlugin`` and then enters no ``no_sync``
    (transformers v5.25.0 ``src/transformers/trainer.py`` ``create_accelerator_and_postprocess``,
    ``_inner_training_loop``), so FSDP and DDP reduce gradients on every micro-batch.
    TrainingArguments takes the dict, or as a string JSON text or the path of a JSON file
    (``training_args.py`` ``_VALID_DICT_FIELDS``, ``__post_init__``); a path is not
    followed, as ``deepspeed`` and ``fsdp_config`` paths are not."""
    config = f.get("accelerator_config")
    label = f.label("accelerator_config")
    if isinstance(config, str) and config.lstrip().startswith("{"):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as error:
            raise WorkloadError(f.display, f"not JSON ({error})", field=label) from error
    kwargs = config.get("gradient_accumulation_kwargs") if isinstance(config, dict) else None
    if not isinstance(kwargs, dict) or kwargs.get("sync_each_batch") is None:
        return
    key = f"{label}.gradient_accumulation_kwargs.sync_each_batch"
    f.put("sync_each_batch", as_bool(kwargs["sync_each_batch"], f.display, key))
    f.sources["sync_each_batch"] = key


def _liger_fused_loss(f: Fields) -> None:
    """Record a Liger run whose ``liger_kernel_config`` turns the fused linear cross-entropy
    off: the Trainer passes that dict to Liger as keyword arguments (transformers v5.25.0
    ``integrations/liger.py`` ``apply_liger_kernel``: ``_apply_liger_kernel_to_instance(
    model=base_model, **kernel_config)``), so ``fused_linear_cross_entropy: false`` keeps
    the full logits the analytic model then prices."""
    config = f.get("liger_kernel_config")
    if f.fields.get("extras", {}).get("use_liger_kernel") is not True:
        return
    if not isinstance(config, dict) or "fused_linear_cross_entropy" not in config:
        return
    label = "liger_kernel_config.fused_linear_cross_entropy"
    fused = as_bool(config["fused_linear_cross_entropy"], f.display, f.label(label))
    if not fused:
        f.record("liger_fused_linear_cross_entropy", False, label)


def attention_location(values: dict[str, Any]) -> str | None:
    """The dotted key that holds the attention implementation, if any."""
    if values.get("attn_implementation") is not None:
        return "attn_implementation"
    if lookup(values, "model_init_kwargs.attn_implementation") is not None:
        return "model_init_kwargs.attn_implementation"
    return None


def dtype_location(values: dict[str, Any]) -> str | None:
    """The dotted key that holds the dtype the model is loaded in, if any."""
    for key in (*DTYPE_KEYS, *(f"model_init_kwargs.{k}" for k in DTYPE_KEYS)):
        if lookup(values, key) is not None:
            return key
    return None


def _precision(
    values: dict[str, Any], display: str, label: Callable[[str], str], trl: bool
) -> tuple[str, str | None]:
    """The dtype the matmuls run in: an autocast flag's (TRL: bf16 unless fp16); without one,
    a 4-bit base's compute dtype, else the load dtype.

    Autocast decides even over a 4-bit base: ``Linear4bit`` casts its input to
    ``bnb_4bit_compute_dtype`` and dequantizes the weight to it, but the matmul is a
    ``torch.nn.functional.linear`` that autocast casts again (bitsandbytes 0.49.2
    ``bitsandbytes/autograd/_functions.py`` ``MatMul4Bit.forward``; 0.50.1 runs
    ``gemm_4bit``, whose CUDA/ROCm kernel falls back to dequantize + ``F.linear`` above 1536
    / 256 tokens a micro-batch, ``bitsandbytes/backends/cuda/ops.py``), so bf16 autocast over
    a float16 compute dtype multiplies in bf16. Without autocast the compute dtype is the
    matmul's (``nn/modules.py`` ``Linear4bit.forward``: ``x = x.to(self.compute_dtype)``),
    whatever the load dtype: transformers always passes one (``BitsAndBytesConfig``'s
    default float32, v5.25.0 ``utils/quantization_config.py``), so ``set_compute_type``
    never replaces it by the input's dtype."""

    def flag(key: str) -> bool:
        return is_true(values, key, display, label(key))

    if flag("bf16"):
        return "bf16", "bf16"
    if flag("fp16"):
        return "fp16", "fp16"
    if trl and values.get("bf16") is None:
        return "bf16", None
    compute = values.get(COMPUTE_DTYPE)
    computed = hf_precision_from_dtype(compute) if compute is not None else None
    if flag("load_in_4bit") and computed is not None:
        if computed == "fp32" and flag("tf32"):
            return "tf32", "tf32"
        return computed, COMPUTE_DTYPE
    dtype_key = dtype_location(values)
    loaded = hf_precision_from_dtype(lookup(values, dtype_key)) if dtype_key else None
    if loaded and loaded != "fp32":
        return loaded, dtype_key
    if flag("tf32"):
        return "tf32", "tf32"
    present = next((key for key in ("bf16", "fp16") if key in values), None)
    return "fp32", present


def _adapter(
    values: dict[str, Any],
    f: Fields,
    lora_defaults: tuple[int, int],
    target_defaults: tuple[str, ...],
) -> None:
    eight_bit = is_true(values, "load_in_8bit", f.display, f.label("load_in_8bit"))
    use_peft = values.get("use_peft")
    if use_peft is None or not as_bool(use_peft, f.display, f.label("use_peft")):
        if eight_bit:
            raise WorkloadError(f.display, EIGHT_BIT, field=f.label("load_in_8bit"))
        f.put("finetune", "full")
        return
    quantized = is_true(values, "load_in_4bit", f.display, f.label("load_in_4bit"))
    if eight_bit and quantized:
        raise WorkloadError(f.display, BOTH_BITS, field=f.label("load_in_8bit"))
    if is_true(values, "use_dora", f.display, f.label("use_dora")):
        # TRL v1.9.0 trl/trainer/utils.py get_peft_config: LoraConfig(use_dora=...)
        raise WorkloadError(f.display, f"use_dora: {DORA}", field=f.label("use_dora"))
    if eight_bit:
        f.put("finetune", "lora8", "load_in_8bit")
    else:
        f.put(
            "finetune",
            "qlora" if quantized else "lora",
            "load_in_4bit" if quantized else "use_peft",
        )
    rank, alpha = lora_defaults
    f.take("lora_rank", "lora_r", as_int, rank)
    f.take("lora_alpha", "lora_alpha", as_int, alpha)
    f.take(
        "lora_targets",
        "lora_target_modules",
        lambda v, *_: targets_list(v),
        list(target_defaults),
    )


# --- writing a patch ----------------------------------------------------------------


def edits_trl(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    if field in _NOT_IN_DPO and TRL_DPO_OWN & data.keys():
        raise Unpatchable(field, _NOT_IN_DPO[field])
    return _edits(data, field, value, trl=True)


_NOT_IN_DPO = {
    "packing": "DPOConfig has no packing (trl/trainer/dpo_config.py): `trl dpo` ignores the key",
}
"""SFTConfig keys a DPO file cannot take, and why."""


def edits_hf_args(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    return _edits(data, field, value, trl=False)


TRAINER_KEYS = {
    "batch_size": "per_device_train_batch_size",
    "grad_accum_steps": "gradient_accumulation_steps",
    "optimizer": "optim",
    "lr": "learning_rate",
    "warmup_steps": "warmup_steps",
    "torch_compile": "torch_compile",
    "dataloader_workers": "dataloader_num_workers",
    "dataloader_pin_memory": "dataloader_pin_memory",
    "dataloader_persistent_workers": "dataloader_persistent_workers",
    "dataloader_prefetch_factor": "dataloader_prefetch_factor",
    "ddp_find_unused_parameters": "ddp_find_unused_parameters",
    "ddp_bucket_cap_mb": "ddp_bucket_cap_mb",
}
"""WorkloadConfig fields and the TrainingArguments keys that hold them."""


def trainer_edit(field: str, value: Any, loader_anchors: tuple[str, ...]) -> Edit | None:
    """The TrainingArguments key for ``field`` (None when it is not one of them).

    A new key goes next to its kin: loader keys after ``loader_anchors``,
    the rest after the batch and precision keys.
    """
    key = TRAINER_KEYS.get(field)
    if key is None:
        return None
    return Edit((key,), value, loader_anchors if key.startswith("dataloader_") else _TRAIN)


def _edits(data: dict[str, Any], field: str, value: Any, *, trl: bool) -> list[Edit]:
    edit = trainer_edit(field, value, _LOADER)
    if edit is not None:
        return [edit]
    if field == "gradient_checkpointing":
        return [Edit(("gradient_checkpointing",), value, _TRAIN)]
    trl_only = {
        "packing": ("packing", SEQ_KEYS),
        "lora_rank": ("lora_r", ("use_peft",)),
        "lora_alpha": ("lora_alpha", ("lora_r", "use_peft")),
    }
    if field in trl_only:
        if not trl:
            raise Unpatchable(field, f"TrainingArguments has no key for {field} (TRL's has)")
        key, after = trl_only[field]
        return [Edit((key,), value, after)]
    if field == "lora_targets" and trl:
        return [Edit(("lora_target_modules",), list(value), ("lora_r", "use_peft"))]
    if field == "finetune" and trl:
        return _finetune_edits(data, value)
    if field == "seq_len":
        if (
            trl
            and not any(data.get(k) is not None for k in SEQ_KEYS)
            and ("max_length" in data or "max_seq_length" in data)
        ):
            raise Unpatchable(
                field,
                "max_length is null (no truncation), so the sequence length is the data's, "
                "given in the sidecar; a patch does not start truncating it",
            )
        seq_key = next((k for k in SEQ_KEYS if k in data), "max_length" if trl else None)
        if seq_key is None:
            raise Unpatchable(
                field,
                "TrainingArguments has no sequence length key; the "
                "script's tokenizer or data collator sets it",
            )
        return [Edit((seq_key,), value, _TRAIN)]
    if field == "precision":
        return precision_edits(data, value, trl=trl)
    if field == "attention_impl":
        return _attention_edits(data, value, trl=trl)
    if field.startswith("env_vars.") and trl:
        return [Edit(("env", field.split(".", 1)[1]), str(value), quote=True)]
    raise Unpatchable(field, f"{TRL if trl else 'TrainingArguments'} files have no key for {field}")


def _finetune_edits(data: dict[str, Any], finetune: str) -> list[Edit]:
    """How LoRA's frozen base is stored, in TRL's ``ModelConfig`` keys (trl v0.19.0
    ``trl/trainer/model_config.py``: ``load_in_8bit``, ``load_in_4bit``, which
    ``get_quantization_config`` turns into a ``BitsAndBytesConfig``); the other flag is
    switched off where the file sets it. Full fine-tuning changes what is trained: advice."""
    flags = {"lora": (), "lora8": ("load_in_8bit",), "qlora": ("load_in_4bit",)}
    if finetune not in flags:
        raise Unpatchable("finetune", f"a patch switches only LoRA's base, not to {finetune}")
    return [
        Edit((key,), key in flags[finetune], ("use_peft",))
        for key in ("load_in_8bit", "load_in_4bit")
        if key in flags[finetune] or data.get(key) is not None
    ]


def precision_edits(data: dict[str, Any], precision: str, *, trl: bool) -> list[Edit]:
    """The autocast flags (and a float16 load dtype) that give ``precision``.

    TRL turns bf16 on by itself unless fp16 is set, so fp32 and tf32 there
    need an explicit ``bf16: false``.
    """
    if precision not in ("bf16", "fp16", "fp32", "tf32"):
        raise Unpatchable("precision", f"no TrainingArguments flag for precision {precision}")
    found = []
    for key in ("bf16", "fp16"):
        on = precision == key
        if on or key in data or (trl and key == "bf16"):
            found.append(Edit((key,), on, _TRAIN))
    if precision == "tf32" or data.get("tf32"):
        found.append(Edit(("tf32",), precision == "tf32", _TRAIN))
    dtype_key = dtype_location(data)
    if (
        dtype_key
        and precision == "bf16"
        and hf_precision_from_dtype(lookup(data, dtype_key)) == "fp16"
    ):
        found.append(Edit(tuple(dtype_key.split(".")), "bfloat16"))
    # A 4-bit base casts its input and dequantized weight to the compute dtype before the
    # matmul, which bf16 autocast then casts to bf16 (_precision): a float16 compute dtype
    # costs extra casts in every 4-bit layer and fp16's range, so bf16 moves it too.
    compute = data.get(COMPUTE_DTYPE)
    if (
        precision == "bf16"
        and compute is not None
        and data.get("load_in_4bit")
        and hf_precision_from_dtype(compute) == "fp16"
    ):
        found.append(Edit((COMPUTE_DTYPE,), "bfloat16"))
    return found


def _attention_edits(data: dict[str, Any], attention: str, *, trl: bool) -> list[Edit]:
    if attention not in HF_ATTENTION_NAMES:
        raise Unpatchable("attention_impl", f"no attn_implementation for {attention}")
    key = attention_location(data) or ("attn_implementation" if trl else None)
    if key is None:
        raise Unpatchable(
            "attention_impl",
            "TrainingArguments has no attention key; the "
            "script's from_pretrained(attn_implementation=...) sets it",
        )
    return [
        Edit(
            tuple(key.split(".")),
            HF_ATTENTION_NAMES[attention],
            ("dtype", "torch_dtype", "model_name_or_path"),
        )
    ]
