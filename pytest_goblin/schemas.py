"""The data every part of pytest-goblin exchanges, as pydantic models.

One source of truth: tools validate their inputs against these models, tool JSON
schemas are generated from them, and the JSON report dumps them. Field names
(``WorkloadConfig``, ``RunMetrics``, ``Patch``, ``Report``) are a public contract:
rule conditions, the JSON report and saved runs use them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pytest_goblin.catalogue.architectures import ModelArch, lookup

Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "unknown"]
AttentionImpl = Literal["eager", "sdpa", "flash", "unknown"]
FinetuneType = Literal["full", "lora", "qlora", "lora8"]
"""full: every weight trained; lora: adapters on a 16/32-bit frozen base; qlora: adapters on
a 4-bit NF4 base (bitsandbytes ``Linear4bit``); lora8: adapters on an 8-bit LLM.int8() base
(bitsandbytes ``Linear8bitLt``, ``load_in_8bit``)."""
Strategy = Literal["single", "ddp", "fsdp", "deepspeed"]
TrainingLoop = Literal["accelerate", "torchtune", "llamafactory-v1", "torchtitan"]
FsdpVersion = Literal[1, 2]
CommunicationDataType = Literal["fp16", "bf16", "fp32"]
ZeroStage = Literal[0, 1, 2, 3]
Objective = Literal["sft", "dpo"]
Reference = Literal["model", "adapter", "precomputed", "none"]
ActivationOffloader = Literal["torchtune", "trl", "axolotl", "axolotl-hidden-states"]
WasteBucket = Literal[
    "data_wait", "host_gap", "comm_excess", "memory_headroom", "precision_path", "kernel_shape"
]
Outcome = Literal["passed", "failed", "error", "skipped"]

WASTE_BUCKETS: tuple[str, ...] = (
    "data_wait",
    "host_gap",
    "comm_excess",
    "memory_headroom",
    "precision_path",
    "kernel_shape",
)


class ToolResult(BaseModel):
    """What every tool returns; tools never raise into the agent loop."""

    ok: bool
    result: Any = None
    error: str | None = None


class WorkloadConfig(BaseModel):
    """One fine-tuning workload, normalised from whatever file described it.

    A field the source leaves unset takes the
    real default of the framework that reads it (for the native format: the
    Hugging Face Trainer), and a value that cannot be known is ``unknown``:
    never a "bad" default that would look like a finding. Sizes have upper
    bounds far beyond any real run and floats must be finite, so an absurd
    value is refused naming its field instead of being modelled.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    name: str | None = None
    model_name: str = "unknown"
    model: ModelArch | None = Field(
        default=None,
        description="A preset name (llama-3-8b, qwen2.5-7b, …) or explicit dims; "
        "when absent, looked up from model_name.",
    )
    finetune: FinetuneType = "full"
    batch_size: int = Field(
        default=8, ge=1, le=65_536, description="per-device micro-batch (HF default 8)"
    )
    grad_accum_steps: int = Field(default=1, ge=1, le=65_536)
    seq_len: int = Field(default=1024, ge=1, le=10_000_000)
    precision: Precision = "fp32"
    optimizer: str = "adamw_torch"
    attention_impl: AttentionImpl = "sdpa"
    gradient_checkpointing: bool = False
    lora_rank: int | None = Field(default=None, ge=1, le=65_536)
    lora_alpha: int | None = Field(default=None, ge=1)
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    packing: bool = False
    dataloader_workers: int = Field(default=0, ge=0, le=1_024)
    dataloader_pin_memory: bool = True
    dataloader_prefetch_factor: int | None = Field(default=None, ge=1, le=1_024)
    dataloader_persistent_workers: bool = False
    torch_compile: bool = False
    lr: float = Field(default=5e-5, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    world_size: int = Field(default=1, ge=1, le=1_000_000)
    strategy: Strategy = "single"
    objective: Objective = Field(
        default="sft",
        description="what the loss trains: sft (one sequence per example) or dpo (a chosen "
        "and a rejected sequence per example, batch_size examples per micro-batch, each up "
        "to seq_len tokens, scored against a reference)",
    )
    reference: Reference | None = Field(
        default=None,
        description="where DPO's reference log-probs come from: model (a frozen copy, one "
        "more forward per step), adapter (the same model with its LoRA adapter disabled: "
        "a forward, no copy), precomputed (once before training), none (reference-free); "
        "unset for DPO: adapter for (Q)LoRA, model for full fine-tuning, as TRL chooses",
    )
    pure_precision: bool = Field(
        default=False,
        description="the model is loaded and trained in the compute dtype, so its weights, "
        "gradients and a torch optimizer's state are 16-bit, instead of fp32 master weights "
        "under autocast (the HF Trainer on a float32 load, LLaMA-Factory's upcast): axolotl "
        "full fine-tuning, torchtune dtype: bf16, LLaMA-Factory pure_bf16",
    )
    zero_stage: ZeroStage | None = Field(
        default=None,
        description="which model states strategy fsdp/deepspeed splits across world_size: "
        "1 optimizer state, 2 also gradients, 3 also parameters (FSDP FULL_SHARD is 3, "
        "SHARD_GRAD_OP 2, NO_SHARD 0); unset: modelled as 3",
    )
    offload_optimizer: bool = Field(
        default=False,
        description="optimizer state (and DeepSpeed's fp32 master weights and gradient "
        "partitions) lives in host memory: DeepSpeed offload_optimizer, FSDP CPU offload",
    )
    offload_params: bool = Field(
        default=False,
        description="parameters live in host memory between uses: DeepSpeed ZeRO-3 "
        "offload_param, FSDP CPUOffload(offload_params=True)",
    )
    activation_offloading: bool = Field(
        default=False,
        description="the activations the forward saves for the backward are copied to pinned "
        "host memory and back on a side stream that overlaps the copies with compute "
        "(torchtune enable_activation_offloading, TRL and axolotl activation_offloading): "
        "with gradient_checkpointing only the checkpointed layers' inputs, without it every "
        "saved activation; torchtune's recipes and axolotl offload only beside "
        "checkpointing, so turning checkpointing off there turns it off",
    )
    activation_offloader: ActivationOffloader | None = Field(
        default=None,
        description="whose activation offloading runs, which decides what leaves the device: "
        "torchtune (OffloadActivations around the model's forward: the loss's saved tensors "
        "stay), trl (TRL's OffloadActivations around the whole training step, so the loss's "
        "are copied out too; with or without checkpointing), axolotl (TRL's offloader as "
        "axolotl's activation_offloading: true runs it, checkpointing required), "
        "axolotl-hidden-states (activation_offloading: hidden_states: only each checkpointed "
        "layer's input, two in flight); torchtune when unset, None while "
        "activation_offloading is off",
    )
    optimizer_in_backward: bool = Field(
        default=False,
        description="the optimizer steps each parameter inside the backward as soon as its "
        "gradient is ready and frees that gradient, so no full gradient buffer is held "
        "(torchtune optimizer_in_bwd); it cannot accumulate gradients, so grad_accum_steps "
        "must be 1",
    )
    training_loop: TrainingLoop = Field(
        default="accelerate",
        description="whose loop drives the micro-batches, which decides when FSDP reduces "
        "gradients: accelerate (the Hugging Face Trainer, TRL, axolotl, LLaMA-Factory, "
        "Firefly, open-instruct: once per optimizer step, accelerate's accumulate skipping "
        "the sync on the other micro-batches), torchtune, llamafactory-v1 and torchtitan "
        "(their own loops: a plain backward per micro-batch, so a reduce-scatter on every one)",
    )
    fsdp_version: FsdpVersion | None = Field(
        default=None,
        description="which FSDP strategy fsdp runs: 1 (FullyShardedDataParallel, whose no_sync "
        "keeps SHARD_GRAD_OP parameters gathered across the accumulated micro-batches) or 2 "
        "(fully_shard); unset: 2, the Hugging Face Trainer's default (fsdp_config version, "
        "transformers v5.10+) and the only one torchtune, LLaMA-Factory v1 and torchtitan run",
    )
    sync_each_batch: bool = Field(
        default=False,
        description="accelerate's gradient_accumulation_kwargs sync_each_batch (the Trainer's "
        "accelerator_config): under training_loop accelerate, gradients are reduced on every "
        "micro-batch instead of only the last, so FSDP keeps gradient shards while "
        "accumulating instead of full gradients, at the cost of a reduction per micro-batch",
    )
    communication_data_type: CommunicationDataType | None = Field(
        default=None,
        description="the dtype DeepSpeed reduces gradients in (its config's "
        "communication_data_type); unset: DeepSpeed's default, the fp16 or bf16 mode's dtype "
        "when one is enabled, fp32 otherwise",
    )
    ddp_find_unused_parameters: bool | None = Field(
        default=None,
        description="DDP's find_unused_parameters (TrainingArguments ddp_find_unused_parameters); "
        "unset: the Hugging Face Trainer's choice, off for a full fine-tune with gradient "
        "checkpointing and on otherwise (find_unused_parameters below)",
    )
    ddp_bucket_cap_mb: int | None = Field(
        default=None,
        ge=1,
        le=1_048_576,
        description="DDP's bucket_cap_mb, MiB of gradients per all-reduce (TrainingArguments "
        "ddp_bucket_cap_mb); unset: torch's 25 MiB, with a 1 MiB first bucket",
    )
    env_vars: dict[str, str] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model", mode="before")
    @classmethod
    def _preset_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            arch = lookup(value)
            if arch is None:
                from pytest_goblin.catalogue.architectures import PRESETS

                raise ValueError(
                    f"unknown model preset {value!r}; use one of {', '.join(sorted(PRESETS))} "
                    "or a mapping of dims (layers, hidden, intermediate, heads, kv_heads, vocab)"
                )
            return arch
        return value

    @field_validator("env_vars", mode="before")
    @classmethod
    def _env_as_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): _env_str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _resolve(self) -> WorkloadConfig:
        if self.model is None and self.model_name != "unknown":
            arch = lookup(self.model_name)
            if arch is not None:
                object.__setattr__(self, "model", arch)
        if self.lora_rank is not None and self.finetune == "full":
            object.__setattr__(self, "finetune", "lora")
        if self.finetune != "full" and self.lora_rank is None:
            object.__setattr__(self, "lora_rank", 16)
        if self.fsdp_version == 1 and self.training_loop != "accelerate":
            raise ValueError(
                f"fsdp_version 1: training_loop {self.training_loop} shards with FSDP2 "
                "(fully_shard) only"
            )
        if self.sync_each_batch and self.training_loop != "accelerate":
            raise ValueError(
                f"sync_each_batch: training_loop {self.training_loop} reduces gradients on "
                "every micro-batch already; sync_each_batch is accelerate's"
            )
        if self.optimizer_in_backward and self.grad_accum_steps > 1:
            # torchtune v0.6.1 recipes/full_finetune_single_device.py: "Gradient accumulation
            # is not supported with optimizer_in_bwd: True" (RuntimeError)
            raise ValueError(
                f"grad_accum_steps {self.grad_accum_steps}: optimizer_in_backward steps and "
                "frees each gradient inside the backward, so it cannot accumulate; use 1"
            )
        if (
            self.activation_offloading
            and not self.gradient_checkpointing
            and (
                self.training_loop == "torchtune"
                or self.activation_offloader in ("axolotl", "axolotl-hidden-states")
            )
        ):
            # torchtune and axolotl offload only beside checkpointing (torchtune v0.6.1
            # recipes raise "should only be True when enable_activation_checkpointing is
            # True"; axolotl v0.18.0 src/axolotl/utils/schemas/validation.py
            # check_activation_offloading_wo_gc), and their readers write offloading off with
            # checkpointing: what that patch runs. TRL offloads every activation without it.
            object.__setattr__(self, "activation_offloading", False)
        offloader = (
            (self.activation_offloader or "torchtune") if self.activation_offloading else None
        )
        object.__setattr__(self, "activation_offloader", offloader)
        if self.objective == "sft" and self.reference is not None:
            raise ValueError(f"reference {self.reference!r} is for objective dpo, not sft")
        if self.objective == "dpo" and self.reference is None:
            # TRL v0.19.0 trl/trainer/dpo_trainer.py: no reference copy for a PEFT model
            # (its adapter is disabled instead), create_reference_model(model) otherwise
            object.__setattr__(self, "reference", "model" if self.finetune == "full" else "adapter")
        return self

    @property
    def arch(self) -> ModelArch:
        """The architecture, or a ValueError that says how to give one."""
        if self.model is None:
            raise ValueError(
                f"no architecture for model_name {self.model_name!r}: set `model` to a preset "
                "name or to dims (layers, hidden, intermediate, heads, kv_heads, vocab)"
            )
        return self.model

    @property
    def tokens_per_step(self) -> int:
        """Tokens one optimizer step consumes across all ranks (DPO: chosen and rejected)."""
        sequences = self.batch_size * self.sequences_per_example
        return sequences * self.seq_len * self.grad_accum_steps * self.world_size

    @property
    def find_unused_parameters(self) -> bool:
        """What a DDP run passes as ``find_unused_parameters``: the workload's own value, or
        where it leaves it unset, the Hugging Face Trainer's (transformers v5.25.0
        ``src/transformers/trainer.py`` ``_build_accelerator_args``): off for a
        ``PreTrainedModel`` with activation checkpointing, on for one without it and for
        any other module, a PEFT model (``PeftModel``, peft v0.21.2) included. Formats
        whose framework decides otherwise (axolotl, LLaMA-Factory) set the field."""
        if self.ddp_find_unused_parameters is not None:
            return self.ddp_find_unused_parameters
        return self.finetune != "full" or not self.gradient_checkpointing

    @property
    def sequences_per_example(self) -> int:
        """Sequences the model runs per example: DPO concatenates chosen and rejected."""
        return 2 if self.objective == "dpo" else 1


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


