"""One measured run, inside the worker: build the workload's model, train it, time it.

The training step is the one a Hugging Face Trainer runs for the config:
micro-batches from a DataLoader, autocast for fp16/bf16 (fp16 with a
GradScaler), gradient accumulation, the optimizer step and the learning-rate
schedule. Warmup steps come first and are not timed (with torch.compile they
hold the compilation, reported on its own); then the timed steps run in
windows whose boundaries are CUDA events on a GPU (no host sync inside a
window) or ``perf_counter`` readings on the CPU. Losses stay on the device
until the run ends, so that recording them costs no sync per step.

What a GPU does to a short benchmark is guarded against, not assumed away:
warmup goes on (up to ``MAX_EXTRA_WARMUP`` steps) until two consecutive step
times agree and fp16's GradScaler has stopped skipping optimizer steps; the
batches the DataLoader's workers prefetched during the slow first steps are
consumed by untimed "drain" steps, so that a data-bound config does not look
device-bound (and the device queue, emptied by the sync after warmup, is full
again when the first window opens); and the run records what actually ran
and what it held: the SDPA backend chosen for its shapes, allocated, reserved
and device-level peak memory, optimizer steps skipped inside the timed
windows, and the clock, power and temperature at each window boundary where
the vendor library can tell.

A config this device cannot run is refused with the reason
(``unsupported_reason``), never silently changed into something else.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pytest_goblin.errors import RunFailed, UnsupportedConfig
from pytest_goblin.runner.data import make_loader
from pytest_goblin.runner.measurement import Measurement
from pytest_goblin.runner.model import ModelOptions, build, flash_attn
from pytest_goblin.runner.optimizers import make_optimizer
from pytest_goblin.runner.optimizers import unsupported_reason as optimizer_reason
from pytest_goblin.schemas import WorkloadConfig

HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_EXTRA_WARMUP = 8
"""Warmup steps added, at most, while step time is still changing or fp16 steps are skipped."""
CPU_EXTRA_WARMUP = 0
"""On the CPU warmup is not extended: there are no boost clocks, autotuning or loss-scale
overflows to wait out, and a shared machine's noise would keep it from ever settling."""
STABLE_STEP_TOLERANCE = 0.10
"""Two consecutive warmup steps within this fraction of each other count as a settled step time."""
FOREIGN_GB = 4.0
"""Device memory in use beyond this worker's allocator, above this, is taken as another
process on the device (a CUDA or HIP context alone holds well under it)."""
LEFTOVER_GB = 0.1
"""Memory still allocated when a run starts, above this, is reported: it inflates the peak."""
INITIAL_LOSS_SCALE = 2.0**16
"""GradScaler's default first loss scale (torch/amp/grad_scaler.py): large enough that fp16
gradients overflow at first and the first steps are skipped, cheaper than real ones."""
MAX_WINDOWS = 5
"""Timed steps are split into up to this many windows, one tokens/s sample each."""

COMPILE_BACKEND = "inductor"
"""torch.compile's default backend, what ``torch_compile: true`` means in a job. Tests
swap in ``eager`` to check the compile path without a minute of C++ builds."""

COMPUTE_ONLY_STEPS = 5
"""Steps of a multi-rank run timed again with gradient synchronisation skipped, at most:
the compute-only step time that the exposed-communication share is measured against."""

StepHook = Callable[[int, nn.Module], None]
"""Called before every step with its index (warmup included) and the model: the test hook."""


class Ranks(Protocol):
    """What one rank of a multi-rank run adds to this loop (``runner/distributed.py``
    implements it over torch.distributed): the wrapping, and the few collectives the
    measurement itself needs."""

    rank: int
    world: int

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as the strategy trains it (DistributedDataParallel, fully_shard)."""
        ...

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank: a decision that changes the step count must
        be the same everywhere, or the ranks' collectives stop matching."""
        ...

    def compute_only(self, wrapped: nn.Module) -> AbstractContextManager[None]:
        """Steps inside skip gradient synchronisation (and, with FSDP, resharding)."""
        ...

    def accumulating(self, wrapped: nn.Module) -> AbstractContextManager[None]:
        """A micro-batch inside, not the last of its optimizer step, leaves its gradients
        unsynchronised: the step's last micro-batch synchronises them all."""
        ...

    def gather(self, values: list[float]) -> list[list[float]] | None:
        """Every rank's ``values`` in rank order on rank 0; None on the others."""
        ...


