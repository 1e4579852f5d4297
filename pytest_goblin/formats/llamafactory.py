"""LLaMA-Factory training configs (``llamafactory-cli train config.yaml``).

One flat namespace parsed by HfArgumentParser into LLaMA-Factory's model, data
and fine-tuning arguments and a Hugging Face TrainingArguments subclass, so
every Trainer key (``optim``, ``dataloader_*``, ``torch_compile``) is valid here.
LLaMA-Factory's own defaults differ from the Trainer's in ways that matter:
``finetuning_type`` is lora (rank 8, alpha 2 × rank, all linear layers),
gradient checkpointing is **on** unless ``disable_gradient_checkpointing: true``,
``cutoff_len`` is 2048, packing is on only for ``stage: pt``, and attention
``flash_attn: auto`` leaves the choice to transformers (SDPA). Defaults from
LLaMA-Factory v0.9.5 ``src/llamafactory/hparams/{model,data,finetuning}_args.py``.

Some switches own the optimizer (v0.9.5 ``src/llamafactory/train/trainer_utils.py``,
``create_custom_optimizer``): GaLore builds its own AdamW/8-bit AdamW/Adafactor from
``optim`` and raises ``Unknown optim`` for anything else (``adamw_torch_fused``
included), APOLLO accepts only ``adamw_torch``, and Adam-mini and Muon ignore
``optim``; a patch respects that. ``stage: dpo`` is read as DPO
(chosen and rejected sequences, a reference); the other preference and RL stages
(``rm``, ``ppo``, ``kto``) are refused by name, as are BAdam (one block trained at a
time), the ASFT loss (a reference forward) and mixture-of-depths. Without ``bf16`` or
``fp16`` a LoRA base still runs in bf16 (the checkpoint's half dtype, main ff6d4d1
``model/patcher.py``); a prediction, evaluation or export file (``do_predict``,
``export_dir``, ``infer_backend``, … without ``do_train: true``) trains nothing and is
an error naming ``do_train``.
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
    refuse_parallelism,
    targets_list,
)
from pytest_goblin.formats.hf_args import read_trainer_keys, trainer_edit, trainer_fsdp_version

NAME = "llamafactory"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})

MARKERS = frozenset(
    {
        "stage",
        "finetuning_type",
        "cutoff_len",
        "template",
        "lora_target",
        "lora_rank",
        "quantization_bit",
        "flash_attn",
        "plot_loss",
        "enable_liger_kernel",
        "disable_gradient_checkpointing",
    }
)
_FLASH_ATTN = {
    "auto": "sdpa",
    "sdpa": "sdpa",
    "disabled": "eager",
    "fa2": "flash",
    "fa3": "flash",
}
"""``AttentionFunction``, the only values ``flash_attn`` parses to (main ff6d4d1
src/llamafactory/extras/constants.py); ``auto`` leaves transformers' default, SDPA."""
_WRITE_FLASH_ATTN = {"flash": "fa2", "sdpa": "sdpa", "eager": "disabled"}
_TRAIN = (
    "bf16",
    "fp16",
    "learning_rate",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
)
_DATA = ("dataloader_num_workers", "preprocessing_num_workers", "cutoff_len")
_STAGES = {
    "rm": "reward-model training (pairs of sequences through a value head)",
    "ppo": "PPO (generation, a reward model and a value model)",
    "kto": "preference training (KTO, with a reference forward)",
}
_OTHER_ENGINES = {
    "use_kt": "the MoE experts on the CPU through KTransformers' AMX backend",
}
"""Switches that replace the Trainer's training loop (``use_kt``: v0.9.5
``src/llamafactory/hparams/model_args.py``). ``use_mca`` and ``use_megatron_bridge`` need no
entry: ``parser.py`` ``get_train_args`` chooses those engines from the ``USE_MCA`` and
``USE_MEGATRON_BRIDGE`` environment variables and sets both keys false on the Trainer path."""
_NOT_TRAINING = ("do_predict", "do_eval", "predict_with_generate", "export_dir", "infer_backend")
"""Keys of the configs LLaMA-Factory ships for prediction, evaluation, ``llamafactory-cli
export`` and ``chat`` (main ff6d4d1 ``examples/inference``, ``merge_lora``,
``extras/nlg_eval``)."""
_UNMODELLED = {
    "use_asft_loss": "loads a frozen copy of the model and runs it forward on every batch "
    "for the ASFT loss (main ff6d4d1 src/llamafactory/train/sft/workflow.py and trainer.py)",
    "use_badam": "trains one block of layers at a time (badam_mode layer, switched every "
    "badam_switch_interval steps) or a sparse fraction of each matrix (ratio), so only that "
    "part has gradients and optimizer state (main ff6d4d1 src/llamafactory/train/"
    "trainer_utils.py _create_badam_optimizer): neither a full fine-tune nor LoRA",
    "mixture_of_depths": "converts the model to mixture-of-depths, whose layers skip "
    "tokens (main ff6d4d1 src/llamafactory/model/model_utils/mod.py)",
}
"""Switches that change what a step computes beyond the workload's fields."""
_GALORE_OPTIM = {
    "adamw_torch": "galore_adamw",
    "adamw_bnb_8bit": "galore_adamw_8bit",
    "adamw_8bit": "galore_adamw_8bit",
    "paged_adamw_8bit": "galore_adamw_8bit",
    "adafactor": "galore_adafactor",
}
"""The optim values LLaMA-Factory's GaLore accepts, and the transformers name of what it builds."""
_OWNERS = {
    "use_galore": "GaLore builds its optimizer from optim and accepts only {}",
    "use_apollo": "APOLLO builds its optimizer from optim and accepts only {}",
    "use_adam_mini": "Adam-mini replaces the optimizer and ignores optim",
    "use_muon": "Muon replaces the optimizer and ignores optim",
}
_ALLOWED_OPTIM = {"use_galore": tuple(_GALORE_OPTIM), "use_apollo": ("adamw_torch",)}


