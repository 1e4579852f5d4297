"""Axolotl YAML configs (``axolotl train config.yml``).

Defaults are axolotl's own (v0.18.0 ``src/axolotl/utils/schemas/config.py``):
micro batch 1, ``sequence_len`` 512, ``optimizer`` adamw_torch_fused, ``bf16:
auto`` (bf16 on any GPU that has it), gradient checkpointing off. When none of
``dataloader_num_workers``, ``dataloader_pin_memory`` and
``dataloader_prefetch_factor`` is set, axolotl's ``default_dataloader_opts``
validator gives one worker per GPU of the node (one on the single device an
audit models), pinned memory and a prefetch factor of 256; once any of them is
set, the others reach the Hugging Face Trainer unset (0 workers, pinned
memory, no prefetch factor), so a patch that sets one writes all three.
DPO (``rl: dpo`` or ``ipo``) is read as DPO (chosen and rejected sequences, a reference);
other preference and RL training (``rl: kto``, ``orpo``, ``grpo``, …) is refused by name.
Attention is written in the file's own style: the ``attn_implementation`` key
(axolotl ≥ 0.17) or the legacy ``flash_attention``/``sdp_attention``/… flags,
since mixing the two is a validation error in axolotl.
"""

from __future__ import annotations

from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import (
    ALL_LINEAR,
    EIGHT_BIT,
    HF_ATTENTION_NAMES,
    Edit,
    Fields,
    Reading,
    Unpatchable,
    as_bool,
    as_float,
    as_int,
    as_str,
    check_model,
    hf_attention,
    is_true,
    refuse_parallelism,
    targets_list,
)
from pytest_goblin.formats.deepspeed import zero_fields
from pytest_goblin.formats.hf_args import as_fsdp_version, read_sync_each_batch

NAME = "axolotl"
SUFFIXES = frozenset({".yaml", ".yml"})

MARKERS = frozenset(
    {
        "micro_batch_size",
        "sequence_len",
        "num_epochs",
        "adapter",
        "lora_r",
        "lora_target_linear",
        "sample_packing",
        "val_set_size",
        "datasets",
        "optimizer",
        "lr_scheduler",
        "wandb_project",
        "special_tokens",
        "plugins",
        "model_type",
        "tokenizer_type",
    }
)
LEGACY_ATTENTION = {
    "xformers_attention": "flash",
    "sage_attention": "flash",
    "flex_attention": "flash",
    "flash_attention": "flash",
    "sdp_attention": "sdpa",
    "eager_attention": "eager",
}
"""The legacy attention flags in the order axolotl v0.18.0 gives them priority
(``src/axolotl/utils/schemas/enums.py`` ``LEGACY_ATTN_FLAG_TO_IMPL``), as our classes."""
_AXOLOTL_ATTENTION = frozenset(
    {
        "eager",
        "sdpa",
        "flash_attention_2",
        "flash_attention_3",
        "flex_attention",
        "xformers",
        "sage",
        "fp8",
    }
)
"""The ``attn_implementation`` values axolotl v0.18.0 accepts besides hub-kernel paths
(``src/axolotl/utils/schemas/enums.py`` ``CANONICAL_ATTN_IMPLS``)."""
_SHORT_ATTENTION = {"flash": "flash_attention_2", "flex": "flex_attention", "sdp": "sdpa"}
"""Short forms axolotl v0.18.0 refuses (``SHORT_FORM_ALIAS_TO_CANONICAL``)."""
_LEGACY_FOR = {"flash": "flash_attention", "sdpa": "sdp_attention", "eager": "eager_attention"}
_PRECISION_KEYS = ("bf16", "fp16", "tf32", "sequence_len")
_DATALOADER = {
    "dataloader_num_workers": "dataloader_workers",
    "dataloader_pin_memory": "dataloader_pin_memory",
    "dataloader_prefetch_factor": "dataloader_prefetch_factor",
}
_DPO = ("dpo", "ipo")
"""``rl`` values that run TRL's DPOTrainer (IPO is its loss_type ipo): chosen and rejected
sequences and a reference, as DPO (v0.18.0 src/axolotl/core/trainers/dpo/__init__.py)."""
_LORA_KERNELS = ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel")
"""axolotl's fused LoRA kernels (v0.18.0 ``src/axolotl/utils/schemas/config.py``)."""
_FSDP_STAGES = {"FULL_SHARD": 3, "HYBRID_SHARD": 3, "SHARD_GRAD_OP": 2, "NO_SHARD": 0}
"""FSDP sharding strategies as the ZeRO stage whose states they split (torch v2.7.0
torch/distributed/fsdp/api.py ``ShardingStrategy``: FULL_SHARD shards parameters,
gradients and optimizer state; SHARD_GRAD_OP gradients and optimizer state)."""
_UNSET_DATALOADER = (1, True, 256)
"""What axolotl's ``default_dataloader_opts`` sets when no dataloader key is: ``n_gpu``
workers (one GPU here), pinned memory, prefetch factor 256."""
_LOADER_KEYS = (
    "dataloader_num_workers",
    "dataloader_pin_memory",
    "dataloader_prefetch_factor",
    "gradient_checkpointing",
    "sequence_len",
)


