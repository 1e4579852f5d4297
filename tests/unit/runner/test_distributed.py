"""Multi-rank measured runs on the CPU: 2 gloo ranks launched by torch's elastic launcher
through the device worker's protocol, DDP and FSDP2, a crashing rank, a hanging one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.ranks import (
    assert_crashed_rank_leaves_only_the_worker,
    assert_group_reaped,
    assert_two_rank_metrics,
)

torch = pytest.importorskip("torch")

from pytest_goblin.errors import DeviceFault, RunFailed  # noqa: E402
from pytest_goblin.runner import measured as live  # noqa: E402
from pytest_goblin.runner.device_session import DeviceSession, MeasureOptions  # noqa: E402
from pytest_goblin.runner.distributed import device_count  # noqa: E402
from pytest_goblin.runner.measured import TorchRunner  # noqa: E402
from pytest_goblin.runner.training import unsupported_reason  # noqa: E402
from pytest_goblin.runner.worker import FAULT_ENV  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings  # noqa: E402

DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}
CPU = torch.device("cpu")

needs_two_cores = pytest.mark.skipif(
    device_count(CPU)[0] < 2, reason="2 gloo ranks need 2 CPU cores (one rank per core)"
)


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": DIMS,
        "batch_size": 2,
        "seq_len": 32,
        "lr": 3e-3,
        "world_size": 2,
        "strategy": "ddp",
    }
    return WorkloadConfig(**(values | fields))


pytestmark = pytest.mark.usefixtures("private_locks")  # tests/unit/runner/conftest.py


@pytest.fixture(scope="module")
def session(private_locks: None) -> Iterator[DeviceSession]:
    """One session for the module's good runs: a worker start costs seconds (torch import)."""
    measured = DeviceSession("cpu", MeasureOptions(device="cpu", timeout_s=120, warmup=1))
    yield measured
    measured.close()


def runner(session: DeviceSession) -> TorchRunner:
    found = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    assert isinstance(found, TorchRunner)
    return found


@needs_two_cores
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_ranks_are_measured_through_the_worker(
    session: DeviceSession, strategy: str
) -> None:
    config = tiny(strategy=strategy)
    metrics = runner(session).run(config, steps=2)
    assert metrics.projected is False and metrics.world_size == 2
    assert metrics.shrunk_from_world_size is None
    # tokens are counted over both ranks: the workload's global batch
    assert metrics.tokens_per_step == config.tokens_per_step == 2 * 2 * 32
    assert len(metrics.rank_peak_memory_gb) == 2 and min(metrics.rank_peak_memory_gb) > 0
    assert metrics.hbm_peak_gb == max(metrics.rank_peak_memory_gb)
    assert metrics.comm_share is not None and 0.0 <= metrics.comm_share <= 1.0
    assert len(metrics.losses) >= 3 and all(loss == loss for loss in metrics.losses)


def test_a_workload_of_more_ranks_than_the_limit_is_measured_on_the_limit(
    private_locks: None,
) -> None:
    options = MeasureOptions(device="cpu", max_world_size=2)
    shrunk = DeviceSession("cpu", options)  # starts no worker until a run
    found = shrunk.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    assert isinstance(found, TorchRunner)
    ran = found.ranks(tiny(world_size=8, strategy="fsdp", batch_size=3))
    assert (ran.world_size, ran.strategy, ran.batch_size) == (2, "fsdp", 3)
    assert found.ranks(tiny(world_size=2)).world_size == 2


HOLD = """
import os, sys, time
from pathlib import Path
from filelock import FileLock
path = Path(sys.argv[1])
with FileLock(path):
    path.with_suffix(".holder").write_text(f"{os.getpid()}\\n")
    print("held", flush=True)
    time.sleep(0.5)
"""


def test_a_multi_rank_run_holds_the_lock_of_every_device_it_claims(
    session: DeviceSession,
) -> None:
    from filelock import FileLock

    found = runner(session)
    assert found._claims(tiny()) == []  # CPU ranks run under the worker's own lock
    messages: list[str] = []
    found.device.on_wait = messages.append
    other = live.LOCK_DIR / "cuda-GPU-1.lock"
    # another process's run on the second GPU, for half a second
    elsewhere = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(other)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert elsewhere.stdout is not None and elsewhere.stdout.readline() == "held\n"
        with found.device.locked({}, ["cuda-GPU-0", "cuda-GPU-1"]):
            for name in ("cuda-GPU-0", "cuda-GPU-1"):  # both held by this process now
                holder = live.LOCK_DIR / f"{name}.holder"
                assert holder.read_text() == f"{os.getpid()}\n"
    finally:
        found.device.on_wait = None
        elsewhere.wait()
    assert messages == [
        f"waiting for the lock of a device this 2-rank run takes {other} held by PID "
        f"{elsewhere.pid}"
    ]
    lock = FileLock(other)
    lock.acquire(timeout=0)  # released with the run
    lock.release()


def test_auto_hands_fsdp_ranks_on_the_cpu_to_the_native_engine(private_locks: None) -> None:
    # the hf engine launches DDP ranks itself (tests/unit/runner/test_hf_ranks.py)
    options = MeasureOptions(device="cpu", engine="hf", rank_engine="native")
    found = DeviceSession("cpu", options).runner_for(None, WorkloadSettings())
    assert isinstance(found, TorchRunner)
    assert found.engine(tiny(strategy="fsdp")) == "native"
    assert found.engine(tiny(world_size=1, strategy="fsdp")) == "hf"