def detect(data: Any) -> bool:
    """``model_name_or_path`` plus at least one key only LLaMA-Factory uses."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("model_name_or_path"), str)
        and bool(MARKERS & data.keys())
    )


_PREF_LOSSES = ("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")
"""``pref_loss`` values (v0.9.5 src/llamafactory/hparams/finetuning_args.py)."""


def read(data: dict[str, Any], display: str) -> Reading:
    stage = str(data.get("stage", "sft"))
    if stage not in ("sft", "pt", "dpo"):
        raise WorkloadError(
            display,
            f"stage {stage!r} is {_STAGES.get(stage, 'not a stage LLaMA-Factory has')}; "
            "pytest-goblin models pre-training (pt), supervised fine-tuning (sft) and dpo",
            field="stage",
        )
    for key, engine in _OTHER_ENGINES.items():
        if is_true(data, key, display):
            raise WorkloadError(
                display,
                f"{key}: true trains {engine}, not through the Hugging Face Trainer that "
                "pytest-goblin models for LLaMA-Factory",
                field=key,
            )
    _refuse_non_training(data, display)
    # hyper_parallel_cp_size is HyperParallel's context-parallel degree, read only when
    # use_hyper_parallel switches pt/sft to that backend (main ff6d4d1
    # src/llamafactory/train/tuner.py, train/hyper_parallel/workflow.py _prepare_hp_args)
    cp_size = data.get("hyper_parallel_cp_size")
    if is_true(data, "use_hyper_parallel", display) and cp_size is not None:
        refuse_parallelism(display, "hyper_parallel_cp_size", cp_size, "context")
    for key, why in _UNMODELLED.items():
        if data.get(key) not in (None, False):
            raise WorkloadError(
                display,
                f"{key}: {data[key]} {why}; pytest-goblin does not model it",
                field=key,
            )
    check_model(data["model_name_or_path"], display, "model_name_or_path")
    f = Fields(display, data.get)
    f.put("model_name", data["model_name_or_path"], "model_name_or_path")
    # LLaMA-Factory v0.9.5 (ff6d4d1 pyproject.toml) pins transformers <=5.8.0, whose
    # TrainingArguments builds FSDP1 unless fsdp_config says otherwise
    read_trainer_keys(f, lr_default=5e-5, fsdp_version_default=trainer_fsdp_version((5, 8)))
    owner = _optimizer_owner(data, display)
    if owner is not None:
        key, name = owner
        f.put("optimizer", name, key)
    f.take("seq_len", "cutoff_len", as_int, 2048)
    disable = data.get("disable_gradient_checkpointing")
    f.put(
        "gradient_checkpointing",
        not (disable is not None and as_bool(disable, display, "disable_gradient_checkpointing")),
        None if disable is None else "disable_gradient_checkpointing",
    )
    f.put("precision", *_precision(data, display))
    flash_attn = str(data.get("flash_attn") or "auto").strip().lower()
    if flash_attn not in _FLASH_ATTN:
        raise WorkloadError(
            display,
            f"flash_attn {flash_attn!r} is not one LLaMA-Factory accepts "
            f"(one of {', '.join(_FLASH_ATTN)})",
            field="flash_attn",
        )
    f.put(
        "attention_impl",
        _FLASH_ATTN[flash_attn],
        None if data.get("flash_attn") is None else "flash_attn",
    )
    # LLaMA-Factory upcasts trainable parameters to fp32 unless pure_bf16 keeps them in half
    # precision (v0.9.5 src/llamafactory/model/adapter.py init_adapter).
    if is_true(data, "pure_bf16", display):
        f.put("pure_precision", True, "pure_bf16")
    _packing(data, display, f)
    _method(data, display, f)
    # LoRA under DDP with the key unset: LLaMA-Factory sets ddp_find_unused_parameters to
    # False (src/llamafactory/hparams/parser.py get_train_args, hiyouga/LlamaFactory 1abb59e)
    if data.get("ddp_find_unused_parameters") is None and f.fields["finetune"] != "full":
        f.put("ddp_find_unused_parameters", False)
    if stage == "dpo":
        _read_dpo(data, display, f)
    if is_true(data, "enable_liger_kernel", display):
        f.record("use_liger_kernel", True, "enable_liger_kernel")
    return f.reading()


def _refuse_non_training(data: dict[str, Any], display: str) -> None:
    """A file that does not set ``do_train: true`` trains nothing: ``TrainingArguments.do_train``
    defaults to False and each workflow trains only under ``if training_args.do_train``
    (main ff6d4d1 src/llamafactory/train/sft/workflow.py)."""
    if is_true(data, "do_train", display):
        return
    found = [key for key in _NOT_TRAINING if data.get(key) not in (None, False)]
    if found:
        raise WorkloadError(
            display,
            f"a prediction, evaluation or export config ({found[0]}, no do_train: true): "
            "LLaMA-Factory trains only with do_train: true, so there is no training step "
            "to audit",
            field="do_train",
        )


def _read_dpo(data: dict[str, Any], display: str, f: Fields) -> None:
    """``stage: dpo`` (v0.9.5 src/llamafactory/train/dpo/workflow.py): ``pref_loss`` orpo and
    simpo use no reference; otherwise ``ref_model`` is loaded, or for LoRA without one the
    adapter is disabled, and a full fine-tune loads its model again
    (train/trainer_utils.py ``create_ref_model``). Chosen and rejected are each up to
    ``cutoff_len`` tokens."""
    f.put("objective", "dpo", "stage")
    loss = str(data.get("pref_loss", "sigmoid"))
    if loss not in _PREF_LOSSES:
        raise WorkloadError(
            display,
            f"unknown pref_loss {loss!r} (one of {', '.join(_PREF_LOSSES)})",
            field="pref_loss",
        )
    if loss in ("orpo", "simpo"):
        f.put("reference", "none", "pref_loss")
    elif data.get("ref_model") is not None:
        f.put("reference", "model", "ref_model")
    else:
        f.put("reference", "model" if f.fields["finetune"] == "full" else "adapter")


def _optimizer_owner(data: dict[str, Any], display: str) -> tuple[str, str] | None:
    """The switch that builds the optimizer instead of ``optim``, and what it builds."""
    optim = str(data.get("optim", "adamw_torch"))
    for key in _OWNERS:
        if data.get(key) is None or not as_bool(data[key], display, key):
            continue
        allowed = _ALLOWED_OPTIM.get(key)
        if allowed is not None and optim not in allowed:
            raise WorkloadError(
                display,
                f"{key} with optim {optim!r}: LLaMA-Factory raises 'Unknown optim' "
                f"({_OWNERS[key].format(', '.join(allowed))})",
                field="optim",
            )
        names = {"use_galore": _GALORE_OPTIM.get(optim), "use_apollo": "apollo_adamw"}
        return key, names.get(key) or key.removeprefix("use_")
    return None


def _precision(data: dict[str, Any], display: str) -> tuple[str, str | None]:
    """With neither ``bf16`` nor ``fp16`` the model is still loaded in half precision:
    ``compute_dtype`` is ``infer_optim_dtype(config.torch_dtype)``, bf16 for a bf16
    checkpoint on a GPU that has bf16 (main ff6d4d1 src/llamafactory/model/patcher.py,
    extras/misc.py). Only the trainable parameters are upcast to fp32 (model/adapter.py):
    a full fine-tune then trains in fp32, while LoRA's frozen base, which does nearly all
    the matmuls, stays in bf16."""
    for key, precision in (
        ("fp8", "fp8"),
        ("pure_bf16", "bf16"),
        ("bf16", "bf16"),
        ("fp16", "fp16"),
    ):
        if is_true(data, key, display):
            return precision, key
    present = [key for key in ("bf16", "fp16", "pure_bf16") if key in data]
    if data.get("finetuning_type", "lora") != "full":
        return "bf16", None
    if is_true(data, "tf32", display):
        return "tf32", "tf32"
    return "fp32", present[0] if present else None


def _packing(data: dict[str, Any], display: str, f: Fields) -> None:
    for key in ("neat_packing", "packing"):
        if is_true(data, key, display):
            f.put("packing", True, key)
            return
    if data.get("packing") is not None:
        f.put("packing", False, "packing")
    else:
        f.put("packing", data.get("stage", "sft") == "pt")


def _method(data: dict[str, Any], display: str, f: Fields) -> None:
    method = data.get("finetuning_type", "lora")
    if method == "full":
        if data.get("quantization_bit") is not None:
            raise WorkloadError(
                display,
                "quantization_bit with finetuning_type: full, which LLaMA-Factory refuses "
                "(main ff6d4d1 src/llamafactory/model/adapter.py: quantized models train "
                "only under LoRA or OFT)",
                field="quantization_bit",
            )
        f.put("finetune", "full", "finetuning_type")
        return
    if method != "lora":
        raise WorkloadError(
            display,
            f"finetuning_type {method!r} is not one pytest-goblin can model (full, lora)",
            field="finetuning_type",
        )
    bits = data.get("quantization_bit")
    if bits is not None:
        bits = as_int(bits, display, "quantization_bit")
        f.put("finetune", _quantized(data, bits, display), "quantization_bit")
    else:
        f.put("finetune", "lora", "finetuning_type" if "finetuning_type" in data else None)
    f.take("lora_rank", "lora_rank", as_int, 8)
    f.take("lora_alpha", "lora_alpha", as_int, 2 * f.fields["lora_rank"])
    f.take("lora_targets", "lora_target", lambda v, *_: targets_list(v), list(ALL_LINEAR))


_ON_THE_FLY = {4: "qlora", 8: "lora8"}
"""LLaMA-Factory v0.9.5 ``src/llamafactory/model/model_utils/quantization.py``: with the
default ``quantization_method: bnb``, ``quantization_bit: 8`` loads the base with
``BitsAndBytesConfig(load_in_8bit=True)`` (LLM.int8) and ``4`` with ``load_in_4bit``;
any other width is refused there."""


_BITSANDBYTES = ("bnb", "bitsandbytes")
"""``QuantizationMethod.BNB``: ``bnb`` in v0.9.5 ``src/llamafactory/extras/constants.py``,
``bitsandbytes`` in the releases whose examples still write it (``train_qlora/*_otfq.yaml``)."""


def _quantized(data: dict[str, Any], bits: int, display: str) -> str:
    """The fine-tune type of LoRA over an on-the-fly quantized base: bitsandbytes only (HQQ
    and EETQ kernels, ``quantization_method: hqq``/``eetq``, are not modelled)."""
    method = str(data.get("quantization_method") or "bnb").lower()
    if method not in _BITSANDBYTES:
        raise WorkloadError(
            display,
            f"quantization_method {method!r}: LoRA over a {bits}-bit {method.upper()} base "
            "is not one pytest-goblin can model (it models bitsandbytes' 8-bit LLM.int8 and "
            "4-bit NF4 bases, quantization_method: bnb)",
            field="quantization_method",
        )
    if bits not in _ON_THE_FLY:
        raise WorkloadError(
            display,
            f"quantization_bit {bits}: bitsandbytes quantizes to 8 or 4 bits only "
            "(LLaMA-Factory v0.9.5 src/llamafactory/model/model_utils/quantization.py)",
            field="quantization_bit",
        )
    return _ON_THE_FLY[bits]


def edits(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    """The keys that give ``field`` the value ``value``, in LLaMA-Factory's vocabulary."""
    if field == "finetune":
        bits = {"lora": None, "qlora": 4, "lora8": 8}
        if value not in bits:
            raise Unpatchable(field, f"a patch switches only LoRA's base, not to {value}")
        return [Edit(("quantization_bit",), bits[value], ("finetuning_type", "lora_rank"))]
    if field == "optimizer":
        for key, why in _OWNERS.items():
            if data.get(key):
                allowed = ", ".join(_ALLOWED_OPTIM.get(key, ()))
                raise Unpatchable(field, f"{key}: {why.format(allowed)}")
    edit = trainer_edit(field, value, _DATA)
    if edit is not None:
        return [edit]
    if field == "seq_len":
        return [Edit(("cutoff_len",), value, ("template", "dataset"))]
    if field == "lora_rank":
        found = [Edit(("lora_rank",), value, ("finetuning_type",))]
        if data.get("lora_alpha") is None:
            rank = data.get("lora_rank", 8)
            found.append(Edit(("lora_alpha",), 2 * int(rank), ("lora_rank", "finetuning_type")))
        return found
    if field == "lora_alpha":
        return [Edit(("lora_alpha",), value, ("lora_rank", "finetuning_type"))]
    if field == "gradient_checkpointing":
        return [
            Edit(
                ("disable_gradient_checkpointing",), not value, ("flash_attn", "model_name_or_path")
            )
        ]
    if field == "attention_impl":
        if value not in _WRITE_FLASH_ATTN:
            raise Unpatchable(field, f"flash_attn has no value for {value}")
        return [
            Edit(
                ("flash_attn",),
                _WRITE_FLASH_ATTN[value],
                ("trust_remote_code", "model_name_or_path"),
            )
        ]
    if field == "packing":
        found = [Edit(("packing",), value, ("cutoff_len",))]
        if not value and data.get("neat_packing"):
            found.append(Edit(("neat_packing",), False))
        return found
    if field == "lora_targets":
        written = "all" if list(value) == ALL_LINEAR else ",".join(value)
        return [Edit(("lora_target",), written, ("lora_rank", "finetuning_type"))]
    if field == "precision":
        return _precision_edits(data, value)
    raise Unpatchable(field, f"LLaMA-Factory configs have no key for {field}")


def _precision_edits(data: dict[str, Any], precision: str) -> list[Edit]:
    if precision == "fp8":
        return [Edit(("fp8",), True, _TRAIN)]
    if precision not in ("bf16", "fp16", "fp32", "tf32"):
        raise Unpatchable("precision", f"LLaMA-Factory has no setting for precision {precision}")
    wanted = {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    found = [Edit((key,), on, _TRAIN) for key, on in wanted.items() if on or key in data]
    if data.get("fp8"):
        found.append(Edit(("fp8",), False))
    if data.get("pure_bf16") and precision != "bf16":
        found.append(Edit(("pure_bf16",), False))
    if precision == "tf32" or data.get("tf32"):
        found.append(Edit(("tf32",), precision == "tf32", _TRAIN))
    return found
