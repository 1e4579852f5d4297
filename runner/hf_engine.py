"""The ``hf`` engine: one measured run through transformers, PEFT and the Hugging Face Trainer.

Users fine-tune with transformers + PEFT under the HF Trainer (directly, or through
TRL, axolotl and LLaMA-Factory, which run it underneath); a speedup measured on
another model implementation may not be theirs. This engine builds the workload's
architecture from a transformers config of its family (Llama, Qwen2, Qwen3, Mistral,
Gemma, Gemma2, Phi3 (Phi-4 too); the generic dims as Llama) with random weights — no download, no
tokenizer — applies LoRA with ``peft.get_peft_model`` (QLoRA: over the same weights saved
and loaded back 4-bit through bitsandbytes, as users load a checkpoint), and trains with
``transformers.Trainer`` built from ``TrainingArguments`` derived from the workload.
A ``TrainerCallback`` marks optimizer-step boundaries (CUDA events on a GPU, so no
host sync inside a window); warmup (until step time settles) and the steps that drain
the DataLoader's prefetch backlog run first and are not timed, decided by the native
engine's own rules (``runner/training.py``), so both return the same ``Measurement``
and the verdict statistics read both alike. A workload with
``world_size`` above one runs this Trainer in each of its ranks, launched as the native
engine's are (``runner/hf_ranks.py``).

Argument names and optimizer strings are those of the installed transformers (checked
against transformers 5.25.0 ``src/transformers/training_args.py``: ``gradient_checkpointing``
became a deprecated alias of ``activation_checkpointing``; ``OptimizerNames`` has no
``adamw_hf`` any more).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import tempfile
import time
from typing import Any, cast

import torch
import transformers
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from torch.utils.data import Dataset
from transformers import (
    AutoModelForCausalLM,
    BitsAndBytesConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen3Config,
    StableLmConfig,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
from transformers.training_args import OptimizerNames

from pytest_goblin.errors import UnsupportedConfig
from pytest_goblin.runner import bitsandbytes_build, training
from pytest_goblin.runner.data import SyntheticTokens
from pytest_goblin.runner.hf_ranks import ComputeOnly, HFRanks, compute_only_steps, launch
from pytest_goblin.runner.hf_ranks import unsupported_reason as ranks_reason
from pytest_goblin.runner.measurement import Measurement
from pytest_goblin.runner.model import PEFT_DEFAULT_ALPHA
from pytest_goblin.runner.optimizers import canonical
from pytest_goblin.runner.training import (
    HALF_DTYPES,
    Diverged,
    RunRequest,
    StepHook,
    window_sizes,
)
from pytest_goblin.schemas import WorkloadConfig

FAMILIES: dict[str, type[PretrainedConfig]] = {
    "llama": LlamaConfig,
    "qwen2": Qwen2Config,
    "qwen3": Qwen3Config,
    "mistral": MistralConfig,
    "gemma": GemmaConfig,
    "gemma2": Gemma2Config,
    "gemma3": Gemma3TextConfig,
    "phi3": Phi3Config,
    "stablelm": StableLmConfig,
}
"""The transformers config class of each preset family."""

_FAMILY_PATTERNS = (
    # gemma-2-9b and gemma2_2b are Gemma 2; gemma-2b and gemma-7b are Gemma 1
    ("gemma2", re.compile(r"gemma-?2(?:[-_]|$)")),
    # gemma-3-1b is Gemma3ForCausalLM, whose config is Gemma3TextConfig (transformers 5.25
    # models/gemma3; Gemma3Config wraps it with a vision encoder for 4B and up)
    ("gemma3", re.compile(r"gemma-?3(?:[-_]|$)")),
    ("gemma", re.compile(r"gemma")),
    # microsoft/phi-4's config.json names Phi3ForCausalLM (model_type phi3)
    ("phi3", re.compile(r"phi-?[34]")),
    # Qwen3 has no q/k/v biases and normalises q and k per head (models/qwen3)
    ("qwen3", re.compile(r"qwen-?3")),
    ("qwen2", re.compile(r"qwen")),
    # Ministral-8B's checkpoint names MistralForCausalLM (its interleaved sliding windows
    # aside, as the analytic model counts full attention)
    ("mistral", re.compile(r"mi(?:ni)?stral")),
    # StableLM 2: LayerNorm with biases, q/k/v biases, rotary on a quarter of each head
    # (transformers 5.25 models/stablelm; partial_rotary_factor defaults to 0.25)
    ("stablelm", re.compile(r"stablelm")),
    ("llama", re.compile(r"llama")),
)

ATTENTION = {"eager": "eager", "sdpa": "sdpa", "flash": "flash_attention_2"}
"""Workload attention → transformers ``attn_implementation``."""

PHI3_FUSED = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
}
"""Phi-3 fuses q/k/v and gate/up into one linear each (transformers
``models/phi3/modeling_phi3.py``): a LoRA target names the fused module there."""

BITSANDBYTES_OPTIMIZERS = ("bnb", "8bit", "paged", "lion", "ademamix", "rmsprop_bnb")

CPU_4BIT_SINCE = (0, 50, 2)
"""The bitsandbytes release whose CPU backend is known here to train a 4-bit (nf4/fp4) base:
in 0.50.2, ``bitsandbytes::quantize_4bit`` has a pure-torch kernel
(``bitsandbytes/backends/default/ops.py``, registered for every device),
``dequantize_4bit`` a CPU one (``bitsandbytes/backends/cpu/ops.py``; the default's torch
code where the native library is not loaded or the shape is odd), and ``Linear4bit``'s backward
(``bitsandbytes/autograd/_functions.py``, ``MatMul4Bit``) dequantizes and multiplies in
torch. Older releases are treated as GPU-only rather than assumed."""


def family(config: WorkloadConfig) -> str:
    """The transformers family that builds this workload's model.

    From the architecture's preset name, else the model id; dims that name no
    family are built as Llama (Qwen2 when they have q/k/v biases, Qwen2's layout).
    """
    arch = config.arch
    for text in (arch.name, config.model_name):
        key = text.lower()
        for name, pattern in _FAMILY_PATTERNS:
            if pattern.search(key):
                return name
    return "qwen2" if arch.qkv_bias else "llama"


def model_config(config: WorkloadConfig, layers: int | None = None) -> PretrainedConfig:
    """The transformers config of the workload's architecture (``layers`` overrides depth)."""
    arch = config.arch
    name = family(config)
    fields: dict[str, Any] = {
        "vocab_size": arch.vocab,
        "hidden_size": arch.hidden,
        "intermediate_size": arch.intermediate,
        "num_hidden_layers": layers or arch.layers,
        "num_attention_heads": arch.heads,
        "num_key_value_heads": arch.n_kv_heads,
        "max_position_embeddings": max(config.seq_len, 2048),
        "tie_word_embeddings": arch.tied_embeddings,
        "use_cache": False,  # training: a KV cache is never read
        # token ids inside any vocabulary (Phi-3's defaults point past a small one)
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    # always given: a family's default is not always hidden / heads (transformers 5.25
    # models/gemma2/configuration_gemma2.py defaults head_dim to 256 whatever the width)
    fields["head_dim"] = arch.dim_per_head
    if name in ("gemma2", "gemma3"):
        # Gemma 2 and 3 scale queries by query_pre_attn_scalar ** -0.5; their checkpoints use
        # head_dim (gemma-3-1b: 256). Gemma 3 keeps its sliding-window pattern (5 local layers
        # of 512 tokens per global one, Gemma3TextConfig's defaults = gemma-3-1b's config).
        fields["query_pre_attn_scalar"] = arch.dim_per_head
    if name == "stablelm":
        fields["use_qkv_bias"] = arch.qkv_bias
    if name == "llama" and arch.qkv_bias:
        raise UnsupportedConfig(
            "q/k/v biases without o_proj bias have no Llama layout in transformers; "
            "name a Qwen2 model (model_name) for the hf engine"
        )
    if name in ("mistral", "qwen2", "qwen3"):
        fields["sliding_window"] = None  # full attention, as the analytic model counts it
    return FAMILIES[name](**fields)


def _dtype(config: WorkloadConfig) -> torch.dtype:
    """Parameter dtype: 16-bit frozen weights for LoRA and QLoRA at fp16/bf16 (as PEFT users
    load them; QLoRA's 4-bit matmuls compute in it too), fp32 master weights for full
    fine-tuning (the Trainer's mixed precision)."""
    half = HALF_DTYPES.get(config.precision)
    adapters = config.finetune in ("lora", "qlora")
    return half if half is not None and adapters else torch.float32


def build_model(
    config: WorkloadConfig, device: torch.device, layers: int | None = None, seed: int = 0
) -> PreTrainedModel:
    """The workload's model with random weights, LoRA applied with PEFT when asked for;
    for QLoRA, over a 4-bit base (``quantized``)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        model_config(config, layers),
        attn_implementation=ATTENTION[config.attention_impl],
        dtype=_dtype(config),
    )
    if config.finetune == "qlora":
        model = quantized(model, config, device)
    if config.finetune in ("lora", "qlora"):
        targets = lora_targets(config)
        lora = LoraConfig(
            r=config.lora_rank or 8,
            lora_alpha=config.lora_alpha or PEFT_DEFAULT_ALPHA,
            target_modules=targets,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    # from_pretrained placed the 4-bit model (device_map); its weights do not move
    return model if config.finetune == "qlora" else model.to(device)


def quantized(
    model: PreTrainedModel, config: WorkloadConfig, device: torch.device
) -> PreTrainedModel:
    """``model``'s weights as users' QLoRA loads them: saved (safetensors) and loaded back
    by ``from_pretrained`` with a ``BitsAndBytesConfig`` (transformers quantizes each
    decoder linear into bitsandbytes' ``Linear4bit`` while loading; ``lm_head`` stays in
    ``dtype``), then ``peft.prepare_model_for_kbit_training``, which freezes the base,
    casts its 16-bit non-4-bit parameters to fp32 and enables checkpointing as asked.

    The quant type and double quantization are the workload's ``extras``
    (``bnb_4bit_quant_type``, ``bnb_4bit_use_double_quant``) where it records them, else
    the QLoRA recipe's nf4 and BitsAndBytesConfig's own default (no double quantization).
    """
    dtype = _dtype(config)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=str(config.extras.get("bnb_4bit_quant_type", "nf4")),
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=bool(config.extras.get("bnb_4bit_use_double_quant", False)),
    )
    with tempfile.TemporaryDirectory(prefix="goblin-hf-base-") as directory:
        model.save_pretrained(directory, safe_serialization=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            directory,
            quantization_config=quantization,
            attn_implementation=ATTENTION[config.attention_impl],
            dtype=dtype,
            device_map={"": device},
        )
    given = config.extras.get("gradient_checkpointing_kwargs")
    return cast(
        PreTrainedModel,
        prepare_model_for_kbit_training(
            loaded,
            use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs=given if isinstance(given, dict) else None,
        ),
    )


def lora_targets(config: WorkloadConfig) -> list[str] | str:
    """The workload's LoRA targets as this family names its linears."""
    if "all-linear" in config.lora_targets:
        return "all-linear"
    if family(config) != "phi3":
        return list(config.lora_targets)
    return sorted({PHI3_FUSED.get(t, t) for t in config.lora_targets})


def unsupported_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Why this engine cannot run ``config`` on ``device``, or None when it can."""
    if config.precision == "fp8":
        return "fp8 training needs Float8 linears (torchao or Transformer Engine)"
    if config.world_size > 1 and (reason := ranks_reason(config, device)):
        return reason
    if config.finetune == "lora8":
        return training.INT8_BASE_REASON
    if config.finetune == "qlora" and (reason := _qlora_reason(device)):
        return reason
    if config.precision == "fp16" and device.type == "cpu":
        # accelerate 1.16 src/accelerate/accelerator.py (Accelerator.__init__) turns on fp16
        # autocast only off the CPU: the Trainer would train, and this would time, fp32
        return "the Hugging Face Trainer runs fp16 on the CPU in fp32 (use bf16 on the CPU)"
    optim = canonical(config.optimizer)
    names = {o.value for o in OptimizerNames}
    if optim not in names:
        return f"optimizer {config.optimizer!r} is not an optim the installed transformers accepts"
    if any(tag in optim for tag in BITSANDBYTES_OPTIMIZERS):
        if importlib.util.find_spec("bitsandbytes") is None:
            return f"optimizer {config.optimizer!r} needs bitsandbytes, which is not installed"
        if reason := bitsandbytes_build.installed_reason():
            return reason
    if config.attention_impl == "flash":
        if device.type == "cpu":
            return (
                "flash attention needs a ROCm or CUDA GPU; the CPU has no flash-attention kernels"
            )
        if importlib.util.find_spec("flash_attn") is None:
            return (
                "attn_implementation flash_attention_2 needs the flash-attn package, not installed"
            )
    if config.model is not None:
        try:
            hf_config = model_config(config)
        except UnsupportedConfig as exc:
            return str(exc)
        # the lazy auto-mapping returns the model class (transformers annotates it otherwise)
        model_class = cast(type, MODEL_FOR_CAUSAL_LM_MAPPING[type(hf_config)])
        flag = {"sdpa": "_supports_sdpa", "flash": "_supports_flash_attn"}.get(
            config.attention_impl, ""
        )
        if flag and not getattr(model_class, flag, False):
            return (
                f"{model_class.__name__} in transformers {transformers.__version__} has no "
                f"{ATTENTION[config.attention_impl]} attention (use eager)"
            )
    return None


def _qlora_reason(device: torch.device) -> str | None:
    """Why QLoRA's 4-bit base cannot be built on ``device``: bitsandbytes missing, a build
    without this torch's GPU library, or on the CPU a release before ``CPU_4BIT_SINCE``."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs bitsandbytes for its 4-bit base weights, which is not installed"
    if reason := bitsandbytes_build.installed_reason():
        return reason
    if device.type == "cpu":
        installed = _installed_version("bitsandbytes")
        numbers = tuple(int(n) for n in re.findall(r"\d+", installed)[:3])
        if numbers < CPU_4BIT_SINCE:
            since = ".".join(map(str, CPU_4BIT_SINCE))
            return (
                f"QLoRA's 4-bit base on the CPU needs bitsandbytes {since} or later (its CPU "
                f"backend's 4-bit kernels); bitsandbytes {installed} is measured on a ROCm or "
                "CUDA GPU only"
            )
    return None


class _Tokens(Dataset[dict[str, torch.Tensor]]):
    """The native engine's synthetic samples as the Trainer's collator expects them.

    Every sample fills ``seq_len``, packed or not: a workload says whether it packs, not
    how long its examples are, and the native engine and the analytic model both assume
    full samples (``runner/data.py``, ``runner/analytic.py``). Inventing a length
    distribution for ``packing: false`` would change what the attention runs, not only
    how many tokens are real: with any padding token in the batch, transformers cannot
    drop the mask and call SDPA with ``is_causal`` (transformers 5.25
    ``src/transformers/masking_utils.py``, ``_ignore_causal_mask_sdpa``), so SDPA gets
    an explicit (B, 1, T, T) mask and computes the whole score matrix, and an
    eager -> sdpa patch wins less with this engine than with the native one.
    """

    def __init__(self, config: WorkloadConfig, length: int, sample_cost_s: float, seed: int):
        # seq_len tokens per sample: HF causal LMs shift the labels themselves
        self.tokens = SyntheticTokens(
            config.arch.vocab, config.seq_len - 1, length, sample_cost_s, seed
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.tokens[index]
        # the collator stacks each key into a batch of its own, so labels may share ids
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


class _LossRecordingTrainer(Trainer):
    """The Trainer, keeping each micro-batch's loss on the device (no sync per step); in a
    multi-rank run, skipping gradient synchronisation in the steps ``compute_only`` marks."""

    def __init__(self, *args: Any, compute_only: ComputeOnly | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.micro_losses: list[torch.Tensor] = []
        self.compute_only = compute_only

    def training_step(self, model: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.compute_only is not None and self.compute_only.active:
            # the whole step, last micro-batch included (the Trainer syncs that one)
            with self.accelerator.no_sync(model):
                loss = super().training_step(model, *args, **kwargs)
        else:
            loss = super().training_step(model, *args, **kwargs)
        self.micro_losses.append(loss.detach())
        return loss


class StepTimer(TrainerCallback):
    """Decides, as each optimizer step ends, what the run is doing, and marks the windows.

    The Trainer's ``max_steps`` is fixed up front (the most steps the run may need), so the
    phases are decided here, with the native engine's rules (``runner/training.py``):
    warmup until ``training.Warmup`` says step time has settled and no fp16 step is being
    skipped; then the untimed drain steps that consume the DataLoader's prefetch backlog
    (at least one, so that the device queue, emptied by the sync that ends warmup, is full
    again when window 0 opens); then the timed windows, after which the Trainer is stopped
    (``control.should_training_stop``), or, on ranks, the compute-only steps begin
    (``then``). Each warmup step is timed with a sync, as the native engine times them.

    A mark is a CUDA event on a GPU (recorded on the stream, read once the run is over)
    and ``perf_counter`` on the CPU; the steps a window spans include the Trainer's own
    work between them (data, clipping, the scheduler, callbacks), which is what users'
    steps cost. At each window mark the device-level memory and the telemetry are read,
    as in the native engine; GradScaler's loss scale (accelerate's, ``scaler``) is kept
    after every step to count the steps it skipped.
    """

    def __init__(
        self,
        request: RunRequest,
        device: torch.device,
        memory: training._PeakMemory,
        hook: StepHook | None,
        ranks: HFRanks | None = None,
        then: ComputeOnly | None = None,
    ) -> None:
        self.device = device
        self.clock = training._Clock(device)
        self.warmup = training.Warmup(request.warmup, device)
        self.agree = ranks.agree if ranks is not None else None
        self.backlog, self.drain_steps = training.prefetch_backlog(request.config)
        self.sizes = window_sizes(request.steps)
        self.memory = memory
        self.hook = hook
        self.then = then
        self.scaler: torch.amp.GradScaler | None = None  # set once the Trainer exists
        self.scales: list[torch.Tensor] = []  # the loss scale after each step, on the device
        self.timed_from = 0  # scales recorded before the first timed step
        self.readings: list[dict[str, float]] = []  # telemetry at each window mark
        self.marks: list[int] = []  # global steps after which window 0 opens, then each ends
        self.end: int | None = None  # the global step that ended the last window
        self.started = 0.0  # perf_counter when training began
        self.last = 0.0  # perf_counter at the end of the previous warmup step
        self.warmup_s = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = self.last = time.perf_counter()
        if self.warmup.done():  # an explicit warmup of 0
            self._end_warmup(state.global_step)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.hook:
            self.hook(state.global_step, kwargs["model"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        done = state.global_step
        if self.end is not None:
            return  # the compute-only steps of a rank (``then``)
        scale = training.loss_scale(self.scaler)
        if scale is not None:
            self.scales.append(scale)
        if not self.marks:
            self.clock.sync()
            now = time.perf_counter()
            skipping = training.skipped_steps(self.scales, len(self.scales) - 1) > 0
            self.warmup.record(now - self.last, skipping, self.agree)
            self.last = now
            if self.warmup.done():
                self._end_warmup(done)
            return
        if done == self.marks[0]:  # drained: window 0 opens
            self.timed_from = len(self.scales)
            self.memory.sample()
            self.readings.append(training.telemetry(self.device))
            self.clock.mark()
        elif done in self.marks:
            self.clock.mark()
            self.memory.sample()
            self.readings.append(training.telemetry(self.device))
            if done == self.marks[-1]:
                self.end = done
                if self.then is None:
                    control.should_training_stop = True
                else:
                    self.then.start = done

    def _end_warmup(self, done: int) -> None:
        """Warmup is over after global step ``done``: the drain steps, then the windows."""
        self.clock.sync()
        self.warmup_s = time.perf_counter() - self.started
        opens = done + self.drain_steps
        self.marks = [opens + sum(self.sizes[: i + 1]) for i in range(-1, len(self.sizes))]

    def skipped(self) -> int:
        """Timed optimizer steps GradScaler skipped."""
        return training.skipped_steps(self.scales, self.timed_from) if self.end is not None else 0

    def notes(self, steps: int, config: WorkloadConfig) -> list[str]:
        """What warmup did not settle, skipped timed steps, a timed phase short beside the
        backlog: the native engine's warnings."""
        return self.warmup.notes() + training.timed_phase_notes(
            config, steps, self.backlog, self.skipped()
        )


def _scaler(trainer: Trainer) -> torch.amp.GradScaler | None:
    """The fp16 GradScaler the Trainer steps with: accelerate's (1.16.0 accelerator.py builds
    ``torch.amp.GradScaler`` with its defaults, initial scale 2**16, for fp16 off the CPU);
    None under bf16/fp32."""
    return cast("torch.amp.GradScaler | None", trainer.accelerator.scaler)


def _has_field(name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(TrainingArguments))


def training_arguments(
    config: WorkloadConfig,
    request: RunRequest,
    device: torch.device,
    output_dir: str,
    ranks: HFRanks | None = None,
) -> TrainingArguments:
    """``TrainingArguments`` of the workload: its batch, precision, optimizer, checkpointing,
    data loader and compile settings, ``max_steps`` of the most steps the run may need
    (``max_steps``), the strategy's keys on ``ranks``, and nothing saved, logged or
    reported to a service."""
    checkpointing = (
        "activation_checkpointing"
        if _has_field("activation_checkpointing")
        else "gradient_checkpointing"
    )
    options: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum_steps,
        "max_steps": max_steps(request, device, ranks),
        "learning_rate": config.lr,
        "warmup_steps": config.warmup_steps,
        "optim": canonical(config.optimizer),
        "bf16": config.precision == "bf16",
        "fp16": config.precision == "fp16",
        "tf32": True if config.precision == "tf32" and device.type == "cuda" else None,
        checkpointing: config.gradient_checkpointing,
        "dataloader_num_workers": config.dataloader_workers,
        "dataloader_pin_memory": config.dataloader_pin_memory,
        "dataloader_drop_last": True,
        "torch_compile": config.torch_compile,
        "seed": request.seed,
        "data_seed": request.seed,
        "use_cpu": device.type == "cpu",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "remove_unused_columns": False,
    }
    if config.dataloader_workers > 0:
        options["dataloader_persistent_workers"] = config.dataloader_persistent_workers
        if config.dataloader_prefetch_factor is not None:
            options["dataloader_prefetch_factor"] = config.dataloader_prefetch_factor
    given = config.extras.get("gradient_checkpointing_kwargs")
    if config.gradient_checkpointing and isinstance(given, dict):
        # the job's own kwargs; else transformers' default (5.25 modeling_utils.py:
        # activation_checkpointing_enable uses {"use_reentrant": False})
        options[f"{checkpointing}_kwargs"] = given
    if config.torch_compile:
        # the workload's mode and backend (extras), as the native engine compiles with them
        options |= {f"torch_compile_{k}": v for k, v in training.compile_options(config).items()}
    if ranks is not None:
        options |= ranks.arguments(config)
    return TrainingArguments(**options)


def max_steps(request: RunRequest, device: torch.device, ranks: HFRanks | None = None) -> int:
    """The most optimizer steps the run may take, the Trainer's ``max_steps``: the warmup
    asked for and the most it may be extended by while it settles, the drain steps, the
    timed steps, and on ranks the untimed and timed compute-only steps. ``StepTimer`` stops
    the Trainer once the timed (or compute-only) steps are done, which is sooner when warmup
    settles early; the learning-rate schedule is the Trainer's over ``max_steps``, the same
    in both arms of a comparison."""
    _, drain = training.prefetch_backlog(request.config)
    steps = request.warmup + training.extra_warmup(device) + drain + request.steps
    return steps if ranks is None else steps + 1 + compute_only_steps(request.steps)


def measure(request: RunRequest, device: torch.device, hook: StepHook | None = None) -> Measurement:
    """Train ``request.config`` through the HF Trainer for warmup + timed steps and time it;
    a config with ``world_size`` above one is launched as that many ranks, each running
    the Trainer (``runner/hf_ranks.py``).

    Raises UnsupportedConfig when this engine cannot run the config here, Diverged when a
    loss is not finite, ValueError for a config no run can start from, and lets
    torch.OutOfMemoryError through for the worker to report as ``oom``.
    """
    config = request.config
    training._check_runnable(config)
    reason = unsupported_reason(config, device)
    if reason:
        raise UnsupportedConfig(reason)
    if config.world_size > 1:
        return launch(request, device)
    return run(request, device, hook)


def run(
    request: RunRequest,
    device: torch.device,
    hook: StepHook | None = None,
    ranks: HFRanks | None = None,
) -> Measurement:
    """One process's run of the Trainer: the whole run, or one rank of a launched one."""
    config = request.config
    request, notes = training.required_warmup(request)  # compiling and tuning go untimed
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the Trainer places the model on the current device
    notes += training._set_matmul_precision(config.precision)
    memory = training._PeakMemory(device)
    memory.reset()
    notes += memory.start_notes()
    if config.torch_compile:
        torch._dynamo.reset()  # a fresh cache per run: each run compiles its own model
        torch._dynamo.utils.counters.clear()  # graph breaks are counted per run
    model = build_model(config, device, request.layers, request.seed)
    world = ranks.world if ranks is not None else 1
    # every rank's samples: the Trainer's DataLoader hands each rank its own share
    samples = max_steps(request, device, ranks) * config.grad_accum_steps * config.batch_size
    dataset = _Tokens(config, samples * world, request.sample_cost_s, request.seed)
    compute_only = (
        ComputeOnly(ranks, None, compute_only_steps(request.steps), memory)
        if ranks is not None
        else None
    )
    timer = StepTimer(request, device, memory, hook, ranks, compute_only)
    with tempfile.TemporaryDirectory(prefix="goblin-hf-") as output_dir:
        # on ranks, the arguments initialise the process group (accelerate's PartialState)
        args = training_arguments(config, request, device, output_dir, ranks)
        if ranks is not None:
            ranks.after_setup()
        trainer = _LossRecordingTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            callbacks=[timer] if compute_only is None else [timer, compute_only],
            compute_only=compute_only,
        )
        if compute_only is not None:
            compute_only.trainer = trainer
        timer.scaler = _scaler(trainer)
        trainer.train()
    assert timer.end is not None, "max_steps covers the longest warmup, drain and windows"
    memory.sample()  # device-level use with the allocator's cache still held
    seconds = timer.clock.intervals()
    accum = config.grad_accum_steps
    micro = torch.stack(trainer.micro_losses).float().cpu()
    # each micro-batch's loss is already scaled for accumulation: a step's loss is their sum
    values = micro.view(-1, accum).sum(dim=1).tolist()[: timer.end]
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise Diverged(f"the loss is {values[bad]} at step {bad + 1}: training diverged")
    notes += timer.notes(request.steps, config)
    step_tokens = config.batch_size * config.seq_len * accum * world
    warmup = timer.warmup.steps
    compile_s = None
    if config.torch_compile:
        compile_s = max(0.0, timer.warmup_s - warmup * sum(seconds) / request.steps)
        notes += training.compile_notes()
    peak, reserved = memory.peak_gb(), memory.reserved_gb()
    rank_peaks: list[float] = []
    comm_share = None
    if ranks is not None and compute_only is not None:
        peak, reserved = compute_only.peak_gb, compute_only.reserved_gb
        gathered = ranks.gather([peak, compute_only.seconds()])
        if gathered is not None:  # rank 0: the run's figures
            rank_peaks = [values[0] for values in gathered]
            peak = max(rank_peaks)  # the rank that runs out of memory first
            slowest = max(values[1] for values in gathered)  # every step waits for it
            step_s = sum(seconds) / request.steps
            comm_share = min(1.0, max(0.0, 1.0 - slowest / step_s))
    return Measurement(
        layers=model.config.num_hidden_layers,
        warmup_steps=warmup,
        window_steps=timer.sizes,
        window_seconds=seconds,
        window_tokens=[size * step_tokens for size in timer.sizes],
        losses=values,
        peak_memory_gb=peak,
        compile_time_s=compile_s,
        warnings=notes,
        drain_steps=timer.drain_steps,
        peak_reserved_gb=reserved,
        peak_device_gb=memory.device_gb,
        attention_backend=_attention_label(config, device),
        skipped_steps=timer.skipped(),
        window_telemetry=timer.readings if any(timer.readings) else [],
        world_size=world,
        rank_peak_memory_gb=rank_peaks,
        comm_share=comm_share,
    )


def _attention_label(config: WorkloadConfig, device: torch.device) -> str:
    """What attention ran: transformers' flash_attention_2 is the flash-attn package (CK or
    Triton on ROCm), not SDPA's flash backend; sdpa is labelled as the native engine's."""
    if config.attention_impl == "flash":
        return f"flash_attn {_installed_version('flash_attn')} (flash_attention_2)"
    return training.attention_backend(config, device, config.batch_size)


def _installed_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package.replace("_", "-"))
    except PackageNotFoundError:
        return "(not installed)"