Budget = Annotated[float, Field(gt=0)] | dict[str, Annotated[float, Field(gt=0)]]
"""A budget in the ``goblin:`` section: one limit for every device, or one per device name."""


class Acceptance(BaseModel):
    """A known gap accepted for now: the ``accept:`` block of a ``goblin:`` section.

    While ``until`` (the last day it holds) has not passed and the gap has not
    grown beyond ``max_speedup``, a workload a patch beats is xfail with
    ``reason`` instead of failing (``pytest_goblin.verdict.known_gaps`` decides).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    until: date = Field(description="last day the acceptance holds, written YYYY-MM-DD")
    reason: str = Field(min_length=1, description="why the gap is accepted: the xfail reason")
    max_speedup: float = Field(
        gt=1, description="the largest speedup accepted; a gap beyond it fails the item again"
    )

    @field_validator("until", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> Any:
        """Only a real calendar date: no time of day, and no number read as a Unix time."""
        if isinstance(value, datetime):
            raise ValueError("expected a date without a time of day, e.g. 2026-09-30")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError("expected a date written YYYY-MM-DD, e.g. 2026-09-30")


MAX_THRESHOLD = 10.0
"""The largest threshold accepted (10.0 = a patch must be 11x faster to fail). The
biggest gaps real configs show (fp32 to bf16 with flash attention) are under 10x, so a
bar above this never fails anything: it switches the gate off while looking like one."""


class WorkloadSettings(BaseModel):
    """The per-workload plugin settings: the ``goblin:`` section of a workload file."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float | None = Field(default=None, gt=0, le=MAX_THRESHOLD)
    ignore: list[str] = Field(default_factory=list)
    device: str | None = None
    layers: int | None = Field(
        default=None, ge=1, description="measure this many layers and extrapolate the full model"
    )
    sample_cost_ms: float | None = Field(
        default=None, ge=0, description="host CPU time per sample in measured runs (tokenising)"
    )
    min_tokens_per_sec: Budget | None = Field(
        default=None, description="baseline tokens/s floor: a number, or {device: number}"
    )
    min_mfu_pct: Budget | None = Field(
        default=None, description="baseline MFU floor in percent: a number, or {device: number}"
    )
    max_hbm_peak_gb: Budget | None = Field(
        default=None,
        description="baseline peak-memory ceiling in GB: a number, or {device: number}",
    )
    accept: Acceptance | None = Field(
        default=None, description="a known gap, xfail until a date: {until, reason, max_speedup}"
    )

    @field_validator("min_tokens_per_sec", "min_mfu_pct", "max_hbm_peak_gb")
    @classmethod
    def _budget_devices(cls, value: Budget | None) -> Budget | None:
        """Device keys are catalogue names: a typo is an error, not a budget never checked."""
        if isinstance(value, dict):
            from pytest_goblin.catalogue.devices import get_device

            for device in value:
                get_device(device)
        return value


