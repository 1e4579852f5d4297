"""Multi-rank measured runs: ``world_size`` ranks started by torch's elastic launcher.

A workload with ``world_size: N`` is measured as N processes, one per device,
launched from the device worker by ``torch.distributed.launcher.api.elastic_launch``
(what ``torchrun --standalone`` runs: a c10d rendezvous on a free localhost port, no
restarts). Each rank trains the native decoder under its workload's ``strategy``:

- ``ddp`` (and ``single``, which a launcher with N ranks runs as DDP, as the Hugging
  Face Trainer does under torchrun): ``torch.nn.parallel.DistributedDataParallel``;
- ``fsdp``: FSDP2, ``torch.distributed.fsdp.fully_shard`` on every decoder block and
  then on the model (the layout torchtune and torchtitan use);
- ``deepspeed``: not run by this engine (skipped with the reason).

Collectives are torch.distributed's: gloo on the CPU, nccl on a GPU (RCCL in a ROCm
build of torch, under the same name). Every rank reads its own samples; rank 0 times the
windows as a single-device run does (a DDP or FSDP step ends when its collectives have,
so the ranks keep step), gathers every rank's peak memory and compute-only step time,
and returns the measurement; the launcher hands it back to the worker, which answers the
usual protocol line.

Exposed communication is measured, not modelled: after the timed windows each rank runs
up to ``COMPUTE_ONLY_STEPS`` more steps with gradient synchronisation skipped (DDP's
``no_sync``; FSDP2 with ``set_requires_gradient_sync(False)`` and resharding off, so no
all-gather or reduce-scatter runs after the first of them). ``comm_share`` is
``1 - slowest rank's compute-only step / full step``: the part of the step that waits on
communication the step does not hide behind compute.

Devices: a GPU run takes the first N devices visible to the worker; a CPU run counts one
device per core this process may run on (``os.sched_getaffinity``), gives each rank
``cores // N`` threads, and so refuses more ranks than cores. A failed rank ends the run:
the launcher stops the others, and the error names the rank and why it failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from pytest_goblin.errors import RunFailed, UnsupportedConfig
from pytest_goblin.runner.measurement import Measurement
from pytest_goblin.runner.options import SCRATCH_ENV
from pytest_goblin.schemas import WorkloadConfig

if TYPE_CHECKING:
    from pytest_goblin.runner.training import RunRequest

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
"""torch.distributed backend per device type; a ROCm build names RCCL ``nccl``."""

MEASURED_STRATEGIES = ("single", "ddp", "fsdp")


def device_count(device: torch.device) -> tuple[int, str]:
    """How many devices a multi-rank run on ``device``'s kind can claim, and what they are."""
    if device.type == "cuda":
        return torch.cuda.device_count(), "visible GPUs"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1, "CPU cores (one gloo rank per core)"


def unsupported_reason(config: WorkloadConfig, device: torch.device) -> str | None:
    """Why ``config``'s ranks cannot run on this runner (the item is skipped), or None."""
    n = config.world_size
    if config.strategy not in MEASURED_STRATEGIES:
        return (
            f"strategy {config.strategy} is not run by the native engine, which launches "
            "ddp and fsdp (FSDP2 fully_shard) through torch.distributed"
        )
    if not dist.is_available():
        return f"this torch build ({torch.__version__}) has no torch.distributed"
    backend = BACKENDS.get(device.type)
    if backend is None:
        return f"no torch.distributed backend for {device.type} devices"
    if backend == "nccl" and not dist.is_nccl_available():
        return f"this torch build ({torch.__version__}) has no NCCL/RCCL backend"
    count, what = device_count(device)
    if count < n:
        return (
            f"world_size {n} ({config.strategy}) needs {n} devices; this runner has {count} "
            f"{what}{_narrowed_by(device)}: --goblin-max-world-size {count} measures a "
            "shrunk run"
        )
    return None


def _narrowed_by(device: torch.device) -> str:
    """`` (CUDA_VISIBLE_DEVICES=3,0: …)`` where a visible-devices variable narrows the GPUs
    this worker sees: the reason a multi-rank run finds too few. On a pinned xdist worker
    the run's worker was given every GPU of the session (``visible.widened``)."""
    from pytest_goblin.runner.visible import UNPINNED, VARIABLES

    if device.type != "cuda":
        return ""
    narrowing = [f"{name}={os.environ[name]}" for name in VARIABLES if name in os.environ]
    if not narrowing:
        return ""
    pinned = (
        ": every GPU of the session, this pytest-xdist worker's first"
        if UNPINNED in os.environ
        else ""
    )
    return f" ({', '.join(narrowing)}{pinned})"


def claims(config: WorkloadConfig, device: torch.device) -> list[str]:
    """Lock names of the GPUs ``config``'s ranks take (the first ``world_size`` visible);
    none on the CPU, whose ranks run under the worker's own lock."""
    if device.type != "cuda" or config.world_size == 1:
        return []
    from pytest_goblin.runner.detect import gpu_lock_names

    return gpu_lock_names(config.world_size)


