"""The device worker: a subprocess that owns one device and runs measurements on it.

``python -m pytest_goblin.runner.worker SELECTOR PARENT_PID [ENGINE]`` detects the device
(and imports ENGINE's modules, ``runner/engines.py``),
writes one ``hello`` line, then answers one JSON line per request line on stdin:

    {"op": "check", "config": {...}, "engine": "hf"}      -> {"ok": true, "reason": str | null}
    {"op": "run", "config": {...}, "steps": 50, "warmup": 3,
     "sample_cost_s": 0.002, "layers": null, "engine": "hf"}
                                                          -> {"ok": true, "measurement": {...}}
    {"op": "claims", "config": {...}}                     -> {"ok": true, "claims": [str]}
    {"op": "shutdown"}                                    -> (exits)

``engine`` (``runner/engines.py``) picks the training stack that runs: ``hf`` or
``native`` (the default when a request names none).
``claims`` names the lock of each GPU a multi-rank run of the config takes (none on
the CPU), for the pytest side to hold while it runs.

A failed request answers ``{"ok": false, "kind": KIND, "message": ...}`` with KIND
``unsupported`` (the item is skipped), ``oom``, ``diverged`` or ``error``, and
``"fatal": true`` after a sticky device error (illegal address, device assert, ...), after
which the worker exits; otherwise it lives on. The protocol owns the original stdout: anything else printing
to stdout (a library, a C extension) is sent to stderr instead.

The workload's ``env_vars`` are in this process's environment from its start,
before torch initialises the device; a different set of variables gets a
different worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_goblin.runner.detect import Detected
    from pytest_goblin.runner.training import StepHook
    from pytest_goblin.schemas import WorkloadConfig

# torch is imported inside the functions: pytest's side imports this module for
# FAULT_ENV, and only the worker process needs torch.

FAULT_ENV = "PYTEST_GOBLIN_FAULT"
"""Test hook: ``oom``, ``blas-oom`` (a library's allocation failure), ``fatal`` (a sticky
device error), ``crash``, ``hang`` or ``nan`` makes runs fail that way at their second
step; ``sleep=SECONDS`` slows every step by that much (a known slowdown for the verdict
benchmarks; on a GPU a spin kernel in the stream, not a host sleep); ``KIND:FIELD=VALUE``
(e.g. ``crash:batch_size=3``) only for configs whose FIELD has that VALUE, or, in a
multi-rank run, only on one rank (``crash:rank=1``)."""

FAULT_STEP = 1


def die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this worker when pytest dies, however it dies."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def fault_hook(config: WorkloadConfig, rank: int | None = None) -> StepHook | None:
    """The step hook PYTEST_GOBLIN_FAULT asks for, or None (the normal case). In a
    multi-rank run (``runner/distributed.py``) the condition may name the ``rank``."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    kind, _, condition = spec.partition(":")
    if condition:
        field, _, value = condition.partition("=")
        values = {**config.model_dump(), "rank": rank}
        if str(values.get(field)) != value:
            return None

    def hook(step: int, model: Any) -> None:
        import torch

        if kind.startswith("sleep="):
            _sleep(float(kind.removeprefix("sleep=")), next(model.parameters()).device)
            return
        if step != FAULT_STEP:
            return
        if kind == "oom":
            raise torch.OutOfMemoryError(f"out of memory injected by {FAULT_ENV}")
        if kind == "blas-oom":  # how cuBLAS/hipBLAS report a failed allocation
            raise RuntimeError(
                f"CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle) "
                f"(injected by {FAULT_ENV})"
            )
        if kind == "fatal":  # a sticky device error, as torch raises it
            raise RuntimeError(
                f"CUDA error: an illegal memory access was encountered (injected by {FAULT_ENV})"
            )
        if kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            threading.Event().wait()
        if kind == "nan":
            with torch.no_grad():
                # the native decoder's embedding, or a transformers/PEFT model's
                embed = (
                    model.get_input_embeddings()
                    if hasattr(model, "get_input_embeddings")
                    else model.embed
                )
                embed.weight.fill_(float("nan"))

    return hook