class WasteBudget(BaseModel):
    """Seconds per optimizer step, split into where the time goes (a rule's ``targets_bucket`` names one)."""

    useful_gpu: float = 0.0
    data_wait: float = 0.0
    host_gap: float = 0.0
    comm_excess: float = 0.0
    memory_headroom: float = 0.0
    precision_path: float = 0.0
    kernel_shape: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.model_dump().values())


class DeviceInfo(BaseModel):
    """The device a number was measured on, or simulated for."""

    kind: Literal["rocm", "cuda", "cpu", "simulated"]
    name: str
    platform: str = Field(description="knowledge-base platform tag, e.g. rocm-instinct")
    memory_gb: float | None = None
    arch: str | None = None
    torch_version: str | None = None
    rocm_version: str | None = Field(default=None, description="HIP version of a ROCm build")
    cuda_version: str | None = None
    driver_version: str | None = None
    compute_units: int | None = Field(
        default=None, description="CUs (AMD) or SMs (NVIDIA) this device exposes"
    )
    clock_mhz: float | None = Field(default=None, description="maximum engine clock, MHz")
    catalogue_key: str | None = Field(
        default=None,
        description="the device catalogue entry this device is, resolved from arch, compute "
        "units and memory (not the marketing name); per-device budgets match on it",
    )
    engine: str | None = Field(
        default=None,
        description="the engine measured runs train with (hf or native); None when projected",
    )


