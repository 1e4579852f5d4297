"""Validation of the measured path on one real GPU (ROCm or CUDA), in under 8 minutes.

What no CPU test can show, printed as ``[section] key: value`` lines and written to
``$OUT/gpu_validate.json`` (``OUT`` defaults to the temp directory):

- identity: the properties the device reports, the catalogue key they resolve to, the
  peak the runner holds MFU against, and a measured bf16 GEMM beside that peak;
- topology: the GPUs this process can open (render nodes) and the APUs left out, the
  physical package its lock is named after, the NUMA CPUs a worker binds to, the lock
  directory, and whether the installed bitsandbytes has this platform's library;
- attention: the kernel each ``attention_impl`` gets for a typical shape (the SDPA backend,
  or the flash-attn package for "flash" when it is installed), and the step time of each;
- compile: graph breaks of the native model under ``torch.compile``;
- windows: window 0 against the median window of one run;
- drift: six identical runs back to back, with clock, power and temperature per window;
- backlog: a data-bound config with and without DataLoader workers;
- memory: allocated, reserved and device-level peaks, and what a compiled run leaves;
- fp16: optimizer steps GradScaler skipped inside the timed windows;
- tunableop: where a worker's TunableOp results file goes.

Nothing here changes device settings (clocks, power caps, partitions). Run it from the
repository root with the package installed: ``python benchmarks/gpu_validate.py``; the
``benchmarks/gpu_check.sh`` section calls it with a time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pytest_goblin.catalogue.devices import resolve_identity
from pytest_goblin.runner import bitsandbytes_build, gpu_topology, training
from pytest_goblin.runner.detect import detect
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.measurement import catalogue_spec, run_metrics
from pytest_goblin.runner.model import flash_attn
from pytest_goblin.runner.options import MeasureOptions, parse_selector
from pytest_goblin.runner.visible import installed
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

BUDGET_S = float(os.environ.get("GPU_VALIDATE_BUDGET_S", "420"))
OUT = Path(os.environ.get("OUT") or tempfile.gettempdir())
START = time.monotonic()
RESULTS: dict[str, Any] = {}
MODEL = {"layers": 4, "hidden": 2048, "intermediate": 5632, "heads": 16, "kv_heads": 4,
         "vocab": 32000}  # fmt: skip


def record(section: str, key: str, value: Any) -> None:
    RESULTS[f"{section}.{key}"] = value
    print(f"  [{section}] {key}: {value}", flush=True)


@contextlib.contextmanager
def section(name: str, title: str) -> Iterator[bool]:
    """One check: skipped when the budget is nearly spent; an error is recorded, and the
    next check runs."""
    elapsed = time.monotonic() - START
    print(f"\n== {name}: {title} (t={elapsed:.0f} s)", flush=True)
    if BUDGET_S - elapsed < 20:
        record(name, "skipped", "time budget spent")
        yield False
        return
    began = time.monotonic()
    try:
        yield True
    except Exception as exc:  # one failed check must not hide the others
        record(name, "error", f"{type(exc).__name__}: {str(exc).strip()[:300]}")
    finally:
        record(name, "seconds", round(time.monotonic() - began, 1))


def config(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": MODEL,
        "batch_size": 4,
        "seq_len": 2048,
        "precision": "bf16",
        "attention_impl": "sdpa",
        "optimizer": "adamw_torch_fused",
        "lr": 1e-4,
        "dataloader_workers": 2,
    }
    return WorkloadConfig(**(values | fields))


def measure(cfg: WorkloadConfig, steps: int = 10, warmup: int = 3, cost_s: float = 0.0) -> Any:
    request = training.RunRequest(cfg, steps=steps, warmup=warmup, sample_cost_s=cost_s)
    result = training.measure(request, DEVICE)
    training.reset_compiled()
    training.release_memory(DEVICE)
    return result


def gemm_tflops(n: int = 8192, iters: int = 30) -> float:
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (begin.elapsed_time(end) / 1e3) / 1e12


if not torch.cuda.is_available():
    build = (
        f"HIP {torch.version.hip}"
        if torch.version.hip
        else (f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build")
    )
    print(f"gpu_validate: skipped: torch {torch.__version__} ({build}) sees no ROCm or CUDA GPU")
    sys.exit(0)
FOUND = detect(parse_selector("auto"))
DEVICE = FOUND.device
INFO = FOUND.info

with section("identity", "who the device is, and its peak beside a measured GEMM") as go:
    if go:
        props = torch.cuda.get_device_properties(DEVICE)
        record("identity", "name", props.name)
        record("identity", "arch", INFO.arch)
        record("identity", "compute_units", INFO.compute_units)
        record("identity", "memory_gib", round(INFO.memory_gb or 0, 2))
        record("identity", "clock_mhz", INFO.clock_mhz)
        record("identity", "catalogue_key", INFO.catalogue_key)
        identity = resolve_identity(INFO)
        record("identity", "peak_of", identity.peak_of)
        record("identity", "peak_scale", round(identity.peak_scale, 4))
        record("identity", "notes", identity.notes)
        spec, _ = catalogue_spec(INFO)
        peak = spec.peak_tflops["bf16"] if spec else None
        measured = gemm_tflops()
        record("identity", "peak_bf16_tflops", peak)
        record("identity", "gemm_bf16_tflops", round(measured, 1))
        if peak:
            record("identity", "gemm_over_peak", round(measured / peak, 3))
        record("identity", "telemetry_now", training.telemetry(DEVICE))

with section("topology", "GPUs that count, the package lock, NUMA CPUs, lock directory") as go:
    if go:
        nodes = gpu_topology.read_nodes()
        usable = gpu_topology.usable_gpus(nodes)
        record("topology", "kfd_gpu_nodes", sum(node.is_gpu for node in nodes))
        record("topology", "openable_gpu_nodes", [node.bdf for node in usable])
        record("topology", "apus_left_out", [node.bdf for node in usable if node.is_apu])
        record("topology", "xdist_gpus", installed())
        record("topology", "pci_bdf", FOUND.pci_bdf)
        record("topology", "lock_id", FOUND.lock_id)
        record("topology", "package_lock", FOUND.package_id)
        if FOUND.pci_bdf:
            record("topology", "numa_cpus", gpu_topology.numa_cpus(FOUND.pci_bdf))
        before = os.sched_getaffinity(0)
        record("topology", "bind_to_gpu", gpu_topology.bind_to_gpu(FOUND.pci_bdf))
        os.sched_setaffinity(0, before)  # the checks below run as a worker would not
        record("topology", "lock_dir", str(gpu_topology.lock_dir()))
        record("topology", "lock_dir_warning", gpu_topology.lock_dir_warning())
        record("topology", "bitsandbytes_rocm_check", bitsandbytes_build.installed_reason())

with section("attention", "the kernel each setting gets, and its step time") as go:
    if go:
        flash = flash_attn()
        record("attention", "flash_attn_package", flash[1] if flash else "not installed")
        for impl in ("eager", "sdpa", "flash"):
            cfg = config(attention_impl=impl, dataloader_workers=0)
            reason = training.unsupported_reason(cfg, DEVICE)
            if reason:
                record("attention", f"{impl}.unsupported", reason)
                continue
            run = measure(cfg, steps=6, warmup=2)
            record("attention", f"{impl}.backend", run.attention_backend)
            record("attention", f"{impl}.step_ms", round(run.step_time_s * 1e3, 2))

with section("compile", "graph breaks of the native model under torch.compile") as go:
    if go:
        from torch._dynamo.utils import counters

        counters.clear()
        run = measure(config(torch_compile=True, dataloader_workers=0), steps=4, warmup=2)
        record("compile", "graph_breaks", sum(counters["graph_break"].values()))
        record("compile", "break_reasons", list(counters["graph_break"])[:5])
        record("compile", "compile_time_s", round(run.compile_time_s or 0.0, 1))
        record("compile", "allocated_after_reset_gb",
               round(torch.cuda.memory_allocated(DEVICE) / 1e9, 3))  # fmt: skip

with section("windows", "window 0 against the median window") as go:
    if go:
        run = measure(config(dataloader_workers=0), steps=25, warmup=3)
        per_step = [s / n for s, n in zip(run.window_seconds, run.window_steps)]
        record("windows", "window_ms", [round(t * 1e3, 2) for t in per_step])
        record(
            "windows", "window0_over_median", round(per_step[0] / statistics.median(per_step), 4)
        )
        record("windows", "warmup_steps_run", run.warmup_steps)

with section("drift", "six identical runs: tokens/s, clocks, power, temperature") as go:
    if go:
        rates = []
        for i in range(6):
            run = measure(config(dataloader_workers=0), steps=10, warmup=3)
            metrics = run_metrics(config(), [run], INFO)
            rates.append(metrics.tokens_per_sec)
            record("drift", f"run{i}.tokens_per_sec", round(metrics.tokens_per_sec))
            record("drift", f"run{i}.telemetry", run.window_telemetry)
        record("drift", "max_over_min", round(max(rates) / min(rates), 4))

with section("backlog", "a data-bound config: what the prefetched backlog hides") as go:
    if go:
        cost = 0.02  # 20 ms of host work per sample: data-bound at batch 4
        slow = config(dataloader_workers=0, batch_size=4)
        fast = config(dataloader_workers=4, dataloader_prefetch_factor=4, batch_size=4)
        for name, cfg in (("workers0", slow), ("workers4", fast)):
            run = measure(cfg, steps=12, warmup=2, cost_s=cost)
            record("backlog", f"{name}.drain_steps", run.drain_steps)
            record("backlog", f"{name}.window_ms",
                   [round(s / n * 1e3, 1) for s, n in zip(run.window_seconds, run.window_steps)])  # fmt: skip

with section("memory", "allocated, reserved and device-level peaks") as go:
    if go:
        run = measure(config(dataloader_workers=0), steps=4, warmup=2)
        record("memory", "allocated_gb", round(run.peak_memory_gb, 2))
        record("memory", "reserved_gb", round(run.peak_reserved_gb or 0, 2))
        record("memory", "device_gb", round(run.peak_device_gb or 0, 2))
        record("memory", "left_allocated_gb", round(torch.cuda.memory_allocated(DEVICE) / 1e9, 3))

with section("fp16", "optimizer steps GradScaler skipped") as go:
    if go:
        run = measure(config(precision="fp16", dataloader_workers=0), steps=10, warmup=1)
        record("fp16", "skipped_timed_steps", run.skipped_steps)
        record("fp16", "warmup_steps_run", run.warmup_steps)
        record("fp16", "warnings", [w for w in run.warnings if "GradScaler" in w or "warmup" in w])

with section("tunableop", "where a worker's TunableOp results go") as go:
    if go:
        session = DeviceSession("mi300x", MeasureOptions(device="auto", warmup=1, timeout_s=300))
        try:
            runner = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
            small = config(model=MODEL | {"layers": 1}, dataloader_workers=0, batch_size=1,
                           seq_len=512, env_vars={"PYTORCH_TUNABLEOP_ENABLED": "1"})  # fmt: skip
            runner.run(small, 2)  # type: ignore[union-attr]
            pid = runner.device.worker_pid(small.env_vars)  # type: ignore[union-attr]
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            named = [v.decode() for v in environ if v.startswith(b"PYTORCH_TUNABLEOP_FILENAME")]
            record("tunableop", "worker_filename", named)
        finally:
            session.close()  # the worker writes its results as it exits
        left = sorted(map(str, Path.cwd().glob("tunableop_results*.csv")))
        record("tunableop", "files_in_working_directory", left)

OUT.mkdir(parents=True, exist_ok=True)
(OUT / "gpu_validate.json").write_text(json.dumps(RESULTS, indent=1, default=str))
print(f"\nwrote {OUT / 'gpu_validate.json'} in {time.monotonic() - START:.0f} s")
