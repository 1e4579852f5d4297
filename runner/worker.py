"""The device worker: a subprocess that owns one device and runs measurements on it.

``python -m pytest_goblin.runner.worker SELECTOR PARENT_PID`` detects the device,
writes one ``hello`` line, then answers one JSON line per request line on stdin:

    {"op": "check", "config": {...}}                      -> {"ok": true, "reason": str | null}
    {"op": "run", "config": {...}, "steps": 50, "warmup": 3,
     "sample_cost_s": 0.002, "layers": null}              -> {"ok": true, "measurement": {...}}
    {"op": "shutdown"}                                    -> (exits)

A failed request answers ``{"ok": false, "kind": KIND, "message": ...}`` with KIND
``unsupported`` (the item is skipped), ``oom``, ``diverged`` or ``error``; the
worker lives on. The protocol owns the original stdout: anything else printing
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
"""Test hook: ``oom``, ``crash``, ``hang`` or ``nan`` makes runs fail that way at their
second step; ``sleep=SECONDS`` slows every step by that much (a known slowdown for the
verdict benchmarks); ``KIND:FIELD=VALUE`` (e.g. ``crash:batch_size=3``) only for configs
whose FIELD has that VALUE."""

FAULT_STEP = 1


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this worker when pytest dies, however it dies."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _fault_hook(config: WorkloadConfig) -> StepHook | None:
    """The step hook PYTEST_GOBLIN_FAULT asks for, or None (the normal case)."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    kind, _, condition = spec.partition(":")
    if condition:
        field, _, value = condition.partition("=")
        if str(config.model_dump().get(field)) != value:
            return None

    def hook(step: int, model: Any) -> None:
        import torch

        if kind.startswith("sleep="):
            time.sleep(float(kind.removeprefix("sleep=")))
            return
        if step != FAULT_STEP:
            return
        if kind == "oom":
            raise torch.OutOfMemoryError(f"out of memory injected by {FAULT_ENV}")
        if kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            threading.Event().wait()
        if kind == "nan":
            with torch.no_grad():
                model.embed.weight.fill_(float("nan"))

    return hook


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _handle(request: dict[str, Any], detected: Detected) -> dict[str, Any]:
    import torch

    from pytest_goblin.runner.training import (
        Diverged,
        RunRequest,
        Unsupported,
        measure,
        unsupported_reason,
    )
    from pytest_goblin.schemas import WorkloadConfig

    try:
        config = WorkloadConfig.model_validate(request["config"])
        if request["op"] == "check":
            return {"ok": True, "reason": unsupported_reason(config, detected.device)}
        run = RunRequest(
            config=config,
            steps=request["steps"],
            warmup=request["warmup"],
            sample_cost_s=request["sample_cost_s"],
            layers=request.get("layers"),
        )
        measurement = measure(run, detected.device, _fault_hook(config))
        return {"ok": True, "measurement": asdict(measurement)}
    except Unsupported as exc:
        return {"ok": False, "kind": "unsupported", "message": str(exc)}
    except (torch.OutOfMemoryError, MemoryError) as exc:
        return {
            "ok": False,
            "kind": "oom",
            "message": f"out of memory on {detected.info.name}: {_first_line(exc)}",
        }
    except Diverged as exc:
        return {"ok": False, "kind": "diverged", "message": str(exc)}
    except Exception as exc:
        return {"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}


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


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _die_with_parent(int(argv[2]))
    try:
        detected = _detect(argv[1])
    except RuntimeError as exc:
        _send(protocol, {"ok": False, "kind": "error", "message": str(exc)})
        return 1
    from pytest_goblin.runner.training import release_memory

    info = detected.info
    _send(protocol, {"ok": True, "info": info.model_dump(mode="json"), "lock_id": detected.lock_id})
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
        release_memory(detected.device)
        _send(protocol, response)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