@dataclass
class TorchRanks:
    """One rank of a launched run: the strategy's wrapping and the measurement's few
    collectives (``training.Ranks``). ``find_unused_parameters`` and ``bucket_cap_mb`` are
    the workload's DDP settings, passed to ``DistributedDataParallel`` as the Hugging Face
    Trainer passes them (``bucket_cap_mb`` None: torch's default, 25 MiB with a 1 MiB first
    bucket, torch 2.13 ``torch/nn/parallel/distributed.py``)."""

    rank: int
    world: int
    strategy: str
    device: torch.device
    find_unused_parameters: bool = False
    bucket_cap_mb: int | None = None
    unsynced: bool = field(default=False, init=False)
    """Gradient synchronisation is off for good: the compute-only steps of an FSDP run."""

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.strategy == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh(self.device.type, (self.world,))
            for block in model.blocks:  # type: ignore[union-attr]  # the native Decoder's
                fully_shard(block, mesh=mesh)
            fully_shard(model, mesh=mesh)
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=ids,
            find_unused_parameters=self.find_unused_parameters,
            bucket_cap_mb=self.bucket_cap_mb,
        )

    def agree(self, flag: bool) -> bool:
        value = torch.tensor([1 if flag else 0], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    @contextlib.contextmanager
    def accumulating(self, wrapped: nn.Module) -> Iterator[None]:
        """A micro-batch before the last of an accumulation: its gradients are not
        synchronised, as the Hugging Face Trainer runs it (transformers v5.25.0
        ``trainer.py`` under accelerate's ``no_sync``: DDP's ``no_sync``, FSDP2's
        ``set_requires_gradient_sync(False)``, accelerate 1.x ``accelerator.py``)."""
        if self.unsynced:
            yield
            return
        if isinstance(wrapped, nn.parallel.DistributedDataParallel):
            with wrapped.no_sync():
                yield
            return
        from torch.distributed.fsdp import FSDPModule

        assert isinstance(wrapped, FSDPModule)
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)

    @contextlib.contextmanager
    def compute_only(self, wrapped: nn.Module) -> Iterator[None]:
        if isinstance(wrapped, nn.parallel.DistributedDataParallel):
            with wrapped.no_sync():
                yield
            return
        from torch.distributed.fsdp import FSDPModule

        assert isinstance(wrapped, FSDPModule)
        # the last steps of the run: the module is not used for training afterwards
        self.unsynced = True
        wrapped.set_requires_gradient_sync(False)
        wrapped.set_reshard_after_forward(False)
        wrapped.set_reshard_after_backward(False)
        yield

    def gather(self, values: list[float]) -> list[list[float]] | None:
        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(values, out, dst=0)
        return out


RankBody = Callable[[dict[str, Any], int], dict[str, Any] | None]
"""What one rank runs: (the launch payload, its rank) -> the measurement's JSON on rank 0."""


