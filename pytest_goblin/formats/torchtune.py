"""torchtune recipe configs (``tune run <recipe> --config config.yaml``).

The model is a builder (``model._component_: torchtune.models.llama3_2.
lora_llama3_2_1b``), whose name gives both the architecture and the method
(``lora_``/``qlora_`` prefixes). Precision is ``dtype`` (bf16 or fp32, whole
model: no autocast, so weights, gradients and optimizer state are in it too; fp16 is
rejected by the recipes). Some things a torchtune
config cannot say at all: the recipes build their DataLoader without workers
or pinned memory, and attention is always SDPA. Those fields take the recipes'
real values, and a patch that would change them is reported, not written.
The shipped recipes leave ``tokenizer.max_seq_len`` null (no truncation): the
sequence length then depends on the data, so the user gives it as ``seq_len``
in the sidecar, and a patch leaves it alone. The DPO recipes (``loss: DPOLoss`` or
``RSOLoss``) read as DPO; PPO, GRPO and knowledge distillation (``teacher_model``) are
refused by name, and so are the builders of mixture-of-experts and vision models (Llama 4,
Llama 3.2 Vision) and DoRA adapters (``use_dora``).

How the recipe is launched is not in the YAML either, but every shipped config says it in
its opening comment (``tune run --nproc_per_node 2 lora_finetune_distributed``): a
distributed recipe on N processes per node over M nodes (``--nnodes M``) shards the model
with FSDP over M × N ranks, and is read so; tensor, context or replicated (hybrid) parallel
dimensions above 1 are refused by key. Patches keep the recipes' own constraints:
``optimizer_in_bwd`` allows no gradient accumulation and no compiled optimizer step, and
packing needs ``tokenizer.max_seq_len``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.base import (
    DORA,
    Edit,
    Fields,
    Reading,
    Unpatchable,
    as_bool,
    as_float,
    as_int,
    lookup,
    refuse_parallelism,
)

NAME = "torchtune"
SUFFIXES = frozenset({".yaml", ".yml"})

BUILDER_PRESETS = {
    "llama2_7b": "llama-2-7b",
    "llama2_13b": "llama-2-13b",
    "llama2_70b": "llama-2-70b",
    "llama3_8b": "llama-3-8b",
    "llama3_70b": "llama-3-70b",
    "llama3_1_8b": "llama-3.1-8b",
    "llama3_1_70b": "llama-3.1-70b",
    "llama3_1_405b": "llama-3.1-405b",
    "llama3_2_1b": "llama-3.2-1b",
    "llama3_2_3b": "llama-3.2-3b",
    "llama3_3_70b": "llama-3.3-70b",
    "qwen2_0_5b": "qwen2-0.5b",
    "qwen2_1_5b": "qwen2-1.5b",
    "qwen2_7b": "qwen2-7b",
    "qwen2_5_0_5b": "qwen2.5-0.5b",
    "qwen2_5_1_5b_base": "qwen2.5-1.5b",
    "qwen2_5_1_5b_instruct": "qwen2.5-1.5b",
    "qwen2_5_3b": "qwen2.5-3b",
    "qwen2_5_7b_base": "qwen2.5-7b",
    "qwen2_5_7b_instruct": "qwen2.5-7b",
    "qwen2_5_14b_base": "qwen2.5-14b",
    "qwen2_5_14b_instruct": "qwen2.5-14b",
    "qwen2_5_32b_base": "qwen2.5-32b",
    "qwen2_5_32b_instruct": "qwen2.5-32b",
    "qwen2_5_72b_base": "qwen2.5-72b",
    "qwen2_5_72b_instruct": "qwen2.5-72b",
    "qwen3_0_6b_base": "qwen3-0.6b",
    "qwen3_0_6b_instruct": "qwen3-0.6b",
    "qwen3_1_7b_base": "qwen3-1.7b",
    "qwen3_1_7b_instruct": "qwen3-1.7b",
    "qwen3_4b_base": "qwen3-4b",
    "qwen3_4b_instruct": "qwen3-4b",
    "qwen3_8b_base": "qwen3-8b",
    "qwen3_8b_instruct": "qwen3-8b",
    "qwen3_14b_base": "qwen3-14b",
    "qwen3_14b_instruct": "qwen3-14b",
    "qwen3_32b": "qwen3-32b",
    "mistral_7b": "mistral-7b",
    "gemma_2b": "gemma-2b",
    "gemma_7b": "gemma-7b",
    "gemma2_2b": "gemma-2-2b",
    "gemma2_9b": "gemma-2-9b",
    "gemma2_27b": "gemma-2-27b",
    "phi3_mini": "phi-3-mini",
    "phi4_14b": "phi-4",
    "smollm2_135m": "smollm2-135m",
    "smollm2_360m": "smollm2-360m",
    "smollm2_1_7b": "smollm2-1.7b",
}
"""torchtune builder names (without ``lora_``/``qlora_``) for our presets: every decoder
builder of torchtune at bd2a0fc7 (v0.6.1 + 220), ``torchtune/models/*/_model_builders.py``,
whose dims the presets were checked against."""
UNSUPPORTED_FAMILIES = {
    "llama4": "a Llama 4 mixture-of-experts model with early-fused vision (EarlyFusionModel)",
    "llama3_2_vision": "a Llama 3.2 Vision model: a vision encoder fused into the decoder "
    "through cross-attention layers (DeepFusionModel)",
}
"""``torchtune.models.<family>`` packages whose builders are not dense text decoders
(torchtune at bd2a0fc7: llama4/_model_builders.py, llama3_2_vision/_model_builders.py)."""

OPTIMIZERS = {
    "torch.optim.AdamW": "adamw_torch",
    "torch.optim.SGD": "sgd",
    "torch.optim.Adafactor": "adafactor",
    "bitsandbytes.optim.PagedAdamW": "paged_adamw_32bit",
    "bitsandbytes.optim.PagedAdamW8bit": "paged_adamw_8bit",
    "bitsandbytes.optim.AdamW8bit": "adamw_bnb_8bit",
}
_NOT_IN_CONFIG = (
    "the recipes build their DataLoader without num_workers, pin_memory or "
    "prefetch settings, so the config has no key for"
)
_DISTRIBUTED_KEYS = (
    "fsdp_cpu_offload",
    "memory_efficient_fsdp_wrap",
    "fsdp_reshard_after_forward",
    "data_parallel_shard_dim",
    "data_parallel_replicate_dim",
    "tensor_parallel_dim",
    "custom_sharded_layers",
)
_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")
_SEQ_KEYS = ("tokenizer.max_seq_len", "dataset.max_seq_len")
"""Where the sequence length is set: the tokenizer (torchtune ≥ 0.3), or the dataset builder's
``max_seq_len`` argument of torchtune ≤ 0.2 (v0.2.1 ``torchtune/datasets/_alpaca.py``)."""
_NO_MAX_SEQ_LEN = (
    "tokenizer.max_seq_len is not set (or null), so torchtune keeps every sample "
    "at its full length and the sequence length is unknown"
)


_LAUNCH = re.compile(r"^[ \t]*#.*?\btune run[ \t]+(?P<args>[^\n]*)", re.MULTILINE)
_FLAG_OPTIONS = frozenset(
    {
        "-h",
        "--help",
        "--standalone",
        "-m",
        "--module",
        "--no_python",
        "--run_path",
        "--virtual_local_rank",
    }
)
"""The torchrun options ``tune run`` passes on that take no value (torch 2.13
``torch/distributed/run.py`` ``get_args_parser``: ``store_true`` actions, dashes written as
underscores); every other option before the recipe takes one (``--nnodes 2``, ``--rdzv_id
101``), as torchtune's ``recipes/full_finetune_multinode.slurm`` writes them."""


@dataclass(frozen=True)
class Launch:
    """The ``tune run`` command a torchtune config states in its comments.

    The shipped configs open with how to launch them (``tune run --nproc_per_node 2
    lora_finetune_distributed --config llama3_1/8B_lora``): the launch is not in the
    YAML, but the file's own header says which recipe runs it on how many processes.
    """

    recipe: str
    nproc: int | None
    line: int
    command: str
    nnodes: int = 1

    @property
    def world_size(self) -> int:
        """Processes over all nodes: torchrun starts ``--nproc_per_node`` on each of
        ``--nnodes`` nodes (``tune run --nnodes 2 --nproc_per_node 8`` is 16 ranks)."""
        return (self.nproc or 1) * self.nnodes

    @property
    def distributed(self) -> bool:
        """A ``*_distributed`` recipe on more than one process shards the model with FSDP.

        At torchtune bd2a0fc7 (v0.6.1 + 220) every ``recipes/*_distributed.py`` builds
        ``training.ParallelDims`` with ``dp_shard`` inferred as the whole world and calls
        ``training.shard_model`` (``torchtune/training/_distributed.py``: FSDP2
        ``fully_shard`` per layer and root, ``reshard_after_forward`` from
        ``fsdp_reshard_after_forward``, default True); torchtune v0.2.1 wrapped the model in
        FSDP1 with ``ShardingStrategy.FULL_SHARD``. One process shards nothing.
        """
        return self.recipe.endswith("_distributed") and self.world_size > 1

    @property
    def label(self) -> str:
        """How sources and messages name it: the comment line and its command."""
        return f"the launch comment, line {self.line}: {self.command}"


def _count(value: str) -> int | None:
    """A process or node count: ``4``, or torchrun's elastic ``MIN:MAX`` when both are equal.

    A real range names no one size: it gives None, and the launch counts one node (the
    sidecar's ``world_size`` then says how many ranks really run)."""
    low, _, high = value.partition(":")
    if low.isdigit() and (not high or high == low):
        return int(low)
    return None


def launch(text: str) -> Launch | None:
    """The first ``tune run`` command in the file's comments, or None."""
    found = _LAUNCH.search(text)
    if found is None:
        return None
    tokens = found.group("args").split()
    nproc: int | None = None
    nnodes = 1
    at = 0
    while at < len(tokens) and tokens[at].startswith("-"):
        name, equals, value = tokens[at].partition("=")
        name = "--" + name.lstrip("-").replace("-", "_") if name.startswith("--") else name
        if not equals and name not in _FLAG_OPTIONS and at + 1 < len(tokens):
            at += 1
            value = tokens[at]
        if name == "--nproc_per_node":
            nproc = _count(value)
        elif name == "--nnodes":
            nnodes = _count(value) or 1
        at += 1
    if at == len(tokens):
        return None
    command = " ".join(["tune run", *tokens[: at + 1]])
    line = text.count("\n", 0, found.start("args")) + 1
    return Launch(recipe=tokens[at], nproc=nproc, line=line, command=command, nnodes=nnodes)


_TRAINING_KEYS = frozenset({"optimizer", "loss", "epochs", "max_steps_per_epoch"})
"""Keys every torchtune training recipe's config has and its generation, evaluation and
quantization configs do not (bd2a0fc7 recipes/configs: ``generation.yaml``,
``*/evaluation.yaml``, ``quantization.yaml``), which are not workloads."""


def has_components(data: Any) -> bool:
    """A ``_component_`` from the torchtune package (model, checkpointer, dataset, …)."""
    return isinstance(data, dict) and any(
        isinstance(value, dict) and str(value.get("_component_", "")).startswith("torchtune.")
        for value in data.values()
    )


def detect(data: Any) -> bool:
    """torchtune components in a config that trains (``_TRAINING_KEYS``), or in a GRPO dev
    recipe's, which nests its training keys and is refused by name."""
    return has_components(data) and (
        bool(_TRAINING_KEYS & data.keys())
        or any(c.startswith(_RL_PREFIXES) for c in _components(data))
    )


