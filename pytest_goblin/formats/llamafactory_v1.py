"""LLaMA-Factory v1 trainer configs (``USE_V1=1 llamafactory-cli sft config.yaml``).

The v1 trainer is LLaMA-Factory's own training loop, not the Hugging Face Trainer:
its YAML names the model with ``model`` and each plugin as a ``*_config`` mapping
with a ``name`` (``peft_config``, ``quant_config``, ``kernel_config``,
``dist_config``, ``optim_config``). Every fact below is from LLaMA-Factory main
at ff6d4d1 (2026-08-18), ``src/llamafactory/v1/``:

- Batch: ``micro_batch_size`` (default 1) per rank; ``global_batch_size`` unset is
  dp × micro, so one micro-batch per step; set, the step accumulates
  ``global_batch_size / (dp × micro_batch_size)`` micro-batches, dp being the
  launcher's world size over ``cp_size`` (``core/utils/batching.py`` BatchGenerator).
- ``cutoff_len`` 2048; ``enable_activation_checkpointing`` on; ``flash_attn`` sdpa
  (eager, sdpa, flash_attention_2); ``batching_workers`` 16 data-loader workers with
  pinned memory (``config/training_args.py``, ``config/model_args.py``).
- Precision: a full fine-tune is cast to float32 (``core/model_engine.py``), LoRA
  keeps the checkpoint's dtype (``dtype="auto"``). ``bf16`` (default true) reaches
  only FSDP2's MixedPrecisionPolicy (``plugins/trainer_plugins/distributed/fsdp2.py``);
  DeepSpeed takes its precision from its config file, bf16 unless that file turns it
  off (a file pytest-goblin cannot see is read as bf16), never fp16 (``plugins/model_plugins/deepspeed_utils.py``); without
  ``dist_config`` nothing autocasts, so a full fine-tune trains in fp32.
- PEFT: none is full fine-tuning; ``lora`` r 8, lora_alpha 16, all linear layers;
  ``freeze`` is refused (``plugins/model_plugins/peft.py``). ``quant_config`` bnb
  (or auto with a width) loads the base through bitsandbytes, 4-bit NF4 with
  ``compute_dtype`` float16 by default (``plugins/model_plugins/quantization.py``).
- ``kernel_config: {name: auto}`` applies kernels on Ascend NPUs only; on CUDA and
  ROCm it changes nothing (``plugins/model_plugins/kernels/interface.py``).
- The objective is the command's (``sft``/``train``, ``dpo``, ``rm``: ``launcher.py``),
  not the file's: a file is read as SFT unless it sets a preference key, which only
  ``llamafactory-cli dpo`` reads (``trainers/dpo_trainer.py``).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import (
    ALL_LINEAR,
    Edit,
    Fields,
    Reading,
    Unpatchable,
    Unset,
    as_bool,
    as_float,
    as_int,
    check_model,
    hf_precision_from_dtype,
    is_true,
    lookup,
    refuse_parallelism,
    targets_list,
)
from pytest_goblin.formats.deepspeed import zero_fields

NAME = "llamafactory-v1"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})

MARKERS = frozenset(
    {
        "model_class",
        "init_config",
        "peft_config",
        "kernel_config",
        "quant_config",
        "dist_config",
        "optim_config",
        "lr_scheduler_config",
        "micro_batch_size",
        "global_batch_size",
        "train_dataset",
        "batching_strategy",
        "batching_workers",
        "enable_activation_checkpointing",
        "sample_backend",
    }
)
"""Keys only the v1 arguments have: neither WorkloadConfig nor LLaMA-Factory v0's
arguments have any of them, so a file with ``model`` and one of these is a v1 file."""

_ATTENTION = {"eager": "eager", "sdpa": "sdpa", "flash_attention_2": "flash"}
_WRITE_ATTENTION = {value: key for key, value in _ATTENTION.items()}
_PREFERENCE_KEYS = ("pref_loss", "pref_beta", "pref_ftx", "simpo_gamma", "dpo_label_smoothing")
_PREF_LOSSES = ("sigmoid", "orpo", "simpo")
_PACKED = ("padding_free", "dynamic_batching", "dynamic_padding_free")
"""Batching strategies whose micro-batches carry no padding or fill a token budget of
``micro_batch_size × cutoff_len`` (``plugins/trainer_plugins/batching.py``)."""
_STRATEGIES = ("normal", *_PACKED)
_QUANT = {4: "qlora", 8: "lora8"}
_PAIRS = re.compile(r"(^|[-_.])(dpo|orpo|simpo|pref|preference)([-_.]|$)")
"""A dataset file named for chosen/rejected pairs (``data/v1_dpo_demo.yaml``)."""


def detect(data: Any) -> bool:
    """``model`` (a string) plus a key only the v1 arguments have."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("model"), str)
        and "model_name_or_path" not in data
        and bool(MARKERS & data.keys())
    )