class Diverged(RunFailed):
    """The loss stopped being finite: the run measured a broken training step."""


@dataclass(frozen=True)
class RunRequest:
    config: WorkloadConfig
    steps: int  # timed optimizer steps
    warmup: int  # untimed steps before them
    sample_cost_s: float  # host CPU time per sample (stands in for tokenisation)
    layers: int | None = None  # decoder blocks to build; None: the architecture's
    seed: int = 0


INT8_BASE_REASON = (
    "LoRA over an 8-bit base needs bitsandbytes' Linear8bitLt (LLM.int8) layers, which "
    "neither measuring engine builds (the hf engine builds QLoRA's 4-bit base only), so "
    "--goblin-fake projects it"
)
"""Why ``finetune: lora8`` is skipped by both engines (``hf_engine`` returns it too)."""


def unsupported_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Why ``device`` cannot run ``config`` as written, or None when it can."""
    if config.precision == "fp8":
        return (
            "fp8 training needs Float8 linears (torchao or Transformer Engine), "
            "which pytest-goblin does not ship"
        )
    if config.finetune == "qlora":
        return (
            "QLoRA needs 4-bit base weights from bitsandbytes, which the torch runner "
            "does not build"
        )
    if config.finetune == "lora8":
        return INT8_BASE_REASON
    if config.world_size > 1:
        from pytest_goblin.runner.distributed import unsupported_reason as distributed_reason

        reason = distributed_reason(config, device)
        if reason:
            return reason
    reason = optimizer_reason(config.optimizer)
    if reason:
        return reason
    if config.attention_impl == "flash":
        return _flash_reason(config, device)
    return None


def _flash_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Whether "flash" runs this config's attention, forward and backward: the flash-attn
    package when installed (``model.flash_attn``; its own probe says where it does not
    run), else SDPA's flash backend."""
    package = flash_attn()
    if device.type == "cpu" and package is None:
        return "flash attention needs a ROCm or CUDA GPU; the CPU has no flash-attention kernels"
    if config.model is None:
        return None  # the run itself says how to give an architecture
    arch = config.model
    dtype = HALF_DTYPES.get(config.precision, torch.float32)
    if package is not None:
        return _flash_attn_reason(config, device, dtype, package)
    q = torch.randn(
        1,
        arch.heads,
        config.seq_len,
        arch.dim_per_head,
        device=device,
        dtype=dtype,
        requires_grad=True,
    )
    try:
        with warnings.catch_warnings(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            # torch explains a refusal in UserWarnings, then raises "No available kernel"
            warnings.simplefilter("ignore")
            F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"flash attention is not available on {torch.cuda.get_device_name(device)} for "
            f"{config.precision} inputs with head_dim {arch.dim_per_head}: {detail}"
        )
    return None


def _flash_attn_reason(
    config: WorkloadConfig,
    device: torch.device,
    dtype: torch.dtype,
    package: tuple[Callable[..., torch.Tensor], str],
) -> str | None:
    """Whether the flash-attn package runs this config's attention, forward and backward:
    fp16/bf16 only (flash-attention v2.7.4 csrc/flash_attn/flash_api.cpp), and it refuses
    archs and head sizes its build lacks with a RuntimeError."""
    func, version = package
    arch = config.arch
    if dtype not in (torch.float16, torch.bfloat16):
        return f"flash-attn {version} runs fp16 and bf16 only, not {config.precision}"
    q = torch.randn(
        1, config.seq_len, arch.heads, arch.dim_per_head,
        device=device, dtype=dtype, requires_grad=True,
    )  # fmt: skip
    kv = q[:, :, : arch.n_kv_heads].detach().requires_grad_(True)
    try:
        func(q, kv, kv, causal=True).sum().backward()
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
        return (
            f"flash-attn {version} does not run on {name} for {config.precision} inputs "
            f"with head_dim {arch.dim_per_head}: {detail}"
        )
    return None