_MESH_PARALLEL = {"tensor_parallel_dim": "tensor", "context_parallel_dim": "context"}
"""Model-parallel dimensions of the distributed recipes' device mesh (torchtune bd2a0fc7
``recipes/{full,lora}_finetune_distributed.py``, ``qat_distributed.py``:
``cfg.get("tensor_parallel_dim", 1)`` and ``context_parallel_dim`` into
``training.ParallelDims``), each refused above 1 by ``refuse_parallelism``."""
_HYBRID = "data_parallel_replicate_dim"
"""The mesh's replicate dimension (same recipes): above 1, FSDP within groups of ranks and the
groups replicating each other (HSDP), so memory divides by the group, not the world; data
parallel, but sharded as pytest-goblin does not model."""

_DPO_LOSSES = ("torchtune.rlhf.loss.DPOLoss", "torchtune.rlhf.loss.RSOLoss")
"""The preference losses of the DPO recipes (v0.6.1 torchtune/rlhf/loss/dpo.py)."""


def read(data: dict[str, Any], display: str, text: str = "") -> Reading:
    """What the recipe trains; ``text`` (the file as written) gives its launch comment."""
    rl = next((c for c in _components(data) if c.startswith(_RL_PREFIXES)), None)
    if rl is not None:
        raise WorkloadError(
            display,
            f"{rl} is GRPO reinforcement learning (each prompt samples a group of "
            "completions, scored by rewards, against a reference policy); pytest-goblin "
            f"models supervised fine-tuning and DPO ({', '.join(_DPO_LOSSES)})",
            field=_component_key(data, rl),
        )
    preference = next(
        (
            f"{key}._component_"
            for key, value in data.items()
            if isinstance(value, dict) and ".rlhf." in str(value.get("_component_", ""))
        ),
        None,
    )
    loss = str(lookup(data, preference)) if preference is not None else ""
    if preference is not None and loss not in _DPO_LOSSES:
        raise WorkloadError(
            display,
            f"{loss} is an RL loss (PPO samples completions and scores them with a reward "
            "model); pytest-goblin models supervised fine-tuning and DPO "
            f"({', '.join(_DPO_LOSSES)})",
            field=preference,
        )
    teacher = lookup(data, "teacher_model._component_")
    if teacher is not None or "kd_loss" in data:
        raise WorkloadError(
            display,
            f"teacher_model {teacher or ''}: knowledge distillation (the recipe runs the "
            "teacher's forward on every batch and trains the student on its logits, "
            "recipes/knowledge_distillation_*.py); pytest-goblin models supervised "
            "fine-tuning and DPO of one model, so this recipe is not modelled",
            field="teacher_model._component_" if teacher is not None else "kd_loss",
        )
    f = Fields(display, lambda path: _resolved(data, path, display))
    _model(data, display, f)
    for key, kind in _MESH_PARALLEL.items():
        if f.get(key) is not None:
            refuse_parallelism(display, key, f.get(key), kind)
    replicas = f.get(_HYBRID)
    if replicas is not None and as_int(replicas, display, _HYBRID) > 1:
        raise WorkloadError(
            display,
            f"{_HYBRID}: {replicas} is hybrid sharding (FSDP within groups of ranks, the "
            "groups replicating each other, so memory divides by the group, not the world); "
            f"pytest-goblin models FSDP over the whole world_size: set {_HYBRID}: 1 to "
            "audit that run, or deselect this item",
            field=_HYBRID,
        )
    if f.get("batch_size") is None:
        raise WorkloadError(
            display, "batch_size is required by every torchtune recipe", field="batch_size"
        )
    f.take("batch_size", "batch_size", as_int, None)
    f.take("grad_accum_steps", "gradient_accumulation_steps", as_int, 1)
    seq_key = next((key for key in _SEQ_KEYS if f.get(key) is not None), None)
    if seq_key is None:
        f.unknown("seq_len", "tokenizer.max_seq_len", _NO_MAX_SEQ_LEN)
    else:
        f.take("seq_len", seq_key, as_int, None)
    dtype = str(f.get("dtype") or "fp32").lower()
    if dtype not in ("bf16", "fp32"):
        raise WorkloadError(
            display, f"dtype {dtype!r}: torchtune recipes train in bf16 or fp32", field="dtype"
        )
    f.put("precision", dtype, None if f.get("dtype") is None else "dtype")
    f.put("pure_precision", True)
    f.take("gradient_checkpointing", "enable_activation_checkpointing", as_bool, False)
    _memory_savers(display, f)
    _loss_kernel(data, display, f)
    f.take("lr", "optimizer.lr", as_float, 5e-5)
    f.take("warmup_steps", "lr_scheduler.num_warmup_steps", as_int, 0)
    datasets = data.get("dataset")
    if isinstance(datasets, list):
        # a list is a ConcatDataset, packed when every part is and refused when only some
        # are (bd2a0fc7 torchtune/datasets/_concat.py; recipes' _setup_data)
        packed = [
            isinstance(d, dict) and as_bool(d.get("packed", False), display, "dataset.packed")
            for d in datasets
        ]
        if any(packed) and not all(packed):
            raise WorkloadError(
                display,
                "some datasets of the list are packed and some are not; torchtune's "
                "ConcatDataset refuses the mix",
                field="dataset",
            )
        f.put("packing", bool(packed) and all(packed), "dataset")
    else:
        f.take("packing", "dataset.packed", as_bool, False)
    compile_value = f.get("compile")
    started = launch(text)
    if isinstance(compile_value, dict):
        # full_finetune_distributed and qat_distributed read compile's parts, the model
        # compiled unless model: False (bd2a0fc7 recipes/full_finetune_distributed.py
        # compile.get("model", True)); every other recipe compiles on any non-empty mapping
        by_part = started is None or started.recipe in _COMPILE_BY_PART
        on = as_bool(compile_value.get("model", True), display, "compile.model")
        f.put("torch_compile", on if by_part else bool(compile_value), "compile")
    else:
        f.take("torch_compile", "compile", as_bool, False)
    f.put(
        "optimizer",
        _optimizer(data, display),
        "optimizer.fused"
        if lookup(data, "optimizer.fused") is not None
        else "optimizer._component_",
    )
    for field, value in (
        ("attention_impl", "sdpa"),
        ("dataloader_workers", 0),
        ("dataloader_pin_memory", False),
        ("dataloader_persistent_workers", False),
        ("dataloader_prefetch_factor", None),
        # v0.7.0 recipes/full_finetune_distributed.py: a plain backward() per micro-batch
        ("training_loop", "torchtune"),
    ):
        f.put(field, value)
    present = [key for key in _DISTRIBUTED_KEYS if key in data]
    sharded = started is not None and started.distributed
    if started is not None and sharded:
        # the sidecar's world_size, when given, replaces the header's process count
        f.put("strategy", "fsdp", started.label)
        f.put("world_size", started.world_size, started.label)
    elif present:
        f.put("strategy", "fsdp", present[0])
    if sharded or present:
        # FSDP2 in the distributed recipes (v0.6.1 torchtune/training/_distributed.py
        # shard_model): CPUOffloadPolicy moves parameters, gradients and the optimizer step
        # to the host; reshard_after_forward false keeps parameters gathered (ZeRO-2-like).
        if f.get("fsdp_cpu_offload") is not None:
            offload = as_bool(f.get("fsdp_cpu_offload"), display, "fsdp_cpu_offload")
            f.put("offload_params", offload, "fsdp_cpu_offload")
        # the recipes' cfg.get("fsdp_reshard_after_forward", True): FULL_SHARD unless set
        f.take("zero_stage", "fsdp_reshard_after_forward", _zero_stage, 3)
    if preference is not None:
        # v0.6.1 recipes: lora_dpo_* disable the adapter for the reference forward,
        # full_dpo_distributed loads a reference copy (ref_checkpointer); both run
        # chosen and rejected in one concatenated_forward.
        f.put("objective", "dpo", preference)
        f.put("reference", "model" if f.fields["finetune"] == "full" else "adapter")
    return f.reading()