OOM_MARKERS = (
    "out of memory",  # torch.OutOfMemoryError's "CUDA/HIP out of memory", hipErrorOutOfMemory
    "ErrorOutOfMemory",  # hipErrorOutOfMemory / cudaErrorMemoryAllocation by enum name
    "ErrorMemoryAllocation",
    "BLAS_STATUS_ALLOC_FAILED",  # CUBLAS_/HIPBLAS_STATUS_ALLOC_FAILED, raised as RuntimeError
    "CUDNN_STATUS_ALLOC_FAILED",
    "MIOPEN_STATUS_ALLOC_FAILED",
    "rocblas_status_memory_error",
)
"""Messages of out-of-memory failures that libraries raise as plain RuntimeErrors: cuBLAS
and hipBLAS handle creation and workspace allocation fail this way (torch 2.x
aten/src/ATen/cuda/Exceptions.h, TORCH_CUDABLAS_CHECK), so the type alone misses them."""

FATAL_MARKERS = (
    "illegal memory access",  # cudaErrorIllegalAddress, hipErrorIllegalAddress
    "illegal instruction",  # cudaErrorIllegalInstruction
    "misaligned address",  # cudaErrorMisalignedAddress
    "device-side assert",  # cudaErrorAssert, hipErrorAssert
    "unspecified launch failure",  # cudaErrorLaunchFailure, hipErrorLaunchFailure
    "uncorrectable ECC error",  # cudaErrorECCUncorrectable
    "memory access fault",  # HSA: "Memory access fault by GPU node-N ... page not present"
    "page fault",
    "hardware stack error",  # cudaErrorHardwareStackError
    "invalid program counter",  # cudaErrorInvalidPc
)
"""Errors that leave the device context unusable ("sticky": every later CUDA/HIP call
in the process fails the same way; CUDA Runtime API, cudaError enum, and HIP's
hipError_t, https://rocm.docs.amd.com/projects/HIP/en/latest/reference/error_codes.html).
After one, the worker answers and exits; the next run starts a fresh one."""


def failure_kind(exc: BaseException) -> tuple[str, bool]:
    """``(kind, fatal)`` of a failed run's exception: ``oom`` for out-of-memory by type or
    by message, else ``error``; fatal when the device context cannot be used again."""
    import torch

    text = str(exc)
    lowered = text.lower()
    fatal = any(marker.lower() in lowered for marker in FATAL_MARKERS)
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or any(
        marker.lower() in lowered for marker in OOM_MARKERS
    ):
        return "oom", fatal
    return "error", fatal


_SLEEP_CYCLES_PER_S: dict[int, float] = {}