def _check_runnable(config: WorkloadConfig) -> None:
    """Values a run cannot start from are errors (not skips): they say what to set."""
    if config.precision == "unknown":
        raise ValueError("precision is unknown: the torch runner needs fp32, tf32, fp16 or bf16")
    if config.attention_impl == "unknown":
        raise ValueError("attention_impl is unknown: the torch runner needs eager, sdpa or flash")
    config.arch  # noqa: B018  # raises the ValueError that says how to give an architecture


def _set_matmul_precision(precision: str) -> list[str]:
    """TF32 matmuls for tf32 only; set on every run, since a worker runs many configs.

    On ROCm, hipBLASLt runs fp32 matmuls as fp32 unless ``HIPBLASLT_ALLOW_TF32=1`` is in
    the environment (ROCm 6.x/7.x, pytorch aten/src/ATen/cuda/CUDABlas.cpp reads it), so a
    run labelled tf32 would measure fp32: said in the run's warnings.
    """
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    if precision == "tf32" and torch.version.hip and os.environ.get("HIPBLASLT_ALLOW_TF32") != "1":
        return [
            "tf32 on ROCm runs as fp32 unless HIPBLASLT_ALLOW_TF32=1 is set (env_vars): "
            "this run is labelled tf32 but its matmuls may be fp32"
        ]
    return []


NO_FLASH_ATTN = (
    "attention flash ran SDPA's flash backend (torch's own kernel; AOTriton on ROCm): the "
    "flash-attn package, which Hugging Face's flash_attention_2 uses, is not installed, so "
    "sdpa and flash may time the same kernel"
)
"""Said in a "flash" run's warnings when the flash-attn package is not what ran."""

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""torch.compile's modes (torch/__init__.py, torch 2.4-2.13)."""


def compile_options(config: WorkloadConfig) -> dict[str, str]:
    """torch.compile's keywords for the workload: its ``torch_compile_mode`` and
    ``torch_compile_backend`` (HF TrainingArguments names, in ``extras``) where given, so a
    max-autotune workload is not measured in default mode; an unknown mode is an error."""
    options = {"backend": str(config.extras.get("torch_compile_backend") or COMPILE_BACKEND)}
    mode = config.extras.get("torch_compile_mode")
    if mode is not None:
        if mode not in COMPILE_MODES:
            raise ValueError(
                f"extras.torch_compile_mode {mode!r} is not one of {', '.join(COMPILE_MODES)}"
            )
        options["mode"] = str(mode)
    return options


def compile_notes() -> list[str]:
    """What a compiled run's ``compile_time_s`` holds besides compiling, and the graph breaks
    Dynamo counted (the counters are cleared when the run's compile begins)."""
    notes = [
        "compile_time_s is the warmup's time beyond the timed step rate: compilation, "
        "and also DataLoader start-up, kernel loading and any TunableOp tuning"
    ]
    breaks = graph_breaks()
    if breaks:
        reasons = ", ".join(list(torch._dynamo.utils.counters["graph_break"])[:3])
        notes.append(f"torch.compile broke the graph {breaks} times ({reasons})")
    return notes


def graph_breaks() -> int:
    """Graph breaks Dynamo counted since the run's compile began (torch._dynamo.utils)."""
    return sum(torch._dynamo.utils.counters["graph_break"].values())


def tunableop_enabled() -> bool:
    """Whether TunableOp tunes GEMMs in this process (PYTORCH_TUNABLEOP_ENABLED=1)."""
    return os.environ.get("PYTORCH_TUNABLEOP_ENABLED") == "1"