def detect(data: Any) -> bool:
    """``base_model`` plus at least one key only axolotl uses."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("base_model"), str)
        and bool(MARKERS & data.keys())
    )


def read(data: dict[str, Any], display: str) -> Reading:
    rl = data.get("rl")
    if rl is not None and str(rl).lower() not in _DPO:
        raise WorkloadError(
            display,
            f"rl: {rl} is preference or reinforcement-learning training (several "
            "sequences per example, a reference or reward model); pytest-goblin models "
            "supervised fine-tuning and DPO (rl: dpo, ipo) only",
            field="rl",
        )
    _refuse_other_trainers(data, display)
    _refuse_partial_training(data, display)
    _refuse_model_parallelism(data, display)
    check_model(data["base_model"], display, "base_model")
    f = Fields(display, data.get)
    f.put("model_name", data["base_model"], "base_model")
    _check_batch_keys(data, display)
    f.take("batch_size", "micro_batch_size", as_int, 1)
    f.take("seq_len", "sequence_len", as_int, 512)
    # the schema's accumulation default 1 when the file gives batch_size (_check_batch_keys)
    f.take("grad_accum_steps", "gradient_accumulation_steps", as_int, 1)
    f.take("optimizer", "optimizer", as_str, "adamw_torch_fused")
    f.take("lr", "learning_rate", as_float, 5e-5)
    warmup = data.get("warmup_steps")
    if isinstance(warmup, float) and not warmup.is_integer():
        raise WorkloadError(
            display,
            f"warmup_steps: {warmup} is refused by axolotl, whose schema types it int "
            "(v0.18.0 src/axolotl/utils/schemas/config.py); a fraction of the run is "
            f"warmup_ratio: {warmup}",
            field="warmup_steps",
        )
    f.take("warmup_steps", "warmup_steps", as_int, 0)
    if any(data.get(key) is not None for key in _DATALOADER):
        f.take("dataloader_workers", "dataloader_num_workers", as_int, 0)
        f.take("dataloader_pin_memory", "dataloader_pin_memory", as_bool, True)
        f.take("dataloader_prefetch_factor", "dataloader_prefetch_factor", as_int, None)
    else:
        for field, value in zip(_DATALOADER.values(), _UNSET_DATALOADER, strict=True):
            f.put(field, value)
    f.take("packing", "sample_packing", as_bool, False)
    f.put("dataloader_persistent_workers", False)
    checkpointing = data.get("gradient_checkpointing")
    f.put(
        "gradient_checkpointing",
        checkpointing not in (None, False),
        None if checkpointing is None else "gradient_checkpointing",
    )
    # torch_compile: auto is on with torch >= 2.5.1 (v0.18.0 src/axolotl/utils/schemas/
    # config.py check_torch_compile_auto), which every torch axolotl v0.18.0 takes (>=2.11)
    compile_value = data.get("torch_compile")
    f.put(
        "torch_compile",
        compile_value is True or str(compile_value).strip().lower() == "auto",
        None if compile_value is None else "torch_compile",
    )
    f.put("precision", *_precision(data, display))
    f.put("attention_impl", *_attention(data, display))
    _read_adapter(data, display, f)
    _activation_offloading(data, display, f)
    # axolotl loads the model in cfg.torch_dtype, the compute dtype (v0.18.0
    # src/axolotl/utils/config/__init__.py, loaders/model.py); PEFT upcasts 16-bit
    # adapters to fp32 (autocast_adapter_dtype=True), so only full fine-tuning is pure.
    f.put("pure_precision", f.fields["finetune"] == "full")
    if data.get("deepspeed"):
        f.put("strategy", "deepspeed", "deepspeed")
        for field, value in zero_fields(data["deepspeed"], display, "deepspeed").items():
            f.put(field, value, "deepspeed")
    elif data.get("fsdp") or data.get("fsdp_config"):
        f.put("strategy", "fsdp", "fsdp" if data.get("fsdp") else "fsdp_config")
        _read_fsdp(data, f)
    _in_use(data, f)
    # accelerator_config goes to TrainingArguments as AcceleratorConfig(**accelerator_config)
    # (v0.18.0 src/axolotl/core/builders/base.py _configure_accelerator_config)
    read_sync_each_batch(f)
    # under DDP axolotl passes bool(ddp_find_unused_parameters), False when unset, to
    # TrainingArguments, and ddp_bucket_cap_mb when set (v0.18.0
    # src/axolotl/core/builders/causal.py; Gemma 4, which it turns on for, has no preset)
    f.take("ddp_find_unused_parameters", "ddp_find_unused_parameters", as_bool, False)
    f.take("ddp_bucket_cap_mb", "ddp_bucket_cap_mb", as_int, None)
    if rl is not None:
        _read_dpo(data, display, f)
    return f.reading()


_OFFLOAD_MODES = (True, "disk", "hidden_states", "legacy")
"""``activation_offloading``'s values besides off (v0.18.0 ``src/axolotl/utils/schemas/
config.py``: ``Literal["legacy", "disk", "hidden_states"] | bool``)."""


def _activation_offloading(data: dict[str, Any], display: str, f: Fields) -> None:
    """``activation_offloading`` as axolotl v0.18.0 runs it, or refused where it runs a
    schedule the analytic model does not price.

    It requires ``gradient_checkpointing`` (``check_activation_offloading_wo_gc``);
    ``gradient_checkpointing: offload`` / ``offload_disk`` are its deprecated spellings of
    ``true`` / ``disk`` (``check_gradient_checkpointing_w_offload``). ``true`` and ``disk``
    build TRL's ``OffloadActivations`` around the whole training step, the loss included
    (``core/trainers/mixins/activation_checkpointing.py``); ``disk`` runs exactly as ``true``:
    the disk checkpoint patch compares against ``"offload_disk"``, a value the schema no
    longer admits (``loaders/patch_manager.py``). For a full fine-tune the loader wraps each
    decoder layer in torch's non-reentrant ``checkpoint_wrapper`` (``loaders/model.py``
    ``_apply_activation_checkpointing``), so only the layer inputs and what runs outside the
    layers are offloaded. For a LoRA/QLoRA run the docs say offloading replaces the recompute,
    but the loader still turns Hugging Face checkpointing on (``gradient_checkpointing_enable``
    with ``gradient_checkpointing_kwargs``, ``{use_reentrant: true}`` unless the file says
    otherwise, ``utils/config/__init__.py``; ``prepare_model_for_kbit_training`` turns it on
    again for a 4-/8-bit base), and TRL's hooks, on through the backward, offload a reentrant
    recompute a second time: refused, but for a 16-bit LoRA with ``use_reentrant: false``.
    ``hidden_states`` offloads only each checkpointed layer's input, beside non-reentrant
    checkpointing (``monkeypatch/checkpoint_activation_offload.py``); with ``use_reentrant:
    true`` it takes the ALST-style ``CheckpointFunction`` patch instead (refused). ``legacy``
    copies synchronously and swaps in a checkpoint offload wrapper (refused)."""
    key = "activation_offloading"
    value = data.get(key)
    checkpointing = data.get("gradient_checkpointing")
    if checkpointing in ("offload", "offload_disk"):
        value, key = (True if checkpointing == "offload" else "disk"), "gradient_checkpointing"
    if value in (None, False):
        return
    if value not in _OFFLOAD_MODES:
        raise WorkloadError(
            display,
            f"activation_offloading: {value!r} is none of axolotl's values (true, false, "
            "legacy, disk, hidden_states)",
            field=key,
        )
    if not f.fields["gradient_checkpointing"]:
        raise WorkloadError(
            display,
            f"activation_offloading: {value} without gradient_checkpointing: true; axolotl "
            "raises 'activation_offloading requires gradient_checkpointing'",
            field=key,
        )
    finetune = f.fields.get("finetune", "full")
    kwargs = data.get("gradient_checkpointing_kwargs")
    reentrant = kwargs.get("use_reentrant") if isinstance(kwargs, dict) else None
    if value == "legacy":
        raise WorkloadError(
            display,
            "activation_offloading: legacy copies to the host synchronously on the compute "
            "stream and swaps in axolotl's checkpoint offload wrapper, which pytest-goblin "
            "does not model; it models activation_offloading: true and hidden_states",
            field=key,
        )
    if value == "hidden_states":
        if reentrant is True:
            raise WorkloadError(
                display,
                "activation_offloading: hidden_states with gradient_checkpointing_kwargs."
                "use_reentrant: true runs axolotl's ALST-style CheckpointFunction patch, which "
                "pytest-goblin does not model; it models hidden_states beside non-reentrant "
                "checkpointing, axolotl's default for it",
                field="gradient_checkpointing_kwargs",
            )
        f.put("activation_offloading", True, key)
        f.put("activation_offloader", "axolotl-hidden-states", key)
        return
    if finetune != "full" and not (finetune == "lora" and reentrant is False):
        raise WorkloadError(
            display,
            f"activation_offloading: {value} with adapter: {data.get('adapter')}: axolotl's "
            "loader still turns Hugging Face checkpointing on for an adapter (reentrant "
            "unless gradient_checkpointing_kwargs.use_reentrant: false; a 4-/8-bit base is "
            "re-enabled by prepare_model_for_kbit_training), and TRL's offloading hooks, on "
            "through the backward, copy each reentrant recompute to the host and back again, "
            "which pytest-goblin does not model; activation_offloading: hidden_states is "
            "modelled",
            field=key,
        )
    f.put("activation_offloading", True, key)
    f.put("activation_offloader", "axolotl", key)


def _read_dpo(data: dict[str, Any], display: str, f: Fields) -> None:
    """axolotl's DPO runs TRL's DPOTrainer with ``max_length = sequence_len`` (v0.18.0
    src/axolotl/core/trainers/dpo/__init__.py); an adapter run without
    ``rl_adapter_ref_model`` gets no reference copy, so TRL disables the adapter for the
    reference (src/axolotl/train.py); ``precompute_ref_log_probs`` passes through."""
    f.put("objective", "dpo", "rl")
    reference = "model" if f.fields["finetune"] == "full" else "adapter"
    key = None
    ref_copy = data.get("rl_adapter_ref_model")
    if reference == "adapter" and ref_copy is not None:
        if as_bool(ref_copy, display, "rl_adapter_ref_model"):
            reference = "model"
        key = "rl_adapter_ref_model"
    if is_true(data, "precompute_ref_log_probs", display):
        reference, key = "precomputed", "precompute_ref_log_probs"
    f.put("reference", reference, key)


def _read_fsdp(data: dict[str, Any], f: Fields) -> None:
    """FSDP's version, sharding and CPU offload from ``fsdp_config`` (prefixed or not, v0.18.0):
    FULL_SHARD (FSDP1's default, and FSDP2's ``reshard_after_forward: true``) splits
    parameters too, SHARD_GRAD_OP gradients and optimizer state, NO_SHARD nothing."""
    fsdp = data.get("fsdp_config")
    if not isinstance(fsdp, dict):
        fsdp = {}
    options = data.get("fsdp")
    options = options.split() if isinstance(options, str) else list(options or [])
    for key in ("offload_params", "fsdp_offload_params"):
        if fsdp.get(key) is True:
            f.put("offload_params", True, f"fsdp_config.{key}")
    if "offload" in options:
        f.put("offload_params", True, "fsdp")
    for key in ("sharding_strategy", "fsdp_sharding_strategy"):
        stage = _FSDP_STAGES.get(str(fsdp.get(key, "")).upper())
        if stage is not None:
            f.put("zero_stage", stage, f"fsdp_config.{key}")
    for key in ("reshard_after_forward", "fsdp_reshard_after_forward"):
        if fsdp.get(key) is False:
            f.put("zero_stage", 2, f"fsdp_config.{key}")
    for option in options:
        stage = _FSDP_STAGES.get(str(option).upper())
        if stage is not None:
            f.put("zero_stage", stage, "fsdp")
    # fsdp_version, or fsdp_config's fsdp_version / version; a file with fsdp_config and
    # no version is pinned to FSDP1 (v0.18.0 src/axolotl/utils/schemas/validation.py
    # check_fsdp_version_in_fsdp_config), one with only the legacy fsdp list gets the
    # TrainingArguments default of the transformers it pins, 5.14.1: FSDP2
    f.put("fsdp_version", 1 if data.get("fsdp_config") else 2)
    for key, value in (
        ("fsdp_version", data.get("fsdp_version")),
        ("fsdp_config.version", fsdp.get("version")),
        ("fsdp_config.fsdp_version", fsdp.get("fsdp_version")),
    ):
        if value is not None:
            f.put("fsdp_version", as_fsdp_version(value, f.display, key), key)
            break


def _in_use(data: dict[str, Any], f: Fields) -> None:
    """What the run already uses that no field holds: the Liger and CutCrossEntropy
    plugins, LoRA kernels, ``group_by_length`` (recorded under ``extras``)."""
    plugins = data.get("plugins") or []
    liger = [key for key in data if key.startswith("liger_") and data[key] is True]
    if liger and any("liger" in str(plugin).lower() for plugin in plugins):
        f.record("use_liger_kernel", True, "plugins")
        if data.get("liger_fused_linear_cross_entropy") is not True:
            # every liger_* key defaults to None, off (v0.18.0 src/axolotl/integrations/
            # liger/args.py): the run still materialises the logits
            f.record("liger_fused_linear_cross_entropy", False, liger[0])
    # The CutCrossEntropy plugin fuses the LM head into the loss, so the fp32 logits
    # are never materialised; its ``cut_cross_entropy`` key defaults to True (v0.18.0
    # src/axolotl/integrations/cut_cross_entropy/args.py).
    cce = any("cut_cross_entropy" in str(plugin).lower() for plugin in plugins)
    if cce and data.get("cut_cross_entropy") is not False:
        f.record("cut_cross_entropy", True, "plugins")
    kernels = [key for key in _LORA_KERNELS if data.get(key) is True]
    if kernels:
        f.record("lora_kernels", kernels, kernels[0])
    if data.get("group_by_length") is True:
        f.record("group_by_length", True, "group_by_length")


def _precision(data: dict[str, Any], display: str) -> tuple[str, str | None]:
    """Which dtype the matmuls run in, and the key that decides it (None: the default).

    ``bf16: auto`` (the default) is bf16 on every GPU that has bf16, which is
    every device pytest-goblin audits for.
    """
    for key, precision in (("fp8", "fp8"), ("bfloat16", "bf16"), ("float16", "fp16")):
        if is_true(data, key, display):
            return precision, key
    bf16 = data.get("bf16", "auto")
    bf16 = "auto" if bf16 is None else bf16
    fp16 = is_true(data, "fp16", display)
    if bf16 != "auto" and as_bool(bf16, display, "bf16"):
        return "bf16", "bf16"
    if fp16:
        return "fp16", "fp16"
    if bf16 == "auto":
        return "bf16", "bf16" if data.get("bf16") is not None else None
    if data.get("tf32") is True:
        return "tf32", "tf32"
    return "fp32", "bf16"


def _attention(data: dict[str, Any], display: str) -> tuple[str, str | None]:
    """``attn_implementation`` or the legacy flags, as axolotl v0.18.0 resolves them
    (``src/axolotl/utils/schemas/config.py`` ``normalize_attn_implementation``: the first
    legacy flag set, in ``LEGACY_ATTN_FLAG_TO_IMPL``'s order, becomes
    ``attn_implementation``; ``validate_attn_implementation`` refuses the short forms
    ``flash``/``flex``/``sdp``, and ``s2_attention`` is no longer supported). Neither set:
    transformers' default, SDPA."""
    value = data.get("attn_implementation")
    if value is not None:
        name = str(value).strip()
        if name not in _AXOLOTL_ATTENTION and "/" not in name:
            canonical = _SHORT_ATTENTION.get(name)
            raise WorkloadError(
                display,
                f"attn_implementation: {name} is refused by axolotl (v0.18.0 "
                "src/axolotl/utils/schemas/config.py validate_attn_implementation): "
                + (
                    f"its name is {canonical}"
                    if canonical
                    else f"one of {', '.join(sorted(_AXOLOTL_ATTENTION))} or a hub-kernel path"
                ),
                field="attn_implementation",
            )
        return hf_attention(value, display, "attn_implementation"), "attn_implementation"
    if is_true(data, "s2_attention", display):
        raise WorkloadError(
            display,
            "s2_attention (shifted-sparse attention) is no longer supported by axolotl "
            "(v0.18.0 src/axolotl/utils/schemas/deprecated.py); set attn_implementation: "
            "flash_attention_2",
            field="s2_attention",
        )
    for key, attention in LEGACY_ATTENTION.items():
        if is_true(data, key, display):
            return attention, key
    return "sdpa", None