def _memory_savers(display: str, f: Fields) -> None:
    """Activation offloading and the optimizer step in the backward, refused where the
    recipes refuse them (torchtune v0.6.1 ``recipes/*.py`` ``__init__``, RuntimeError).

    ``enable_activation_offloading`` needs ``enable_activation_checkpointing`` in every recipe
    that reads it ("should only be True when enable_activation_checkpointing is True").
    ``optimizer_in_bwd`` is read only by the full fine-tuning recipes
    (``full_finetune_*``, ``qat_*``, ``full_dpo_distributed``; the LoRA ones ignore it), which
    refuse it beside gradient accumulation or ``clip_grad_norm``: each parameter's optimizer
    steps and clears its gradient from a post-accumulate-grad hook
    (``torchtune/training/memory.py`` ``register_optim_in_bwd_hooks``).
    """
    f.take("activation_offloading", "enable_activation_offloading", as_bool, False)
    if f.fields["activation_offloading"] and not f.fields["gradient_checkpointing"]:
        raise WorkloadError(
            display,
            "enable_activation_offloading: True without enable_activation_checkpointing: "
            "True; the recipes raise 'enable_activation_offloading should only be True when "
            "enable_activation_checkpointing is True'",
            field="enable_activation_offloading",
        )
    if f.fields["finetune"] != "full":
        return
    f.take("optimizer_in_backward", "optimizer_in_bwd", as_bool, False)
    if not f.fields["optimizer_in_backward"]:
        return
    if f.fields["grad_accum_steps"] > 1:
        raise WorkloadError(
            display,
            f"gradient_accumulation_steps: {f.fields['grad_accum_steps']} beside "
            "optimizer_in_bwd: True; the recipes raise 'Gradient accumulation is not "
            "supported with optimizer_in_bwd'",
            field="gradient_accumulation_steps",
        )
    if f.get("clip_grad_norm") is not None:
        raise WorkloadError(
            display,
            "clip_grad_norm beside optimizer_in_bwd: True; the recipes raise 'Gradient "
            "clipping is not supported with optimizer_in_bwd'",
            field="clip_grad_norm",
        )