class CalibrationRef(BaseModel):
    """The self-calibration a projection used (``pytest_goblin.runner.self_calibration``).

    A calibrated projection is still projected: this says which measured runs its
    device correction was fitted from, never that it was measured.
    """

    source: str = Field(description="what the correction was fitted to: the measured device")
    fingerprint: str = Field(description="device fingerprint of the measured device")
    fitted_from_runs: int = Field(ge=1)
    saved_at: datetime


class RunMetrics(BaseModel):
    """One benchmark (or profile) of one config on one device."""

    steps: int
    tokens_per_sec: float
    step_time_s: float
    tokens_per_step: int
    hbm_peak_gb: float
    mfu_pct: float | None = Field(description="None when the device's peak is unknown")
    projected: bool
    runner_kind: Literal["fake", "torch"]
    device: str
    config_hash: str = ""
    waste_budget: WasteBudget = Field(default_factory=WasteBudget)
    samples: list[float] = Field(
        default_factory=list, description="tokens/s per measurement window"
    )
    losses: list[float] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    warmup_steps: int = Field(default=0, description="untimed steps before the timed ones")
    compile_time_s: float | None = Field(
        default=None, description="what torch.compile added to the warmup steps, in seconds"
    )
    extrapolated_from_layers: list[int] = Field(
        default_factory=list,
        description="decoder depths measured when the full model's step time is extrapolated",
    )
    attention_backend: str | None = Field(
        default=None,
        description="the attention kernel that ran: eager, or the SDPA backend torch chose "
        "for the run's shapes (sdpa:flash_attention, sdpa:efficient_attention, sdpa:math, ...)",
    )
    hbm_reserved_peak_gb: float | None = Field(
        default=None,
        description="the caching allocator's reserved peak, GB: what an out-of-memory is about",
    )
    hbm_device_peak_gb: float | None = Field(
        default=None,
        description="device-level memory in use (context and other processes included), GB, "
        "the highest of readings at window boundaries",
    )
    skipped_steps: int = Field(
        default=0, description="fp16 optimizer steps GradScaler skipped inside the timed windows"
    )
    window_telemetry: list[dict[str, float]] = Field(
        default_factory=list,
        description="clock_mhz, power_w and temp_c at each window boundary, where readable",
    )
    calibration: CalibrationRef | None = Field(
        default=None,
        description="the self-calibration a projected run used; None: the published model",
    )
    world_size: int = Field(
        default=1,
        ge=1,
        description="ranks (devices) the run measured or projected, one process per rank",
    )
    shrunk_from_world_size: int | None = Field(
        default=None,
        description="the workload's world_size when the run was measured on fewer ranks "
        "(--goblin-max-world-size: same per-device batch and strategy); None: not shrunk",
    )
    rank_peak_memory_gb: list[float] = Field(
        default_factory=list,
        description="peak memory of each rank in rank order, GB (measured multi-rank runs)",
    )
    comm_share: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="share of the step time that is exposed communication: 1 - (step time "
        "with gradient synchronisation skipped, slowest rank) / (full step time); None: not "
        "measured (one rank, or projected)",
    )