_OTHER_TRAINERS = {
    "reward_model": "reward-model training (TRL's RewardTrainer: a chosen and a rejected "
    "sequence per example through a sequence-classification head, no language-model head)",
    "process_reward_model": "process-reward-model training (TRL's PRMTrainer: a "
    "token-classification head scoring each reasoning step, no language-model head)",
}
"""Switches that replace the causal-LM trainer (axolotl v0.18.0, 067b021,
``src/axolotl/core/builders/causal.py``: ``reward_model`` picks ``AxolotlRewardConfig``
and the reward trainer, ``process_reward_model`` ``AxolotlPRMConfig``)."""
_MODEL_PARALLEL = {
    "tensor_parallel_size": "tensor",
    "context_parallel_size": "context",
    "sequence_parallel_degree": "sequence",
}
"""Model-parallel degrees and their kind (axolotl v0.18.0 ``src/axolotl/utils/schemas/
config.py``; ``sequence_parallel_degree`` is ``context_parallel_size``'s deprecated name)."""
_EXPERT_PARALLEL = "expert_parallel"
"""The plugin whose ``expert_parallel_size`` splits a MoE's experts across ranks (v0.18.0
``src/axolotl/integrations/expert_parallel/args.py``): without it the key is dropped by the
schema, so it counts only beside the plugin."""