_CHUNKED_LOSSES = {
    "LinearCrossEntropyLoss": "chunked_cross_entropy",
    "CEWithChunkedOutputLoss": "chunked_output_cross_entropy",
}
"""torchtune's SFT losses that never hold the fp32 logits of the whole micro-batch, and the
``extras`` entry that records their ``num_output_chunks`` (default 8 in both) for the
analytic model and the advisories (bd2a0fc7 ``torchtune/modules/loss/``:
``cross_entropy_loss.py`` ``LinearCrossEntropyLoss`` projects and upcasts one chunk of
tokens at a time, the model skipping its output layer; ``ce_chunked_output_loss.py``
``CEWithChunkedOutputLoss``, deprecated for it, upcasts one chunk of the model's 16-bit
logit chunks at a time). ``torch.nn.CrossEntropyLoss`` gets the model's full fp32 logits
(``torchtune/modules/transformer.py`` ``unembed``: ``self.output(h).float()``)."""


def _loss_kernel(data: dict[str, Any], display: str, f: Fields) -> None:
    """Record a chunked loss (``_CHUNKED_LOSSES``) under ``extras`` with its chunk count."""
    component = str(lookup(data, "loss._component_") or "")
    if not component.startswith("torchtune.modules.loss."):
        return
    name = _CHUNKED_LOSSES.get(component.rsplit(".", 1)[-1])
    if name is None:
        return
    chunks = f.get("loss.num_output_chunks")
    count = 8 if chunks is None else as_int(chunks, display, f.label("loss.num_output_chunks"))
    if count < 1:
        raise WorkloadError(
            display,
            f"loss.num_output_chunks: {count}; the loss splits the tokens into that many "
            "chunks, so it must be at least 1",
            field="loss.num_output_chunks",
        )
    f.record(name, count, "loss._component_")