def launch(request: Any, device: torch.device, body: RankBody | None = None) -> Measurement:
    """Run ``request`` (a ``training.RunRequest``) as ``world_size`` ranks and return rank
    0's measurement; a failed rank raises what the worker reports for it. ``body`` trains
    one rank: the native decoder's (``_train``) unless an engine passes its own (the hf
    engine's Trainer, ``runner/hf_ranks.py``); a module-level function, since spawned
    ranks unpickle it."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    world = request.config.world_size
    cores, _ = device_count(torch.device("cpu"))
    # in the session's directory where the pytest side gave one: removed with the session
    # even when a timeout kills this worker before it can clean up
    scratch = os.environ.get(SCRATCH_ENV)
    with tempfile.TemporaryDirectory(prefix="pytest-goblin-ranks-", dir=scratch) as tmp:
        launch_config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=world,
            run_id=f"pytest-goblin-{uuid.uuid4().hex[:12]}",
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
            max_restarts=0,  # a failed rank fails the run: a restart would time it twice
            # on the CPU the ranks fork from the worker, which has imported torch (and
            # torch._dynamo, seconds on a busy host) already; a GPU worker has initialised
            # its device, which a forked child cannot use, so its ranks are spawned
            start_method="spawn" if device.type == "cuda" else "fork",
            logs_specs=DefaultLogsSpecs(log_dir=str(Path(tmp) / "logs")),
        )
        payload = {
            "config": request.config.model_dump(mode="json"),
            "steps": request.steps,
            "warmup": request.warmup,
            "sample_cost_s": request.sample_cost_s,
            "layers": request.layers,
            "seed": request.seed,
            "device_type": device.type,
            "threads": max(1, cores // world),
            "parent_pid": os.getpid(),
            "error_dir": tmp,
            "body": body or _train,
        }
        try:
            results = elastic_launch(launch_config, rank_main)(payload)
        except ChildFailedError as exc:
            raise _failure(exc, Path(tmp), world) from None
    return Measurement.from_json(results[0])


def rank_main(payload: dict[str, Any]) -> dict[str, Any] | None:
    """One rank (in a process the launcher spawned): train, time, and on rank 0 return the
    measurement. A failure is written where the launching worker reads it (its kind and
    message), then raised so that the launcher stops the other ranks."""
    from pytest_goblin.runner.worker import die_with_parent

    die_with_parent(payload["parent_pid"])  # the worker's kill leaves no rank behind
    rank = int(os.environ["RANK"])
    try:
        body: RankBody = payload["body"]
        return body(payload, rank)
    except BaseException as exc:
        record = {"kind": _kind(exc), "message": _first_line(exc), "time": time.time()}
        (Path(payload["error_dir"]) / f"rank{rank}.json").write_text(json.dumps(record))
        raise


def rank_device(payload: dict[str, Any]) -> torch.device:
    """This rank's device: on a GPU the launcher's ``LOCAL_RANK``-th, made current."""
    if payload["device_type"] == "cuda":
        local = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def rank_request(payload: dict[str, Any]) -> RunRequest:
    """The run every rank makes, as ``launch`` packed it."""
    from pytest_goblin.runner.training import RunRequest

    return RunRequest(
        config=WorkloadConfig.model_validate(payload["config"]),
        steps=payload["steps"],
        warmup=payload["warmup"],
        sample_cost_s=payload["sample_cost_s"],
        layers=payload["layers"],
        seed=payload["seed"],
    )


def _train(payload: dict[str, Any], rank: int) -> dict[str, Any] | None:
    from pytest_goblin.runner.training import measure
    from pytest_goblin.runner.worker import fault_hook

    world = int(os.environ["WORLD_SIZE"])
    device = rank_device(payload)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # the workload's own setting wins; otherwise the ranks share the cores evenly
        torch.set_num_threads(payload["threads"])
    dist.init_process_group(BACKENDS[device.type])
    try:
        request = rank_request(payload)
        config = request.config
        strategy = "ddp" if config.strategy == "single" else config.strategy
        ranks = TorchRanks(
            rank,
            world,
            strategy,
            device,
            find_unused_parameters=config.find_unused_parameters,
            bucket_cap_mb=config.ddp_bucket_cap_mb,
        )
        measurement = measure(request, device, fault_hook(config, rank), ranks)
    finally:
        dist.destroy_process_group()
    return asdict(measurement) if rank == 0 else None


def _kind(exc: BaseException) -> str:
    """The worker protocol's kind of a rank's failure."""
    from pytest_goblin.runner.training import Diverged
    from pytest_goblin.runner.worker import failure_kind

    if isinstance(exc, UnsupportedConfig):
        return "unsupported"
    if isinstance(exc, Diverged):
        return "diverged"
    return failure_kind(exc)[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


AFTER_A_PEER = (
    "connection reset by peer",  # gloo, when a peer's process is gone
    "connection closed by peer",
    "broken pipe",
    "remote process exited",  # ncclRemoteError
    "communicator was aborted",  # NCCL, once the process group is aborted
    "signalexception",  # torch.distributed.elastic: the launcher stopping this rank
)
"""Errors a rank raises because another rank failed: never the cause of a failed run."""


def _failure(exc: Any, error_dir: Path, world: int) -> Exception:
    """The error to raise for a failed launch: the rank that failed first, and how.

    The launcher reports one failed rank (the first it finds, in rank order), which may be
    a rank that failed only because a peer died: its error (a closed connection) follows
    from the other's. So the cause is, in order: the earliest error a rank wrote that is
    not a peer's consequence; a rank the launcher saw die without writing one (killed,
    crashed in native code), with its signal; a rank that wrote nothing at all.
    """
    from pytest_goblin.runner.training import Diverged

    written: dict[int, dict[str, Any]] = {}
    for path in error_dir.glob("rank*.json"):
        written[int(path.stem.removeprefix("rank"))] = json.loads(path.read_text())
    causes = [
        rank
        for rank, record in written.items()
        if not any(marker in record["message"].lower() for marker in AFTER_A_PEER)
    ]
    if causes:
        rank = min(causes, key=lambda r: written[r]["time"])
        kind = written[rank]["kind"]
        message = f"rank {rank} of {world}: {written[rank]['message']}"
        if kind == "unsupported":
            return UnsupportedConfig(message)
        if kind == "diverged":
            return Diverged(message)
        if kind == "oom":
            return torch.OutOfMemoryError(message)
        return RunFailed(message)
    silent = sorted(rank for rank in exc.failures if rank not in written)
    if silent:
        rank = silent[0]
        failure = exc.failures[rank]
        how = (
            f"killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode}"
        )
        return RunFailed(f"rank {rank} of {world} (pid {failure.pid}) died: {how}")
    unreported = sorted(rank for rank in range(world) if rank not in written)
    if unreported and written:
        first = min(written, key=lambda r: written[r]["time"])
        return RunFailed(
            f"rank {unreported[0]} of {world} died without reporting an error (killed, or "
            f"crashed in native code); rank {first} then failed: {written[first]['message']}"
        )
    return RunFailed(f"the launch of {world} ranks failed: {exc}")