_BATCH_KEYS = ("micro_batch_size", "gradient_accumulation_steps", "batch_size")
"""axolotl's three batch keys, in the order its validator names them."""


def _check_batch_keys(data: dict[str, Any], display: str) -> None:
    """Refuse what axolotl refuses before training (v0.18.0
    ``src/axolotl/utils/schemas/validation.py``, ``TrainingValidationMixin``, both run on the
    file's own values, a key counting when truthy): ``check_batch_size_fields``, fewer than
    two of the three keys; ``check_gas_bsz``, ``gradient_accumulation_steps`` beside
    ``batch_size``. A file axolotl accepts thus sets ``micro_batch_size`` and exactly one of
    the others. With ``gradient_accumulation_steps``, ``normalize_config``
    (``src/axolotl/utils/config/__init__.py``) derives ``batch_size`` as micro × accumulation
    (× the data-parallel world); with ``batch_size``, accumulation keeps its schema default
    1 (``src/axolotl/utils/schemas/training.py``), so ``gradient_accumulation_steps or
    batch_size // micro_batch_size`` never divides and the Trainer accumulates nothing
    (``core/builders/base.py`` passes ``micro_batch_size`` and ``gradient_accumulation_steps``
    to TrainingArguments, never ``batch_size``)."""
    given = [key for key in _BATCH_KEYS if data.get(key)]
    if len(given) < 2:
        missing = next(key for key in _BATCH_KEYS if not data.get(key))
        raise WorkloadError(
            display,
            f"axolotl refuses a file that sets {' and '.join(given) or 'none'} of its batch "
            "keys: 'At least two of micro_batch_size, gradient_accumulation_steps, "
            "batch_size must be set' (v0.18.0 src/axolotl/utils/schemas/validation.py "
            "check_batch_size_fields); set micro_batch_size and gradient_accumulation_steps",
            field=missing,
        )
    if data.get("gradient_accumulation_steps") and data.get("batch_size"):
        raise WorkloadError(
            display,
            "axolotl refuses gradient_accumulation_steps together with batch_size: 'please "
            "set only one of gradient_accumulation_steps or batch_size' (v0.18.0 "
            "src/axolotl/utils/schemas/validation.py check_gas_bsz); keep "
            "gradient_accumulation_steps",
            field="batch_size",
        )