_COMPILE_BY_PART = frozenset({"full_finetune_distributed", "qat_distributed"})
"""The recipes that read ``compile`` as a mapping of parts (model, loss, optimizer_step,
scale_grads) at torchtune bd2a0fc7; the rest test it for truth (``self._compile =
cfg.compile``)."""

_RL_PREFIXES = ("torchtune.dev.grpo.loss.", "torchtune.dev.rl.")
"""Losses and rewards of the GRPO dev recipes (bd2a0fc7 recipes/dev/*grpo*_distributed.py)."""


def _components(data: Any) -> list[str]:
    """Every ``_component_`` in the config, nested ones included, in file order."""
    if isinstance(data, dict):
        own = [str(data["_component_"])] if "_component_" in data else []
        return own + [
            c for key, value in data.items() if key != "_component_" for c in _components(value)
        ]
    if isinstance(data, list):
        return [c for value in data for c in _components(value)]
    return []


def _component_key(data: Any, component: str, prefix: str = "") -> str | None:
    """The dotted key whose ``_component_`` is ``component`` (list items by index)."""
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        path = f"{prefix}{key}"
        if key == "_component_" and str(value) == component:
            return path
        found = _component_key(value, component, f"{path}.")
        if found is not None:
            return found
    return None


def _zero_stage(value: Any, display: str, key: str) -> int:
    """``fsdp_reshard_after_forward``: True frees gathered parameters after the forward
    (ZeRO-3, FULL_SHARD), False keeps them until the backward (ZeRO-2, SHARD_GRAD_OP)."""
    return 3 if as_bool(value, display, key) else 2