def read(data: dict[str, Any], display: str) -> Reading:
    f = Fields(display, lambda key: lookup(data, key))
    _refuse_unmodelled(data, display)
    check_model(data["model"], display, "model")
    f.put("model_name", data["model"], "model")
    f.take("lr", "learning_rate", as_float, 1e-4)
    f.take("seq_len", "cutoff_len", as_int, 2048)
    f.take("batch_size", "micro_batch_size", as_int, 1)
    _accumulation(data, f)
    f.take("gradient_checkpointing", "enable_activation_checkpointing", as_bool, True)
    f.take("dataloader_workers", "batching_workers", as_int, 16)
    _attention(data, display, f)
    _batching(data, display, f)
    _peft(data, display, f)
    _distributed(data, display, f)
    _precision(data, display, f)
    _optimizer(data, display, f)
    _kernels(data, display, f)
    _objective(data, display, f)
    return f.reading()


def _refuse_unmodelled(data: dict[str, Any], display: str) -> None:
    """Runs whose shape the analytic model has no terms for, refused by the key that asks."""
    model_class = str(data.get("model_class") or "llm")
    if model_class != "llm":
        raise WorkloadError(
            display,
            f"model_class {model_class!r} loads a {'token-classification (reward) head' if model_class == 'cls' else 'bare AutoModel'}; "
            "pytest-goblin models causal language models (model_class: llm)",
            field="model_class",
        )
    replicas = data.get("mp_replicate_size")
    if replicas is not None and as_int(replicas, display, "mp_replicate_size") > 1:
        raise WorkloadError(
            display,
            f"mp_replicate_size {replicas}: hybrid sharding shards each model state over one "
            "replica group, not over every rank, which pytest-goblin does not model",
            field="mp_replicate_size",
        )
    # cp_size > 1 splits each sequence across ranks (cp_mode, ulysses by default)
    if data.get("cp_size") is not None:
        refuse_parallelism(display, "cp_size", data["cp_size"], "context")