class Change(BaseModel):
    """One field a patch changes, and the rule that asked for it."""

    field: str
    old: Any
    new: Any
    rule_id: str


NotMeasured = Literal["time_budget", "device_fault", "baseline_failed", "patch_mismatch"]


class ChangeAttribution(BaseModel):
    """What one change of a patch contributes: the patch measured (or projected) without it.

    ``contribution`` is the change's share of the patch's log-speedup,
    ``ln(speedup / speedup_without) / ln(speedup)`` (``pytest_goblin.audit.attribution``
    says why). A change the patch cannot run without has no figure, and ``note``
    says what it is not separable from; one that was not measured has no figure
    either, and ``not_measured`` says why. Information only: never part of a verdict.
    """

    field: str
    old: Any
    new: Any
    rule_id: str
    speedup_without: float | None = Field(
        default=None, description="the patch without this change, over the baseline"
    )
    contribution: float | None = Field(
        default=None, description="share of the patch's log-speedup (1.0 = all of it)"
    )
    projected: bool
    together_with: list[str] = Field(
        default_factory=list,
        description="fields left out with this one because their rules need it",
    )
    not_measured: NotMeasured | None = Field(
        default=None,
        description="why the patch without this change has no figure although it could have "
        "one: --goblin-time-budget was spent before its turn, the device worker failed, the "
        "baseline run beside it failed, or the changes do not rebuild the benchmarked config",
    )
    note: str = ""


