"""One measured run, inside the worker: build the workload's model, train it, time it.

The training step is the one a Hugging Face Trainer runs for the config:
micro-batches from a DataLoader, autocast for fp16/bf16 (fp16 with a
GradScaler), gradient accumulation, the optimizer step and the learning-rate
schedule. Warmup steps come first and are not timed (with torch.compile they
hold the compilation, reported on its own); then the timed steps run in
windows whose boundaries are CUDA events on a GPU (no host sync inside a
window) or ``perf_counter`` readings on the CPU. Losses stay on the device
until the run ends, so that recording them costs no sync per step.

A config this device cannot run is refused with the reason
(``unsupported_reason``), never silently changed into something else.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pytest_goblin.runner.data import make_loader
from pytest_goblin.runner.measurement import Measurement
from pytest_goblin.runner.model import ModelOptions, build
from pytest_goblin.runner.optimizers import make_optimizer
from pytest_goblin.runner.optimizers import unsupported_reason as optimizer_reason
from pytest_goblin.schemas import WorkloadConfig

HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_WINDOWS = 5
"""Timed steps are split into up to this many windows, one tokens/s sample each."""

COMPILE_BACKEND = "inductor"
"""torch.compile's default backend, what ``torch_compile: true`` means in a job. Tests
swap in ``eager`` to check the compile path without a minute of C++ builds."""

StepHook = Callable[[int, nn.Module], None]
"""Called before every step with its index (warmup included) and the model: the test hook."""


class Unsupported(Exception):
    """This device cannot run the config; the message says why."""


class Diverged(Exception):
    """The loss stopped being finite: the run measured a broken training step."""


@dataclass(frozen=True)
class RunRequest:
    config: WorkloadConfig
    steps: int  # timed optimizer steps
    warmup: int  # untimed steps before them
    sample_cost_s: float  # host CPU time per sample (stands in for tokenisation)
    layers: int | None = None  # decoder blocks to build; None: the architecture's
    seed: int = 0


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
    if config.world_size > 1:
        return (
            f"world_size {config.world_size} ({config.strategy}) needs {config.world_size} "
            "devices; the torch runner measures one"
        )
    reason = optimizer_reason(config.optimizer)
    if reason:
        return reason
    if config.attention_impl == "flash":
        return _flash_reason(config, device)
    return None


def _flash_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Whether SDPA's flash backend runs this config's attention, forward and backward."""
    if device.type == "cpu":
        return "flash attention needs a ROCm or CUDA GPU; the CPU has no flash-attention kernels"
    if config.model is None:
        return None  # the run itself says how to give an architecture
    arch = config.model
    dtype = HALF_DTYPES.get(config.precision, torch.float32)
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


def _check_runnable(config: WorkloadConfig) -> None:
    """Values a run cannot start from are errors (not skips): they say what to set."""
    if config.precision == "unknown":
        raise ValueError("precision is unknown: the torch runner needs fp32, tf32, fp16 or bf16")
    if config.attention_impl == "unknown":
        raise ValueError("attention_impl is unknown: the torch runner needs eager, sdpa or flash")
    config.arch  # noqa: B018  # raises the ValueError that says how to give an architecture


def _set_matmul_precision(precision: str) -> None:
    """TF32 matmuls for tf32 only; set on every run, since a worker runs many configs."""
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")