def _refuse_other_trainers(data: dict[str, Any], display: str) -> None:
    """Reward and process-reward models are trained by other trainers on other heads."""
    for key, what in _OTHER_TRAINERS.items():
        if is_true(data, key, display):
            raise WorkloadError(
                display,
                f"{key}: true is {what}; pytest-goblin models causal-LM supervised "
                "fine-tuning and DPO",
                field=key,
            )


def _refuse_model_parallelism(data: dict[str, Any], display: str) -> None:
    """A run whose ranks hold a slice of each layer, of each sequence or of the experts."""
    for key, kind in _MODEL_PARALLEL.items():
        if data.get(key) is not None:
            refuse_parallelism(display, key, data[key], kind)
    plugins = [str(plugin).lower() for plugin in data.get("plugins") or []]
    if data.get("expert_parallel_size") is not None and any(
        _EXPERT_PARALLEL in plugin for plugin in plugins
    ):
        refuse_parallelism(display, "expert_parallel_size", data["expert_parallel_size"], "expert")


def _refuse_partial_training(data: dict[str, Any], display: str) -> None:
    """Spectrum trains only the layers with the highest signal-to-noise ratio
    (``spectrum_top_fraction``, default 0.5 in v0.18.0
    ``src/axolotl/integrations/spectrum/args.py``) and LISA a few sampled layers at a
    time: neither is a full fine-tune nor LoRA."""
    plugins = [str(plugin).lower() for plugin in data.get("plugins") or []]
    if any("spectrum" in plugin for plugin in plugins):
        raise WorkloadError(
            display,
            "the Spectrum plugin trains only a fraction of the layers "
            f"(spectrum_top_fraction {data.get('spectrum_top_fraction', 0.5)}); pytest-goblin "
            "models full, LoRA and QLoRA fine-tuning",
            field="plugins",
        )
    # LISA trains lisa_n_layers randomly chosen layers, switched every lisa_step_interval
    # steps, when both are set (v0.18.0 src/axolotl/core/builders/causal.py)
    if data.get("lisa_n_layers") and data.get("lisa_step_interval"):
        raise WorkloadError(
            display,
            f"LISA trains {data['lisa_n_layers']} randomly chosen layers at a time, the "
            "others frozen (lisa_n_layers with lisa_step_interval); pytest-goblin models "
            "full, LoRA and QLoRA fine-tuning",
            field="lisa_n_layers",
        )