class RuleApplication(BaseModel):
    rule_id: str
    rationale: str
    citation: list[str]
    targets_bucket: str | None = None


class SkippedRule(BaseModel):
    rule_id: str
    reason: str


class Advisory(BaseModel):
    """Host or cluster advice from an advisory rule: reported, never part of a verdict."""

    id: str
    advice: str
    citation: list[str]


class Patch(BaseModel):
    """A proposed change to a workload: the new config and a diff of the user's file."""

    new_config: WorkloadConfig
    changes: list[Change] = Field(default_factory=list)
    rule_ids: list[str] = Field(default_factory=list)
    diff: str = ""
    rationale: list[RuleApplication] = Field(default_factory=list)
    skipped: list[SkippedRule] = Field(default_factory=list)
    expected_speedup_low: float | None = None
    expected_speedup_high: float | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="changes left out because the workload's file format cannot express them",
    )


class SearchCandidate(BaseModel):
    """One patched config the audit's search considered: what it changes and how it ranked.

    ``speedup`` is measured against the baseline where the candidate was benchmarked
    (``projected`` false), else the analytic model's projection; ``chosen`` marks the
    one the verdict judges."""

    changes: list[Change]
    speedup: float | None = Field(description="patched / baseline tokens/s")
    projected: bool
    peak_memory_gb: float | None = Field(
        default=None, description="measured, or predicted from the profile by the memory model"
    )
    chosen: bool = False