class _PeakMemory:
    """Peak device memory of one run: allocated tensors on a GPU, resident set on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            # Linux: writing 5 resets the process's peak RSS (VmHWM); see proc(5)
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")

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
        self.marks: list[torch.cuda.Event | float] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self) -> None:
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        self.sync()
        pairs = zip(self.marks, self.marks[1:])
        if self.device.type == "cuda":
            # events on a GPU: elapsed_time is in milliseconds
            return [a.elapsed_time(b) / 1e3 for a, b in pairs]  # type: ignore[union-attr]
        return [b - a for a, b in pairs]  # type: ignore[operator]  # floats on the CPU


def window_sizes(steps: int) -> list[int]:
    """``steps`` split into up to MAX_WINDOWS windows whose sizes differ by at most one."""
    count = min(steps, MAX_WINDOWS)
    return [steps // count + (1 if i < steps % count else 0) for i in range(count)]


class _Trainer:
    """The model, optimizer and data of one run, and its training step."""

    def __init__(self, request: RunRequest, device: torch.device) -> None:
        config = request.config
        self.config = config
        self.device = device
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
        if config.torch_compile:
            torch._dynamo.reset()  # a fresh cache per run: each run compiles its own model
        self.step_model: nn.Module = (
            torch.compile(self.model, backend=COMPILE_BACKEND)
            if config.torch_compile
            else self.model
        )
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
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
        total_steps = request.warmup + request.steps
        samples = total_steps * config.grad_accum_steps * config.batch_size
        self.loader = make_loader(
            config, config.arch.vocab, samples, request.sample_cost_s, device, request.seed
        )
        self.batches: Iterator[torch.Tensor] = iter(self.loader)

    def step(self) -> tuple[torch.Tensor, int]:
        """One optimizer step over ``grad_accum_steps`` micro-batches: (mean loss, tokens)."""
        accum = self.config.grad_accum_steps
        total = torch.zeros((), device=self.device)
        tokens = 0
        for _ in range(accum):
            batch = next(self.batches).to(self.device, non_blocking=True)  # (B, T+1)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            with self.autocast:
                loss = self.step_model(inputs, targets)
            self.scaler.scale(loss / accum).backward()
            total += loss.detach()
            tokens += inputs.numel()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total / accum, tokens

    @property
    def layers(self) -> int:
        return len(self.model.blocks)


def measure(request: RunRequest, device: torch.device, hook: StepHook | None = None) -> Measurement:
    """Train ``request.config`` for warmup + timed steps on ``device`` and time it.

    Raises Unsupported when the device cannot run the config, Diverged when a
    loss is not finite, ValueError for a config no run can start from, and
    lets torch.OutOfMemoryError through for the worker to report as ``oom``.
    """
    config = request.config
    _check_runnable(config)
    reason = unsupported_reason(config, device)
    if reason:
        raise Unsupported(reason)
    if config.torch_compile and request.warmup < 1:
        request = replace(request, warmup=1)  # compilation happens in a step never timed
    _set_matmul_precision(config.precision)
    memory = _PeakMemory(device)
    memory.reset()
    return _timed_run(_Trainer(request, device), request, memory, hook)


def _timed_run(
    trainer: _Trainer, request: RunRequest, memory: _PeakMemory, hook: StepHook | None
) -> Measurement:
    clock = _Clock(trainer.device)
    warmup = request.warmup
    losses: list[torch.Tensor] = []
    index = 0
    warmup_start = time.perf_counter()
    for _ in range(warmup):
        if hook:
            hook(index, trainer.model)
        losses.append(trainer.step()[0])
        index += 1
    clock.sync()
    warmup_s = time.perf_counter() - warmup_start
    sizes = window_sizes(request.steps)
    window_tokens = []
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
        window_tokens.append(tokens)
    seconds = clock.intervals()
    values = torch.stack(losses).float().cpu().tolist()
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise Diverged(f"the loss is {values[bad]} at step {bad + 1}: training diverged")
    compile_s = None
    if trainer.config.torch_compile:
        compile_s = max(0.0, warmup_s - warmup * sum(seconds) / request.steps)
    return Measurement(
        layers=trainer.layers,
        warmup_steps=warmup,
        window_steps=sizes,
        window_seconds=seconds,
        window_tokens=window_tokens,
        losses=values,
        peak_memory_gb=memory.peak_gb(),
        compile_time_s=compile_s,
        warnings=trainer.warnings,
    )


def release_memory(device: torch.device) -> None:
    """Give cached device memory back, so that the next run (or another worker) starts
    clean; the worker calls it after every request, once a failed run's frames are gone."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