def _read_adapter(data: dict[str, Any], display: str, f: Fields) -> None:
    """``adapter`` and the base's storage. axolotl v0.18.0 loads the base in 8 bits
    (``BitsAndBytesConfig(load_in_8bit=True)``, src/axolotl/loaders/model.py
    ``_set_quantization_config``) only for ``adapter: lora`` with ``load_in_8bit``, refuses
    8/4-bit loading without an adapter (src/axolotl/utils/schemas/peft.py
    ``validate_adapter``) and ``adapter: qlora`` with ``load_in_8bit`` (``validate_qlora``)."""
    eight_bit = is_true(data, "load_in_8bit", display)
    adapter = data.get("adapter")
    if adapter is None:
        if eight_bit:
            raise WorkloadError(display, EIGHT_BIT, field="load_in_8bit")
        if is_true(data, "load_in_4bit", display):
            raise WorkloadError(
                display,
                "load_in_4bit without an adapter, which axolotl refuses (v0.18.0 "
                "src/axolotl/utils/schemas/peft.py validate_adapter); a 4-bit base is "
                "trained under adapter: qlora",
                field="load_in_4bit",
            )
        f.put("finetune", "full")
        return
    if adapter not in ("lora", "qlora"):
        raise WorkloadError(
            display,
            f"adapter {adapter!r} is not one pytest-goblin can model (lora, qlora)",
            field="adapter",
        )
    if eight_bit and adapter == "qlora":
        raise WorkloadError(
            display,
            "adapter: qlora with load_in_8bit: true, which axolotl refuses (v0.18.0 "
            "src/axolotl/utils/schemas/peft.py validate_qlora: QLoRA is not loaded in 8 bits); "
            "QLoRA takes load_in_4bit: true",
            field="load_in_8bit",
        )
    if eight_bit:
        f.put("finetune", "lora8", "load_in_8bit")
    else:
        f.put("finetune", adapter, "adapter")
    f.take("lora_rank", "lora_r", as_int, None)
    f.take("lora_alpha", "lora_alpha", as_int, None)
    if data.get("lora_target_linear"):
        f.put("lora_targets", list(ALL_LINEAR), "lora_target_linear")
    elif data.get("lora_target_modules"):
        f.put("lora_targets", targets_list(data["lora_target_modules"]), "lora_target_modules")