class Report(BaseModel):
    """The outcome of one audit: baseline against patched, and why."""

    workload_name: str
    device: DeviceInfo
    before: RunMetrics
    after: RunMetrics
    patch: Patch | None
    speedup: float
    speedup_ci: tuple[float, float] | None = None
    projected: bool
    summary_line: str
    notes: list[str] = Field(default_factory=list)
    advisories: list[Advisory] = Field(default_factory=list)
    waived: list[str] = Field(
        default_factory=list, description="ids of rules that applied but were waived (ignore)"
    )
    n_repeats: int = Field(default=1, description="paired measurement rounds behind speedup")
    cv_baseline: float | None = None
    cv_patched: float | None = None
    rejected: str | None = Field(
        default=None, description="why the patched arm does not count (e.g. its loss diverged)"
    )
    measurement: str | None = Field(
        default=None, description="how the speedup and its interval were measured"
    )
    fallback: str | None = Field(
        default=None,
        description="set when the whole patch failed the loss check and a "
        "smaller one (a rule dropped) is what was measured: which, and why",
    )
    attribution: list[ChangeAttribution] = Field(
        default_factory=list, description="each change's leave-one-out share (--goblin-attribution)"
    )
    candidates: list[SearchCandidate] = Field(
        default_factory=list,
        description="the patched configs the search ranked, best first; chosen is judged",
    )


class AuditEvent(BaseModel):
    """One event of an audit stream (``--goblin-events`` writes each as a JSON line)."""

    type: Literal[
        "thought", "tool_call", "tool_result", "waiting", "progress", "final_report", "error"
    ]
    """``waiting``: an LLM backend's reply is awaited; ``progress``: the verdict's measured
    rounds after the agent (each with a ``text``)."""
    data: dict[str, Any]


class AuditUsage(BaseModel):
    """What driving one audit took: backend turns, LLM tokens and the estimated cost.

    The planner takes turns but no tokens; ``cost_usd`` is None when the
    model's price is unknown.
    """

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0


class RuleRef(BaseModel):
    id: str
    citation: list[str]


class PatchSummary(BaseModel):
    changes: list[Change]
    diff: str


class BudgetCheck(BaseModel):
    """One budget from the ``goblin:`` section held against the baseline's numbers."""

    key: Literal["min_tokens_per_sec", "min_mfu_pct", "max_hbm_peak_gb"]
    limit: float
    value: float
    ok: bool