def _resolved(data: dict[str, Any], path: str, display: str) -> Any:
    """The value at a dotted path, with ``${key}`` interpolations of other keys followed."""
    try:
        return _follow(data, path)[1]
    except ValueError as exc:
        raise WorkloadError(display, str(exc), field=path) from None


def _follow(data: dict[str, Any], path: str) -> tuple[str, Any]:
    """The key a value really lives at, and the value: ``batch_size: ${micro}`` is ``micro``."""
    seen = {path}
    value = lookup(data, path)
    while isinstance(value, str) and (match := _INTERPOLATION.match(value.strip())):
        target = match.group(1)
        if target in seen:
            raise ValueError(f"interpolation loop at ${{{target}}}")
        seen.add(target)
        path, value = target, lookup(data, target)
    return path, value


def _model(data: dict[str, Any], display: str, f: Fields) -> None:
    component = str(lookup(data, "model._component_") or "")
    if not component:
        raise WorkloadError(
            display, "no model._component_ (the model builder)", field="model._component_"
        )
    family = component.removeprefix("torchtune.models.").split(".", 1)[0]
    if component.startswith("torchtune.models.") and family in UNSUPPORTED_FAMILIES:
        raise WorkloadError(
            display,
            f"{component} builds {UNSUPPORTED_FAMILIES[family]}; pytest-goblin models "
            "Llama-style decoders (RMSNorm, rotary attention, a gated MLP), so this "
            "architecture is not supported",
            field="model._component_",
        )
    builder = component.rsplit(".", 1)[-1]
    method = "full"
    for prefix, name in (("qlora_", "qlora"), ("lora_", "lora")):
        if builder.startswith(prefix):
            builder, method = builder.removeprefix(prefix), name
    if lookup(data, "model.quantize_base") is True:
        method = "qlora"
    if method != "full" and lookup(data, "model.use_dora") is True:
        # bd2a0fc7 torchtune/models/*/_component_builders.py: use_dora builds DoRALinear
        raise WorkloadError(display, f"model.use_dora: True: {DORA}", field="model.use_dora")
    checkpoint_dir = str(lookup(data, "checkpointer.checkpoint_dir") or "").rstrip("/")
    if checkpoint_dir:
        f.put("model_name", checkpoint_dir.rsplit("/", 1)[-1], "checkpointer.checkpoint_dir")
    else:
        f.put("model_name", builder, "model._component_")
    if builder in BUILDER_PRESETS:
        f.put("model", BUILDER_PRESETS[builder], "model._component_")
    f.put("finetune", method, "model._component_")
    if method == "full":
        return
    f.take("lora_rank", "model.lora_rank", as_int, 8)
    f.take("lora_alpha", "model.lora_alpha", as_int, 16)
    attention = lookup(data, "model.lora_attn_modules") or []
    targets = ["o_proj" if name == "output_proj" else str(name) for name in attention]
    if lookup(data, "model.apply_lora_to_mlp") is True:
        targets += ["gate_proj", "up_proj", "down_proj"]
    if targets:
        f.put("lora_targets", targets, "model.lora_attn_modules")