def _plugin(data: dict[str, Any], display: str, key: str) -> dict[str, Any] | None:
    """A ``*_config`` plugin mapping, as ``get_plugin_config`` requires it: with a ``name``."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise WorkloadError(
            display, "expected a mapping with a `name` (a plugin configuration)", field=key
        )
    return value


def _accumulation(data: dict[str, Any], f: Fields) -> None:
    if data.get("global_batch_size") is None:
        f.put("grad_accum_steps", 1)
        return
    dp = data.get("dp_size")
    if dp is not None:
        dp = as_int(dp, f.display, "dp_size")
        total = as_int(data["global_batch_size"], f.display, "global_batch_size")
        per_step = dp * f.fields["batch_size"]
        if total % per_step:
            raise WorkloadError(
                f.display,
                f"global_batch_size {total} is not a multiple of dp_size × micro_batch_size "
                f"({per_step}); LLaMA-Factory's BatchGenerator refuses it",
                field="global_batch_size",
            )
        f.put("grad_accum_steps", total // per_step, "global_batch_size")
        return
    f.unset["grad_accum_steps"] = Unset(
        "global_batch_size",
        "global_batch_size: each rank accumulates global_batch_size / (dp × micro_batch_size) "
        "micro-batches, and dp is the number of ranks the launcher starts (over cp_size); "
        "give `grad_accum_steps:` and `world_size:`",
        settable=False,
    )


def _attention(data: dict[str, Any], display: str, f: Fields) -> None:
    name = str(data.get("flash_attn") or "sdpa")
    if name not in _ATTENTION:
        raise WorkloadError(
            display,
            f"unknown flash_attn {name!r} (one of {', '.join(_ATTENTION)})",
            field="flash_attn",
        )
    f.put("attention_impl", _ATTENTION[name], "flash_attn" if "flash_attn" in data else None)


def _batching(data: dict[str, Any], display: str, f: Fields) -> None:
    strategy = str(data.get("batching_strategy") or "normal")
    if strategy not in _STRATEGIES:
        raise WorkloadError(
            display,
            f"unknown batching_strategy {strategy!r} (one of {', '.join(_STRATEGIES)})",
            field="batching_strategy",
        )
    f.put(
        "packing", strategy in _PACKED, "batching_strategy" if "batching_strategy" in data else None
    )


def _peft(data: dict[str, Any], display: str, f: Fields) -> None:
    peft = _plugin(data, display, "peft_config")
    quant = _plugin(data, display, "quant_config")
    if peft is None:
        if quant is not None and _bits(quant, display) is not None:
            raise WorkloadError(
                display,
                "quant_config without a LoRA peft_config: a quantized base trains only under "
                "an adapter, which pytest-goblin models as peft_config: {name: lora}",
                field="quant_config",
            )
        f.put("finetune", "full")
        return
    if peft["name"] != "lora":
        raise WorkloadError(
            display,
            f"peft_config.name {peft['name']!r} is not one pytest-goblin can model "
            "(lora, or no peft_config for full fine-tuning)",
            field="peft_config.name",
        )
    if peft.get("export_dir"):
        raise WorkloadError(
            display,
            "peft_config.export_dir: this file merges an adapter into its base "
            "(`llamafactory-cli merge`), it does not train",
            field="peft_config.export_dir",
        )
    if peft.get("adapter_name_or_path"):
        f.record("adapter_name_or_path", str(peft["adapter_name_or_path"]), "peft_config")
    bits = None if quant is None else _bits(quant, display)
    f.put("finetune", "lora" if bits is None else _QUANT[bits], "peft_config.name")
    if bits is not None:
        f.sources["finetune"] = "quant_config.quantization_bit"
    f.take("lora_rank", "peft_config.r", as_int, 8)
    f.take("lora_alpha", "peft_config.lora_alpha", as_int, 16)
    f.take(
        "lora_targets",
        "peft_config.target_modules",
        lambda value, *_: targets_list(value),
        list(ALL_LINEAR),
    )


def _bits(quant: dict[str, Any], display: str) -> int | None:
    """The bitsandbytes width of a ``quant_config``: bnb defaults to 4, auto without a width
    quantizes nothing; any other method is refused by name."""
    method = quant["name"]
    if method not in ("bnb", "auto"):
        raise WorkloadError(
            display,
            f"quant_config.name {method!r} is not a quantization LLaMA-Factory v1 has (bnb, auto)",
            field="quant_config.name",
        )
    bits = quant.get("quantization_bit")
    if bits is None:
        return 4 if method == "bnb" else None
    bits = as_int(bits, display, "quant_config.quantization_bit")
    if bits not in _QUANT:
        raise WorkloadError(
            display,
            f"quantization_bit {bits}: bitsandbytes quantizes to 8 or 4 bits only",
            field="quant_config.quantization_bit",
        )
    return bits


def _distributed(data: dict[str, Any], display: str, f: Fields) -> None:
    """``dist_config``: fsdp2 shards everything unless ``reshard_after_forward: false`` keeps
    the gathered parameters (ZeRO-2-like), ``offload_params`` puts parameters, gradients and
    the optimizer step on the host; deepspeed reads its ZeRO stage from ``config_file``. The
    number of ranks is the launcher's (torchrun over every visible device): a sidecar gives
    ``world_size``."""
    # core/base_trainer.py fit: a plain loss.backward() per micro-batch, FSDP2 syncing each
    f.put("training_loop", "llamafactory-v1")
    dist = _plugin(data, display, "dist_config")
    if dist is None:
        # several ranks without dist_config fall back to DDP with find_unused_parameters off
        # for a text model (core/base_trainer.py _shard_model)
        f.put("ddp_find_unused_parameters", False)
        return
    name = dist["name"]
    if name == "fsdp2":
        f.put("strategy", "fsdp", "dist_config.name")
        reshard = dist.get("reshard_after_forward")
        keeps = reshard is not None and not as_bool(
            reshard, display, "dist_config.reshard_after_forward"
        )
        f.put(
            "zero_stage",
            2 if keeps else 3,
            "dist_config.reshard_after_forward" if reshard is not None else None,
        )
        if is_true(dist, "offload_params", display, "dist_config.offload_params"):
            f.put("offload_params", True, "dist_config.offload_params")
            f.put("offload_optimizer", True, "dist_config.offload_params")
        return
    if name == "deepspeed":
        config_file = dist.get("config_file")
        if not config_file:
            raise WorkloadError(
                display,
                "dist_config deepspeed without config_file: LLaMA-Factory refuses it "
                "('DeepSpeed config_file is required in dist_config')",
                field="dist_config.config_file",
            )
        f.put("strategy", "deepspeed", "dist_config.name")
        for field, value in zero_fields(config_file, display, "dist_config.config_file").items():
            f.put(field, value, "dist_config.config_file")
        return
    raise WorkloadError(
        display,
        f"dist_config.name {name!r} is not a sharding pytest-goblin models (fsdp2, deepspeed; "
        "fsdpturbo's expert parallelism is not modelled)",
        field="dist_config.name",
    )


def _precision(data: dict[str, Any], display: str, f: Fields) -> None:
    quant = data.get("quant_config")
    if f.fields["finetune"] == "qlora" and isinstance(quant, dict):
        # BitsAndBytesConfig(bnb_4bit_compute_dtype=compute_dtype): the base's matmuls run in
        # that dtype whatever the sharding casts the inputs to
        dtype = quant.get("compute_dtype", "float16")
        precision = hf_precision_from_dtype(dtype)
        if precision is None:
            raise WorkloadError(
                display,
                f"compute_dtype {dtype!r} is not a torch dtype name",
                field="quant_config.compute_dtype",
            )
        f.put(
            "precision",
            precision,
            "quant_config.compute_dtype" if "compute_dtype" in quant else None,
        )
        return
    strategy = f.fields.get("strategy")
    if strategy == "deepspeed":
        # the DeepSpeed file decides (deepspeed_utils.py infer_deepspeed_mixed_precision): bf16
        # when it leaves bf16/fp16 "auto", as every file LLaMA-Factory ships does; fp16 is
        # refused there, and a file that turns bf16 off trains in fp32
        f.put("precision", "bf16", "dist_config.config_file")
        return
    bf16 = data.get("bf16")
    on = True if bf16 is None else as_bool(bf16, display, "bf16")
    if strategy == "fsdp":
        f.put("precision", "bf16" if on else "fp32", "bf16" if bf16 is not None else None)
    elif f.fields["finetune"] == "full":
        f.put("precision", "fp32")
    else:
        # dtype="auto": the checkpoint's dtype, bfloat16 for every model family with a preset
        f.put("precision", "bf16")


def _optimizer(data: dict[str, Any], display: str, f: Fields) -> None:
    """``optim_config`` unset is ``torch.optim.AdamW`` (``core/base_trainer.py``); muon is the
    one plugin registered (``plugins/trainer_plugins/optimizers/optimizer.py``)."""
    optim = _plugin(data, display, "optim_config")
    if optim is None:
        f.put("optimizer", "adamw_torch")
    else:
        f.put("optimizer", optim["name"], "optim_config.name")


def _kernels(data: dict[str, Any], display: str, f: Fields) -> None:
    kernel = _plugin(data, display, "kernel_config")
    if kernel is None:
        return
    names = [name.strip() for name in kernel["name"].split(",") if name.strip()]
    if "liger_kernel" in names:
        f.record("use_liger_kernel", True, "kernel_config.name")
    others = [name for name in names if name not in ("auto", "liger_kernel")]
    if others:
        f.record("kernels", others, "kernel_config.name")


def _objective(data: dict[str, Any], display: str, f: Fields) -> None:
    """DPO when a preference key is set: ``pref_loss`` sigmoid scores against a reference (the
    LoRA model with its adapter disabled, else a frozen copy), orpo and simpo use none."""
    written = [key for key in _PREFERENCE_KEYS if data.get(key) is not None]
    if not written:
        dataset = PurePosixPath(str(data.get("train_dataset") or "")).name.lower()
        if _PAIRS.search(dataset):
            f.unset["objective"] = Unset(
                "train_dataset",
                f"train_dataset {data['train_dataset']!r} is named for preference pairs, "
                "and the command decides the objective (llamafactory-cli sft or dpo), not the "
                "file: give `objective:` (sft or dpo)",
                settable=False,
            )
        else:
            f.put("objective", "sft")
        return
    loss = str(data.get("pref_loss") or "sigmoid")
    if loss not in _PREF_LOSSES:
        raise WorkloadError(
            display,
            f"unknown pref_loss {loss!r} (one of {', '.join(_PREF_LOSSES)})",
            field="pref_loss",
        )
    f.put("objective", "dpo", written[0])
    if loss == "sigmoid":
        f.put("reference", "adapter" if f.fields["finetune"] != "full" else "model")
    else:
        f.put("reference", "none", "pref_loss")


def edits(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    """The v1 keys that give ``field`` the value ``value``."""
    simple = {
        "seq_len": ("cutoff_len",),
        "gradient_checkpointing": ("enable_activation_checkpointing",),
        "dataloader_workers": ("batching_workers",),
        "lr": ("learning_rate",),
    }
    if field in simple:
        return [Edit(simple[field], value, ("micro_batch_size", "cutoff_len"))]
    if field == "batch_size":
        if data.get("global_batch_size") is not None:
            raise Unpatchable(
                field,
                "global_batch_size fixes the batch of a step: a larger micro_batch_size "
                "lowers the accumulation instead",
            )
        return [Edit(("micro_batch_size",), value, ("output_dir",))]
    if field == "attention_impl":
        if value not in _WRITE_ATTENTION:
            raise Unpatchable(field, f"flash_attn has no value for {value}")
        return [Edit(("flash_attn",), _WRITE_ATTENTION[value], ("model_class", "model"))]
    if field in ("lora_rank", "lora_alpha", "lora_targets"):
        if not isinstance(data.get("peft_config"), dict):
            raise Unpatchable(field, "no peft_config: the run is a full fine-tune")
        key = {"lora_rank": "r", "lora_alpha": "lora_alpha", "lora_targets": "target_modules"}
        written = value
        if field == "lora_targets":
            written = "all" if list(value) == ALL_LINEAR else list(value)
        return [Edit(("peft_config", key[field]), written)]
    if field == "precision":
        return _precision_edits(data, value)
    if field == "finetune":
        quant = data.get("quant_config")
        if value in ("qlora", "lora8") and isinstance(quant, dict) and quant.get("name") == "bnb":
            return [Edit(("quant_config", "quantization_bit"), 4 if value == "qlora" else 8)]
        raise Unpatchable(
            field, "a patch changes only the width of an existing quant_config: {name: bnb}"
        )
    if field == "packing":
        raise Unpatchable(
            field,
            "batching_strategy padding_free needs flash_attn: flash_attention_2 and "
            "dynamic_batching needs max_steps, so a patch does not switch it",
        )
    if field == "optimizer":
        raise Unpatchable(
            field,
            "without optim_config the v1 trainer builds torch.optim.AdamW with no fused "
            "switch, and muon is its one optimizer plugin (plugins/trainer_plugins/optimizers)",
        )
    raise Unpatchable(field, f"LLaMA-Factory v1 configs have no key for {field}")


def _precision_edits(data: dict[str, Any], precision: str) -> list[Edit]:
    dist = data.get("dist_config")
    name = dist.get("name") if isinstance(dist, dict) else None
    if name == "fsdp2" and precision in ("bf16", "fp32"):
        return [Edit(("bf16",), precision == "bf16", ("cutoff_len",))]
    if name == "deepspeed":
        raise Unpatchable("precision", "DeepSpeed takes the precision from its config_file")
    if name == "fsdp2":
        raise Unpatchable("precision", f"LLaMA-Factory v1 has bf16 or fp32, not {precision}")
    raise Unpatchable(
        "precision",
        "bf16 reaches only FSDP2's mixed precision: without dist_config a full fine-tune "
        "trains in fp32 and LoRA in the checkpoint's dtype",
    )