class HistoryComparison(BaseModel):
    """The baseline's tokens/s against the same workload in a saved run.

    ``status`` is ``compared`` (same device fingerprint), ``not_comparable``
    (another device, or measured against projected) or ``new`` (the saved run
    does not have this workload). ``regressed`` is only ever set by
    ``--goblin-compare-fail``.
    """

    run: str
    status: Literal["compared", "not_comparable", "new"]
    saved_tokens_per_sec: float | None = None
    tokens_per_sec: float | None = None
    change_pct: float | None = None
    change_ci_pct: tuple[float, float] | None = Field(
        default=None,
        description="confidence interval of change_pct from both runs' windows (measured "
        "runs with enough windows); a regression needs all of it beyond fail_pct",
    )
    regressed: bool = False
    fail_pct: float | None = None
    config_changed: bool = False
    saved_commit: str | None = None
    reason: str = ""


class NoiseFloor(BaseModel):
    """What an A/A comparison (a workload's baseline against itself) says about the
    device's noise: ``--goblin-calibrate``, once per physical device and test run (xdist
    workers on one device share it)."""

    device: str = Field(description="the device's name")
    device_id: str | None = Field(
        default=None,
        description="the physical device, as its lock names it (cpu, "
        "cuda-<uuid>, rocm-3, simulated-mi300x): tells apart the floors of two GPUs of "
        "one model; null when a plugin's runner names none",
    )
    workload: str = Field(description="the workload whose baseline config was run twice")
    projected: bool
    rounds: int = Field(description="paired A/A rounds")
    n: int = Field(description="paired windows behind the interval")
    ratio: float = Field(description="A/A speedup; 1 when there is no drift between arms")
    ratio_ci: tuple[float, float]
    band: float = Field(
        description="the interval's half-width around 1, as a fraction: "
        "no threshold below it can be told from noise"
    )
    mde: float = Field(
        description="minimum detectable effect (fraction): the smallest real "
        "speedup found with 80% power at this noise"
    )
    cv: float = Field(description="coefficient of variation of the windows' tokens/s")


class WorkloadResult(BaseModel):
    """One workload's entry in every report: what was audited and how it ended.

    It travels on the pytest test report (so it also reaches an xdist
    controller) and is what the terminal table, the failure text and the JSON
    report are made from.
    """

    nodeid: str
    path: str
    name: str
    format: str | None = None
    outcome: Outcome
    reason: str = ""
    threshold: float
    device: DeviceInfo | None = None
    config: dict[str, Any] | None = None
    baseline: RunMetrics | None = None
    patched: RunMetrics | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    projected: bool | None = None
    rules: list[RuleRef] = Field(default_factory=list)
    patch: PatchSummary | None = None
    skipped_rules: list[SkippedRule] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    advisories: list[Advisory] = Field(default_factory=list)
    waived: list[str] = Field(default_factory=list)
    error: str | None = None
    budgets: list[BudgetCheck] = Field(default_factory=list)
    history: HistoryComparison | None = None
    usage: AuditUsage | None = None
    fixed: bool = Field(default=False, description="--goblin-fix wrote the patch into the file")
    cached: bool = Field(
        default=False,
        description="the audit's report was reused from an earlier run with the same inputs",
    )
    accepted: Acceptance | None = Field(
        default=None,
        description="set when the item is xfail: a patch beats it, and goblin.accept accepts "
        "that gap (outcome stays failed)",
    )
    inconclusive: bool = Field(
        default=False,
        description="the verdict could not be reached with confidence (outcome passed)",
    )
    n_repeats: int = Field(default=1, description="paired measurement rounds behind speedup")
    cv_baseline: float | None = None
    cv_patched: float | None = None
    verdict_reason: str = ""
    measurement: str | None = None
    fallback: str | None = None
    noise_floor: NoiseFloor | None = Field(
        default=None, description="--goblin-calibrate: the A/A noise floor of this device"
    )
    attribution: list[ChangeAttribution] = Field(
        default_factory=list, description="each change's leave-one-out share (--goblin-attribution)"
    )
    candidates: list[SearchCandidate] = Field(
        default_factory=list,
        description="the patched configs the search ranked, best first; chosen is judged",
    )