def _optimizer(data: dict[str, Any], display: str) -> str:
    component = str(lookup(data, "optimizer._component_") or "")
    if not component:
        raise WorkloadError(display, "no optimizer._component_", field="optimizer._component_")
    name = OPTIMIZERS.get(component, component)
    fused = lookup(data, "optimizer.fused")
    if name == "adamw_torch" and fused is not None and as_bool(fused, display, "optimizer.fused"):
        return "adamw_torch_fused"
    return name


def edits(data: dict[str, Any], field: str, value: Any) -> list[Edit]:
    """The keys that give ``field`` the value ``value``, in torchtune's vocabulary."""
    simple = {
        "batch_size": ("batch_size",),
        "grad_accum_steps": ("gradient_accumulation_steps",),
        "lr": ("optimizer", "lr"),
        "lora_rank": ("model", "lora_rank"),
        "lora_alpha": ("model", "lora_alpha"),
    }
    if field == "seq_len":
        key = next((k for k in _SEQ_KEYS if _follow(data, k)[1] is not None), None)
        if key is None:
            raise Unpatchable(
                field,
                "tokenizer.max_seq_len is unset, so the sequence length is the "
                "data's, given in the sidecar; a patch does not change it",
            )
        return [Edit(tuple(_follow(data, key)[0].split(".")), value, ("batch_size",))]
    in_backward = _follow(data, "optimizer_in_bwd")[1] is True
    if field == "grad_accum_steps" and in_backward and value > 1:
        # bd2a0fc7 recipes/full_finetune_{single_device,distributed}.py, qat_*.py: "Gradient
        # accumulation is not supported with optimizer_in_bwd: True" (RuntimeError)
        raise Unpatchable(
            field,
            "optimizer_in_bwd: True steps the optimizer inside the backward, and the recipes "
            "refuse gradient_accumulation_steps above 1 with it",
        )
    if field in simple:
        path = tuple(_follow(data, ".".join(simple[field]))[0].split("."))
        return [Edit(path, value, ("batch_size",))]
    if field == "precision":
        if value not in ("bf16", "fp32"):
            raise Unpatchable(field, f"torchtune recipes train in bf16 or fp32, not {value}")
        return [Edit(("dtype",), value, ("device",))]
    if field == "gradient_checkpointing":
        found = [Edit(("enable_activation_checkpointing",), value, ("dtype",))]
        if not value and lookup(data, "enable_activation_offloading"):
            found.append(Edit(("enable_activation_offloading",), False))
        return found
    if field == "packing":
        if not isinstance(data.get("dataset"), dict):
            raise Unpatchable(field, "dataset is not one mapping; set packed on each dataset")
        if value and all(_follow(data, key)[1] is None for key in _SEQ_KEYS):
            # bd2a0fc7 torchtune/datasets/_alpaca.py, _chat.py, _instruct.py: "PackedDataset
            # requires a max_seq_len to be set on the tokenizer"
            raise Unpatchable(
                field,
                "torchtune packs to tokenizer.max_seq_len, which this file leaves unset "
                "(the dataset builders raise 'PackedDataset requires a max_seq_len'); "
                "setting it would also truncate the data, so choose it by hand",
            )
        return [Edit(("dataset", "packed"), value)]
    if field == "torch_compile":
        if isinstance(data.get("compile"), dict):
            raise Unpatchable(field, "compile is a per-part mapping; choose its parts by hand")
        if value and in_backward:
            # full_finetune_distributed and qat_distributed compile the optimizer step on
            # compile: True and refuse that with optimizer_in_bwd ("optimizer_in_bwd not
            # supported with compiling the optimizer step", bd2a0fc7); the mapping leaves the
            # step alone there, and any other recipe compiles the model on a non-empty mapping
            parts = {"model": True, "loss": True, "optimizer_step": False}
            return [Edit(("compile",), parts, ("loss", "optimizer_in_bwd"))]
        return [Edit(("compile",), value, ("loss", "optimizer_in_bwd"))]
    if field == "optimizer":
        if value not in ("adamw_torch", "adamw_torch_fused") or (
            lookup(data, "optimizer._component_") != "torch.optim.AdamW"
        ):
            raise Unpatchable(
                field, f"only torch.optim.AdamW's fused flag is patched, not a switch to {value}"
            )
        return [Edit(("optimizer", "fused"), value == "adamw_torch_fused")]
    if field == "finetune":
        return _finetune_edits(data, value)
    if field.startswith("dataloader_"):
        raise Unpatchable(field, f"{_NOT_IN_CONFIG} {field}")
    if field == "attention_impl":
        raise Unpatchable(field, "torchtune always uses SDPA; the config has no attention key")
    raise Unpatchable(field, f"torchtune configs have no key for {field}")


def _finetune_edits(data: dict[str, Any], finetune: str) -> list[Edit]:
    """QLoRA to LoRA: the ``lora_`` builder of the same model. Every ``qlora_`` builder is
    ``partial(lora_<model>, quantize_base=True)`` (bd2a0fc7 ``torchtune/models/*/
    _model_builders.py``), so the swap keeps every other argument; a ``quantize_base: True``
    written out is turned off too."""
    component = str(lookup(data, "model._component_") or "")
    module, _, builder = component.rpartition(".")
    if finetune != "lora" or not (
        builder.startswith("qlora_") or lookup(data, "model.quantize_base") is True
    ):
        raise Unpatchable(
            "finetune",
            f"a torchtune patch only swaps a qlora_ builder for its lora_ one, not to {finetune}",
        )
    found = []
    if builder.startswith("qlora_"):
        lora = f"{module}.{builder.removeprefix('q')}"
        found.append(Edit(("model", "_component_"), lora))
    if lookup(data, "model.quantize_base") is not None:
        found.append(Edit(("model", "quantize_base"), False))
    return found