def edits(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    """The keys that give ``field`` the value ``value``, in axolotl's vocabulary."""
    simple = {
        "batch_size": ("micro_batch_size", ("sequence_len",)),
        "seq_len": ("sequence_len", ()),
        "grad_accum_steps": ("gradient_accumulation_steps", ("micro_batch_size",)),
        "optimizer": ("optimizer", ("learning_rate", "micro_batch_size")),
        "lr": ("learning_rate", ("optimizer",)),
        "warmup_steps": ("warmup_steps", ("learning_rate",)),
        "packing": ("sample_packing", ("sequence_len",)),
        "gradient_checkpointing": ("gradient_checkpointing", _PRECISION_KEYS),
        "torch_compile": ("torch_compile", ("gradient_checkpointing", *_PRECISION_KEYS)),
        "dataloader_workers": ("dataloader_num_workers", _LOADER_KEYS),
        "dataloader_pin_memory": ("dataloader_pin_memory", _LOADER_KEYS),
        "dataloader_prefetch_factor": ("dataloader_prefetch_factor", _LOADER_KEYS),
        "lora_rank": ("lora_r", ("adapter",)),
        "lora_alpha": ("lora_alpha", ("lora_r",)),
        "ddp_find_unused_parameters": ("ddp_find_unused_parameters", _LOADER_KEYS),
        "ddp_bucket_cap_mb": ("ddp_bucket_cap_mb", _LOADER_KEYS),
    }
    if field in simple:
        key, after = simple[field]
        found = [Edit((key,), value, after)]
        if key in _DATALOADER and not any(data.get(k) is not None for k in _DATALOADER):
            found += [
                Edit((other,), default, _LOADER_KEYS)
                for other, default in zip(_DATALOADER, _UNSET_DATALOADER, strict=True)
                if other != key
            ]
        if field == "grad_accum_steps" and data.get("batch_size"):
            # axolotl refuses both keys at once (check_gas_bsz); null unsets batch_size
            found.append(Edit(("batch_size",), None))
        if field == "gradient_checkpointing" and not value and data.get("activation_offloading"):
            # axolotl refuses offloading without checkpointing (v0.18.0 validation.py
            # check_activation_offloading_wo_gc): it goes off with it
            found.append(Edit(("activation_offloading",), False, ("gradient_checkpointing",)))
        return found
    if field == "precision":
        return _precision_edits(data, value)
    if field == "attention_impl":
        return _attention_edits(data, value)
    if field == "lora_targets":
        found = [Edit(("lora_target_modules",), list(value), ("lora_r", "adapter"))]
        if data.get("lora_target_linear") and list(value) != ALL_LINEAR:
            found.append(Edit(("lora_target_linear",), False))
        return found
    if field == "finetune":
        return _finetune_edits(data, value)
    if field == "dataloader_persistent_workers":
        raise Unpatchable(field, "axolotl's config has no dataloader_persistent_workers key")
    raise Unpatchable(field, f"axolotl configs have no key for {field}")


def _finetune_edits(data: dict[str, Any], finetune: str) -> list[Edit]:
    """How the frozen base is stored under LoRA: ``adapter: qlora`` with ``load_in_4bit``
    (which axolotl v0.18.0 requires, ``validate_qlora``), ``adapter: lora`` with
    ``load_in_8bit`` for an 8-bit base, ``adapter: lora`` alone for a 16-bit one; the other
    loading flag is switched off where the file sets it. Full fine-tuning changes what is
    trained: advice, never a patch."""
    flags = {"lora": (), "lora8": ("load_in_8bit",), "qlora": ("load_in_4bit",)}
    if finetune not in flags:
        raise Unpatchable("finetune", f"a patch switches only LoRA's base, not to {finetune}")
    adapter = "qlora" if finetune == "qlora" else "lora"
    found = [Edit(("adapter",), adapter, ("base_model",))]
    for key in ("load_in_8bit", "load_in_4bit"):
        on = key in flags[finetune]
        if on or data.get(key) is not None:
            found.append(Edit((key,), on, ("adapter", "base_model")))
    return found


def _precision_edits(data: dict[str, Any], precision: str) -> list[Edit]:
    after = ("bf16", "fp16", "tf32", "sequence_len")
    pure = any(data.get(key) is not None for key in ("bfloat16", "float16"))
    if precision in ("bf16", "fp16") and pure:
        on, off = ("bfloat16", "float16") if precision == "bf16" else ("float16", "bfloat16")
        found = [Edit((on,), True, ("bfloat16", "float16", *after))]
        if data.get(off) is not None:
            found.append(Edit((off,), False))
        return found
    found = [Edit((key,), False) for key in ("fp8", "bfloat16", "float16") if data.get(key)]
    if precision == "bf16":
        found.append(Edit(("bf16",), True, after))
        if "fp16" in data:
            found.append(Edit(("fp16",), False))
    elif precision == "fp16":
        found += [Edit(("fp16",), True, after), Edit(("bf16",), False, after)]
    elif precision in ("fp32", "tf32"):
        found.append(Edit(("bf16",), False, after))
        if "fp16" in data:
            found.append(Edit(("fp16",), False))
        if precision == "tf32" or data.get("tf32"):
            found.append(Edit(("tf32",), precision == "tf32", after))
    elif precision == "fp8":
        found = [Edit(("fp8",), True, after)]
    else:
        raise Unpatchable("precision", f"axolotl has no setting for precision {precision}")
    return found


def _attention_edits(data: dict[str, Any], attention: str) -> list[Edit]:
    legacy = [key for key in LEGACY_ATTENTION if key in data]
    if "attn_implementation" in data or not legacy:
        if attention not in HF_ATTENTION_NAMES:
            raise Unpatchable("attention_impl", f"no attn_implementation for {attention}")
        return [
            Edit(
                ("attn_implementation",),
                HF_ATTENTION_NAMES[attention],
                ("sequence_len", "base_model"),
            )
        ]
    flag = _LEGACY_FOR.get(attention)
    if flag is None:
        raise Unpatchable("attention_impl", f"no legacy attention flag for {attention}")
    found = [Edit((flag,), True, tuple(legacy))]
    return found + [Edit((key,), False) for key in legacy if key != flag and data.get(key)]