def test_more_ranks_than_devices_is_skipped_with_the_numbers() -> None:
    cores, _ = device_count(CPU)
    reason = unsupported_reason(tiny(world_size=cores + 1), CPU)
    assert reason == (
        f"world_size {cores + 1} (ddp) needs {cores + 1} devices; this runner has {cores} "
        f"CPU cores (one gloo rank per core): --goblin-max-world-size {cores} measures a "
        "shrunk run"
    )


def test_a_pinned_xdist_worker_names_the_variable_that_narrows_its_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_goblin.runner.distributed import _narrowed_by
    from pytest_goblin.runner.visible import UNPINNED, VARIABLES

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(UNPINNED, raising=False)
    gpu = torch.device("cuda")  # only its type is read: no GPU needed
    assert _narrowed_by(gpu) == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert _narrowed_by(gpu) == " (CUDA_VISIBLE_DEVICES=3)"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,0")  # widened from a pin to 3
    monkeypatch.setenv(UNPINNED, "{}")
    assert _narrowed_by(gpu) == (
        " (CUDA_VISIBLE_DEVICES=3,0: every GPU of the session, this pytest-xdist worker's first)"
    )
    assert _narrowed_by(CPU) == ""


def test_deepspeed_is_skipped_naming_what_the_native_engine_runs() -> None:
    reason = unsupported_reason(tiny(strategy="deepspeed"), CPU)
    assert reason is not None and "strategy deepspeed is not run by the native engine" in reason


@needs_two_cores
def test_a_crashing_rank_errors_the_run_and_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch, private_locks: None
) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash:rank=1")
    faulty = DeviceSession("cpu", MeasureOptions(device="cpu", timeout_s=120, warmup=1))
    try:
        found = faulty.runner_for(None, WorkloadSettings(sample_cost_ms=0))
        assert isinstance(found, TorchRunner)
        assert_crashed_rank_leaves_only_the_worker(found, tiny())
    finally:
        faulty.close()


@needs_two_cores
def test_a_hanging_rank_times_out_and_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch, private_locks: None
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:rank=1")
    faulty = DeviceSession("cpu", MeasureOptions(device="cpu", timeout_s=4, warmup=1))
    try:
        found = faulty.runner_for(None, WorkloadSettings(sample_cost_ms=0))
        assert isinstance(found, TorchRunner)
        config = tiny()
        found.unsupported(config)  # starts the worker outside the run's timeout
        worker = found.device.worker_pid(config.env_vars)
        assert worker is not None
        session_dir = found.device._session_dir
        assert session_dir is not None
        with pytest.raises(DeviceFault, match="timed out during a run"):
            found.run(config, steps=2)
        # the killed worker could not remove its launcher's files: they are in the session's
        assert list(session_dir.glob("pytest-goblin-ranks-*"))
        assert_group_reaped(worker)
    finally:
        faulty.close()
    assert not session_dir.exists()


def test_a_one_rank_fsdp_workload_runs_on_one_device() -> None:
    assert unsupported_reason(tiny(world_size=1, strategy="fsdp"), CPU) is None


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="needs two ROCm or CUDA devices",
)
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_nccl_ranks_are_measured_on_two_gpus(private_locks: None, strategy: str) -> None:
    gpus = DeviceSession("cpu", MeasureOptions(device="auto", timeout_s=300, warmup=2))
    try:
        found = gpus.runner_for(None, WorkloadSettings(sample_cost_ms=0))
        assert isinstance(found, TorchRunner)
        config = tiny(strategy=strategy, precision="bf16", batch_size=4, seq_len=256)
        assert found.unsupported(config) is None
        metrics = found.run(config, steps=6)
    finally:
        gpus.close()
    assert found.info.kind in ("cuda", "rocm")
    assert_two_rank_metrics(metrics, config)


class _Launch(Exception):
    """What the launcher raises (ChildFailedError): the one failed rank it found."""

    def __init__(self, failures: dict[int, Any]) -> None:
        super().__init__("launch failed")
        self.failures = failures


def _wrote(error_dir: Path, rank: int, kind: str, message: str, at: float) -> None:
    record = {"kind": kind, "message": message, "time": at}
    (error_dir / f"rank{rank}.json").write_text(json.dumps(record))


def test_a_peer_closed_connection_is_not_taken_for_the_cause(tmp_path: Path) -> None:
    from pytest_goblin.runner.distributed import _failure

    reset = "RuntimeError: [pair.cc:537] Read error [127.0.0.1]:1: Connection reset by peer"
    _wrote(tmp_path, 0, "error", reset, 2.0)
    error = _failure(_Launch({0: object()}), tmp_path, 2)  # the launcher found rank 0 first
    assert isinstance(error, RunFailed)
    assert str(error).startswith("rank 1 of 2 died without reporting an error")
    assert "rank 0 then failed: RuntimeError" in str(error)


def test_the_earliest_error_a_rank_raised_itself_is_the_cause(tmp_path: Path) -> None:
    from pytest_goblin.runner.distributed import _failure

    _wrote(tmp_path, 0, "error", "RuntimeError: Connection closed by peer", 1.0)
    _wrote(tmp_path, 1, "oom", "OutOfMemoryError: out of memory injected", 2.0)
    error = _failure(_Launch({0: object()}), tmp_path, 2)
    assert isinstance(error, torch.OutOfMemoryError)
    assert str(error) == "rank 1 of 2: OutOfMemoryError: out of memory injected"