def attention_backend(config: WorkloadConfig, device: torch.device, batch: int) -> str:
    """The attention kernel this run's shapes get: eager's matmuls, or the SDPA backend
    ``torch._fused_sdp_choice`` picks for them (what F.scaled_dot_product_attention
    dispatches to, torch 2.4-2.13 aten/src/ATen/native/transformers/sdp_utils*.cpp).

    "flash" is the flash-attn package when installed, else SDPA's flash backend forced
    (its label is that backend or an error); "sdpa" can pick flash too, in which case sdpa
    and a forced SDPA flash time the same kernel.
    """
    if config.attention_impl == "eager":
        return "eager (matmul and softmax)"
    if config.attention_impl == "flash":
        package = flash_attn()
        if package is not None:
            return f"flash_attn {package[1]} (flash_attn_func)"
        return "sdpa:flash_attention (forced; flash-attn not installed)"
    arch = config.arch
    dtype = HALF_DTYPES.get(config.precision, torch.float32)
    shape = (batch, arch.heads, config.seq_len, arch.dim_per_head)
    q = torch.empty(shape, device=device, dtype=dtype)
    try:
        choice = torch._fused_sdp_choice(q, q, q, None, 0.0, True)
        name = SDPBackend(choice).name.lower()
    except (AttributeError, RuntimeError, ValueError, TypeError) as exc:
        return f"sdpa (backend not reported by torch {torch.__version__}: {type(exc).__name__})"
    return f"sdpa:{name}"