def _sleep(seconds: float, device: Any) -> None:
    """Slow the step by ``seconds`` where the step runs: on a GPU a spin kernel in the
    stream (a host sleep would be absorbed by the queued kernels, and inject less than it
    says), on the CPU a host sleep.

    torch.cuda._sleep spins for clock64() cycles (aten/src/ATen/cuda/Sleep.cu; the shader
    clock, which boosts and throttles; wall_clock64() on gfx11), so its rate is measured
    once per device rather than taken from the properties.
    """
    import torch

    if device.type != "cuda":
        time.sleep(seconds)
        return
    index = device.index or 0
    if index not in _SLEEP_CYCLES_PER_S:
        probe = 20_000_000
        torch.cuda._sleep(1_000)  # loads the kernel
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(probe)
        end.record()
        end.synchronize()
        _SLEEP_CYCLES_PER_S[index] = probe / (start.elapsed_time(end) / 1e3)
    torch.cuda._sleep(int(seconds * _SLEEP_CYCLES_PER_S[index]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _handle(request: dict[str, Any], detected: Detected) -> dict[str, Any]:

    from pytest_goblin.errors import UnsupportedConfig
    from pytest_goblin.runner.engines import load_engine
    from pytest_goblin.runner.training import Diverged, RunRequest
    from pytest_goblin.schemas import WorkloadConfig

    try:
        config = WorkloadConfig.model_validate(request["config"])
        if request["op"] == "claims":  # the devices a multi-rank run takes (runner/distributed)
            from pytest_goblin.runner.distributed import claims

            return {"ok": True, "claims": claims(config, detected.device)}
        engine = load_engine(request.get("engine", "native"))
        if request["op"] == "check":
            return {"ok": True, "reason": engine.unsupported_reason(config, detected.device)}
        run = RunRequest(
            config=config,
            steps=request["steps"],
            warmup=request["warmup"],
            sample_cost_s=request["sample_cost_s"],
            layers=request.get("layers"),
        )
        measurement = engine.measure(run, detected.device, fault_hook(config))
        return {"ok": True, "measurement": asdict(measurement)}
    except UnsupportedConfig as exc:
        return {"ok": False, "kind": "unsupported", "message": str(exc)}
    except Diverged as exc:
        return {"ok": False, "kind": "diverged", "message": str(exc)}
    except (Exception, MemoryError) as exc:
        kind, fatal = failure_kind(exc)
        message = (
            f"out of memory on {detected.info.name}: {_first_line(exc)}"
            if kind == "oom"
            else f"{type(exc).__name__}: {exc}"
        )
        if fatal:
            message += " (a fatal device error: the worker exits, the next run starts a new one)"
        return {"ok": False, "kind": kind, "message": message, "fatal": fatal}


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _detect(selector: str) -> Detected:
    """The worker's device, or a RuntimeError whose message says why there is none."""
    try:
        from pytest_goblin.runner.detect import DeviceUnavailable, detect
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise RuntimeError(
            "the torch runner needs PyTorch: pip install 'pytest-goblin[torch]' "
            "(or a ROCm or CUDA build of torch)"
        ) from None
    # torch.optim imports torch._dynamo on first use (a second or more): pay for it here,
    # at start-up, rather than inside the first run's timeout
    import torch._dynamo  # noqa: F401

    from pytest_goblin.runner.options import parse_selector

    try:
        return detect(parse_selector(selector))
    except DeviceUnavailable as exc:
        raise RuntimeError(str(exc)) from None


def _place(detected: Detected) -> str | None:
    """Bind this worker (and the DataLoader workers it starts) to the CPUs of its GPU's
    NUMA node (``gpu_topology.bind_to_gpu``); returns the warning for its runs, if any."""
    if detected.device.type == "cpu":
        return None
    from pytest_goblin.runner import gpu_topology

    done, warning = gpu_topology.bind_to_gpu(detected.pci_bdf)
    print(f"CPU affinity: {done or warning}", file=sys.stderr, flush=True)
    return warning


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    die_with_parent(int(argv[2]))
    try:
        detected = _detect(argv[1])
    except RuntimeError as exc:
        _send(protocol, {"ok": False, "kind": "error", "message": str(exc)})
        return 1
    from pytest_goblin.runner.training import release_memory, reset_compiled

    if len(argv) > 3:  # the session's engine: importing transformers takes seconds
        from pytest_goblin.runner.engines import load_engine

        load_engine(argv[3])
    info = detected.info
    affinity_warning = _place(detected)
    hello = {"ok": True, "info": info.model_dump(mode="json"), "lock_id": detected.lock_id}
    _send(protocol, {**hello, "package_id": detected.package_id})
    # stderr is what a crash report shows: say what this worker is and what it was doing
    print(
        f"pytest-goblin worker {os.getpid()}: {info.name} ({info.kind}, torch "
        f"{info.torch_version})",
        file=sys.stderr,
        flush=True,
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "shutdown":
            break
        name = request["config"].get("name") or request["config"].get("model_name")
        details = {k: v for k, v in request.items() if k not in ("op", "config")}
        print(f"{request['op']}: {name} {details}", file=sys.stderr, flush=True)
        response = _handle(request, detected)
        if affinity_warning and "measurement" in response:
            response["measurement"]["warnings"].append(affinity_warning)
        if response.get("fatal"):
            # the device context is broken: anything more it did would fail the same way
            _send(protocol, response)
            return 3
        if request["config"].get("torch_compile"):
            reset_compiled()  # its graphs hold its model: not into the next run's peak
        release_memory(detected.device)
        _send(protocol, response)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