class _PeakMemory:
    """Peak memory of one run: allocated tensors on a GPU, resident set on the CPU; on a GPU
    also the allocator's reserved peak (what an OOM is about) and the device-level use
    (``mem_get_info``: context, other processes and all), sampled at window boundaries."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.device_gb: float | None = None
        self.leftover_gb = 0.0
        self.foreign_gb = 0.0

    def reset(self) -> None:
        if self.device.type == "cuda":
            # what an earlier run left allocated counts in this run's peak: say how much
            self.leftover_gb = torch.cuda.memory_allocated(self.device) / 1e9
            free, total = torch.cuda.mem_get_info(self.device)
            # in use on the device but not by this process's allocator: its context, and
            # other processes (which also take compute and power from the run)
            self.foreign_gb = (total - free - torch.cuda.memory_reserved(self.device)) / 1e9
            torch.cuda.reset_peak_memory_stats(self.device)
            self.device_gb = None
            self.sample()
        else:
            # Linux: writing 5 resets the process's peak RSS (VmHWM); see proc(5)
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")

    def start_notes(self) -> list[str]:
        """What ``reset`` found that moves this run's figures: memory an earlier run left
        allocated (in the peak), and device memory another process holds (and its work)."""
        notes = []
        if self.leftover_gb > LEFTOVER_GB:
            notes.append(
                f"{self.leftover_gb:.2f} GB was still allocated when the run started (left by "
                "an earlier run in this worker): the peak includes it"
            )
        if self.foreign_gb > FOREIGN_GB:
            notes.append(
                f"{self.foreign_gb:.1f} GB of device memory is in use outside this worker's "
                "allocator: another process may be using the device, and its work would slow "
                "some windows"
            )
        return notes

    def sample(self) -> None:
        """Read device-level use now (a host call: no sync of the device's queue)."""
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            used = (total - free) / 1e9
            self.device_gb = used if self.device_gb is None else max(self.device_gb, used)

    def reserved_gb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_reserved(self.device) / 1e9
        return None

    def peak_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 1e9
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9  # kB
        raise RuntimeError("cannot read the peak resident set size (/proc/self/status)")


class _Clock:
    """Marks between steps; seconds between consecutive marks once the run is over."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: list[torch.cuda.Event] = []  # on a GPU
        self.times: list[float] = []  # on the CPU

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events.append(event)
        else:
            self.times.append(time.perf_counter())

    def intervals(self) -> list[float]:
        self.sync()
        if self.device.type == "cuda":
            # events on a GPU: elapsed_time is in milliseconds
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.events, self.events[1:])]
        return [b - a for a, b in zip(self.times, self.times[1:])]


def telemetry(device: torch.device) -> dict[str, float]:
    """Clock (MHz), power (W) and temperature (C) of the device now, where the vendor library
    torch reads them through (pynvml on CUDA, amdsmi on ROCm) is installed; else empty.

    torch.cuda.power_draw is in mW from NVML but in W from amdsmi's average socket power
    (torch 2.4-2.13 torch/cuda/__init__.py), hence the conversion on CUDA only.
    """
    if device.type != "cuda":
        return {}
    readings: dict[str, float] = {}
    readers = (
        ("clock_mhz", torch.cuda.clock_rate, 1.0),
        ("power_w", torch.cuda.power_draw, 1.0 if torch.version.hip else 1e-3),
        ("temp_c", torch.cuda.temperature, 1.0),
    )
    for key, read, scale in readers:
        try:
            readings[key] = float(read(device)) * scale
        except Exception:  # no pynvml/amdsmi, or a sensor the part lacks
            continue
    return readings


def window_sizes(steps: int) -> list[int]:
    """``steps`` split into up to MAX_WINDOWS windows whose sizes differ by at most one."""
    count = min(steps, MAX_WINDOWS)
    return [steps // count + (1 if i < steps % count else 0) for i in range(count)]


class _Trainer:
    """The model, optimizer and data of one run, and its training step."""

    def __init__(
        self, request: RunRequest, device: torch.device, ranks: Ranks | None = None
    ) -> None:
        config = request.config
        self.config = config
        self.device = device
        self.ranks = ranks
        half = HALF_DTYPES.get(config.precision)
        options = ModelOptions(
            attention=config.attention_impl,
            checkpointing=config.gradient_checkpointing,
            lora_rank=config.lora_rank if config.finetune == "lora" else None,
            lora_alpha=config.lora_alpha,
            lora_targets=tuple(config.lora_targets),
            layers=request.layers,
        )
        self.model, self.warnings = build(
            config.arch,
            config.seq_len,
            options,
            device,
            frozen_dtype=half or torch.float32,
            seed=request.seed,
        )
        self.model.train()
        # the strategy's wrapping comes before the optimizer: fully_shard replaces the
        # parameters with sharded ones, and the optimizer must hold those
        self.wrapped = ranks.wrap(self.model) if ranks is not None else self.model
        if config.torch_compile:
            torch._dynamo.reset()  # a fresh cache per run: each run compiles its own model
            torch._dynamo.utils.counters.clear()  # graph breaks are counted per run
        compiling = compile_options(config)
        self.step_model: nn.Module = (
            # compiling a module returns an OptimizedModule, a Module (typed as a callable)
            cast(
                nn.Module,
                torch.compile(
                    self.wrapped, backend=compiling["backend"], mode=compiling.get("mode")
                ),
            )
            if config.torch_compile
            else self.wrapped
        )
        self.attention_backend = attention_backend(config, device, config.batch_size)
        if config.attention_impl == "flash" and flash_attn() is None:
            self.warnings.append(NO_FLASH_ATTN)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(config.optimizer, trainable, config.lr)
        warmup = config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        # a disabled autocast still needs a dtype the device's autocast accepts
        self.autocast = torch.autocast(
            device.type, dtype=half or torch.bfloat16, enabled=half is not None
        )
        self.scaler = torch.amp.GradScaler(
            device.type, init_scale=INITIAL_LOSS_SCALE, enabled=config.precision == "fp16"
        )
        # the loss scale after each step, on the device (no sync): a drop is a skipped step
        self.scales: list[torch.Tensor] = []
        self.backlog, self.drain_steps = prefetch_backlog(config)
        total_steps = request.warmup + MAX_EXTRA_WARMUP + self.drain_steps + request.steps
        if ranks is not None:
            total_steps += COMPUTE_ONLY_STEPS + 1
        samples = total_steps * config.grad_accum_steps * config.batch_size
        # every rank builds the same weights (seed) but reads its own samples
        data_seed = request.seed + (ranks.rank if ranks is not None else 0)
        self.loader = make_loader(
            config, config.arch.vocab, samples, request.sample_cost_s, device, data_seed
        )
        self.batches: Iterator[torch.Tensor] = iter(self.loader)

    def step(self, zero_grad: bool = True) -> tuple[torch.Tensor, int]:
        """One optimizer step over ``grad_accum_steps`` micro-batches: (mean loss, tokens
        across all ranks). ``zero_grad=False`` keeps the gradients for the next step's
        optimizer (the compute-only steps, where FSDP leaves the sharded ones unset)."""
        accum = self.config.grad_accum_steps
        total = torch.zeros((), device=self.device)
        tokens = 0
        for index in range(accum):
            batch = next(self.batches).to(self.device, non_blocking=True)  # (B, T+1)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            syncing = (
                self.ranks.accumulating(self.wrapped)
                if self.ranks is not None and index < accum - 1
                else contextlib.nullcontext()
            )
            with syncing:
                with self.autocast:
                    loss = self.step_model(inputs, targets)
                self.scaler.scale(loss / accum).backward()
            total += loss.detach()
            tokens += inputs.numel()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        scale = loss_scale(self.scaler)
        if scale is not None:
            self.scales.append(scale)
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total / accum, tokens * (self.ranks.world if self.ranks is not None else 1)

    @property
    def layers(self) -> int:
        return len(self.model.blocks)

    def skipped(self, start: int = 0) -> int:
        """Optimizer steps from the ``start``-th on that GradScaler skipped."""
        return skipped_steps(self.scales, start)


def prefetch_backlog(config: WorkloadConfig) -> tuple[int, int]:
    """(batches the DataLoader's workers hold ready, untimed steps that consume them): torch's
    DataLoader keeps ``prefetch_factor`` batches per worker in flight (default 2, torch
    2.4-2.13 torch/utils/data/dataloader.py). At least one drain step runs even without
    workers, so that the device queue, emptied by the sync that ends warmup, is full again
    when the first window opens."""
    workers = config.dataloader_workers
    backlog = workers * (config.dataloader_prefetch_factor or 2) if workers else 0
    return backlog, max(1, math.ceil(backlog / config.grad_accum_steps))


def loss_scale(scaler: torch.amp.GradScaler | None) -> torch.Tensor | None:
    """GradScaler's loss scale after a step, kept on the device (no sync); None without fp16
    loss scaling. torch/amp/grad_scaler.py (2.4-2.13): ``_scale`` is the tensor ``get_scale()``
    reads with a sync; a clone keeps this step's value."""
    if scaler is None or not scaler.is_enabled() or scaler._scale is None:
        return None
    return scaler._scale.detach().clone()


def skipped_steps(scales: list[torch.Tensor], start: int = 0) -> int:
    """Optimizer steps from the ``start``-th on that GradScaler skipped, given the loss scale
    after every step: inf/NaN gradients lower the scale and skip the step; growth only ever
    raises it. The first step is compared with GradScaler's initial scale."""
    if len(scales) <= max(start, 0):
        return 0
    values = torch.stack(scales).float().cpu().tolist()
    previous = [INITIAL_LOSS_SCALE, *values]
    return sum(1 for i in range(start, len(values)) if values[i] < previous[i])


def timed_phase_notes(config: WorkloadConfig, steps: int, backlog: int, skipped: int) -> list[str]:
    """What makes the timed windows read faster than the job runs: fp16 steps GradScaler
    skipped inside them (cheaper than real ones), and a timed phase so short beside the
    prefetch backlog that a data stall may not show."""
    notes = []
    if skipped:
        notes.append(
            f"GradScaler skipped {skipped} of the {steps} timed fp16 optimizer steps "
            "(overflowing gradients): skipped steps are cheaper, so tokens/s is overstated"
        )
    timed_batches = steps * config.grad_accum_steps
    if backlog and timed_batches < 2 * backlog:
        notes.append(
            f"the timed phase ({timed_batches} batches) is short beside the DataLoader's "
            f"prefetch backlog ({backlog} batches): a data stall may not show; time more steps"
        )
    return notes


def measure(
    request: RunRequest,
    device: torch.device,
    hook: StepHook | None = None,
    ranks: Ranks | None = None,
) -> Measurement:
    """Train ``request.config`` for warmup + timed steps on ``device`` and time it.

    A config with ``world_size`` above one is launched as that many ranks
    (``runner/distributed.py``), each of which comes back here with its ``ranks``.
    Raises UnsupportedConfig when the device cannot run the config, Diverged when a
    loss is not finite, ValueError for a config no run can start from, and
    lets torch.OutOfMemoryError through for the worker to report as ``oom``.
    """
    config = request.config
    _check_runnable(config)
    reason = unsupported_reason(config, device)
    if reason:
        raise UnsupportedConfig(reason)
    if config.world_size > 1 and ranks is None:
        from pytest_goblin.runner.distributed import launch

        return launch(request, device)
    request, notes = required_warmup(request)
    notes += _set_matmul_precision(config.precision)
    memory = _PeakMemory(device)
    memory.reset()
    notes += memory.start_notes()
    trainer = _Trainer(request, device, ranks)
    trainer.warnings.extend(notes)
    return _timed_run(trainer, request, memory, hook)


def required_warmup(request: RunRequest) -> tuple[RunRequest, list[str]]:
    """``request`` with at least one warmup step where compiling (torch.compile) or
    TunableOp's tuning happens in the first step, which must not be timed; and what to say."""
    if request.warmup >= 1 or not (request.config.torch_compile or tunableop_enabled()):
        return request, []
    notes = []
    if tunableop_enabled():
        notes.append(
            "TunableOp tunes each new GEMM shape on first use: warmup raised to 1 step so "
            "that the tuning is not timed"
        )
    return replace(request, warmup=1), notes


def _settled(step_times: list[float]) -> bool:
    """Whether the last two warmup steps took the same time, within STABLE_STEP_TOLERANCE."""
    if len(step_times) < 2:
        return False
    a, b = step_times[-2:]
    return abs(a - b) <= STABLE_STEP_TOLERANCE * min(a, b)


def extra_warmup(device: torch.device) -> int:
    """Warmup steps a run on ``device`` may add while it settles (the cap either engine
    sizes its data and step count for)."""
    return MAX_EXTRA_WARMUP if device.type == "cuda" else CPU_EXTRA_WARMUP


class Warmup:
    """When warmup ends: after the steps asked for, and more (up to ``extra_warmup``) until
    two consecutive step times agree and no fp16 step is being skipped, so that boost
    clocks, allocator growth, autotuning and GradScaler's first overflows all end inside
    warmup, not in window 0. A warmup of 0 asked for explicitly is honoured. Both engines
    feed it each warmup step's time (synced) as the step ends: the native loop, and the hf
    engine's Trainer callback."""

    def __init__(self, asked: int, device: torch.device) -> None:
        self.asked = asked
        self.extra = extra_warmup(device)
        self.step_times: list[float] = []
        self.settled = asked == 0
        self.skipping = False

    @property
    def steps(self) -> int:
        return len(self.step_times)

    def done(self) -> bool:
        """Whether warmup is over (no more warmup steps run)."""
        steps = self.steps
        return steps >= self.asked and (self.settled or steps >= self.asked + self.extra)

    def record(
        self, seconds: float, skipping: bool, agree: Callable[[bool], bool] | None = None
    ) -> None:
        """One warmup step took ``seconds``; ``skipping``: GradScaler skipped it. ``agree``
        gives every rank rank 0's verdict (the step count must match across ranks)."""
        self.step_times.append(seconds)
        self.skipping = skipping
        if self.steps >= self.asked:
            self.settled = _settled(self.step_times) and not skipping
            if agree is not None:
                self.settled = agree(self.settled)

    def notes(self) -> list[str]:
        """That warmup ended at its cap without settling, where it could be extended."""
        if self.settled or not self.extra:
            return []
        last = ", ".join(f"{t * 1e3:.1f}" for t in self.step_times[-2:])
        return [
            f"warmup did not settle in {self.steps} steps (last step times {last} ms"
            + (", fp16 steps still skipped" if self.skipping else "")
            + "): early windows may differ from later ones"
        ]


def _warm_up(
    trainer: _Trainer, request: RunRequest, hook: StepHook | None, losses: list[torch.Tensor]
) -> tuple[int, list[str]]:
    """Run the warmup steps until ``Warmup`` says it is over. Returns the steps run and what
    did not settle."""
    warmup = Warmup(request.warmup, trainer.device)
    clock = _Clock(trainer.device)
    agree = trainer.ranks.agree if trainer.ranks is not None else None
    while not warmup.done():
        if hook:
            hook(warmup.steps, trainer.model)
        start = time.perf_counter()
        losses.append(trainer.step()[0])
        clock.sync()
        seconds = time.perf_counter() - start
        warmup.record(seconds, trainer.skipped(len(trainer.scales) - 1) > 0, agree)
    return warmup.steps, warmup.notes()


def _timed_run(
    trainer: _Trainer, request: RunRequest, memory: _PeakMemory, hook: StepHook | None
) -> Measurement:
    clock = _Clock(trainer.device)
    losses: list[torch.Tensor] = []
    warmup_start = time.perf_counter()
    warmup, notes = _warm_up(trainer, request, hook, losses)
    clock.sync()
    warmup_s = time.perf_counter() - warmup_start
    index = warmup
    # untimed, unsynced: the batches prefetched during warmup are consumed here, and the
    # device queue the sync above emptied is full again when the first window opens
    for _ in range(trainer.drain_steps):
        if hook:
            hook(index, trainer.model)
        losses.append(trainer.step()[0])
        index += 1
    timed_from = len(trainer.scales)
    sizes = window_sizes(request.steps)
    window_tokens = []
    memory.sample()
    readings = [telemetry(trainer.device)]
    clock.mark()
    for size in sizes:
        tokens = 0
        for _ in range(size):
            if hook:
                hook(index, trainer.model)
            loss, step_tokens = trainer.step()
            losses.append(loss)
            tokens += step_tokens
            index += 1
        clock.mark()
        memory.sample()
        readings.append(telemetry(trainer.device))
        window_tokens.append(tokens)
    seconds = clock.intervals()
    values = torch.stack(losses).float().cpu().tolist()
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise Diverged(f"the loss is {values[bad]} at step {bad + 1}: training diverged")
    skipped = trainer.skipped(timed_from)
    notes += timed_phase_notes(trainer.config, request.steps, trainer.backlog, skipped)
    peak, reserved = memory.peak_gb(), memory.reserved_gb()  # before the compute-only steps
    rank_peaks: list[float] = []
    comm_share = None
    if trainer.ranks is not None:
        compute_s = _compute_only(trainer, min(request.steps, COMPUTE_ONLY_STEPS))
        gathered = trainer.ranks.gather([peak, compute_s])
        if gathered is not None:  # rank 0: the run's figures
            rank_peaks = [values[0] for values in gathered]
            peak = max(rank_peaks)  # the rank that runs out of memory first
            step_s = sum(seconds) / request.steps
            slowest = max(values[1] for values in gathered)  # every step waits for it
            comm_share = min(1.0, max(0.0, 1.0 - slowest / step_s))
    compile_s = None
    if trainer.config.torch_compile:
        compile_s = max(0.0, warmup_s - warmup * sum(seconds) / request.steps)
        notes += compile_notes()
    return Measurement(
        layers=trainer.layers,
        warmup_steps=warmup,
        window_steps=sizes,
        window_seconds=seconds,
        window_tokens=window_tokens,
        losses=values,
        peak_memory_gb=peak,
        compile_time_s=compile_s,
        warnings=[*trainer.warnings, *notes],
        drain_steps=trainer.drain_steps,
        peak_reserved_gb=reserved,
        peak_device_gb=memory.device_gb,
        attention_backend=trainer.attention_backend,
        skipped_steps=skipped,
        window_telemetry=readings if any(readings) else [],
        world_size=trainer.ranks.world if trainer.ranks is not None else 1,
        rank_peak_memory_gb=rank_peaks,
        comm_share=comm_share,
    )


def _compute_only(trainer: _Trainer, steps: int) -> float:
    """Mean seconds of this rank's step with gradient synchronisation skipped: DDP under
    ``no_sync`` (no all-reduce), FSDP with gradient sync and resharding off (after one
    untimed step that gathers the parameters, no all-gather or reduce-scatter). The
    gradients are kept (``zero_grad=False``) so that the optimizer does the work of a real
    step. Full step time minus this is the communication the step does not overlap.
    """
    assert trainer.ranks is not None
    clock = _Clock(trainer.device)
    with trainer.ranks.compute_only(trainer.wrapped):
        trainer.step(zero_grad=False)  # untimed
        clock.sync()
        clock.mark()
        for _ in range(steps):
            trainer.step(zero_grad=False)
        clock.mark()
    return sum(clock.intervals()) / steps


def reset_compiled() -> None:
    """Drop Dynamo's caches after a compiled run: they hold its graphs, and through them its
    model, so the next run's peak would include them."""
    torch._dynamo.reset()


def release_memory(device: torch.device) -> None:
    """Give cached device memory back, so that the next run (or another worker) starts
    clean; the worker calls it after every request, once a failed run's frames are gone."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
