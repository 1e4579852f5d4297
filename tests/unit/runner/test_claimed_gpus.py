"""A multi-rank run on an xdist worker pinned to one GPU: the GPUs it is given (its own
first, then the session's next ones, wrapping), and the locks it takes on all of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.runner import measured
from pytest_goblin.runner.measured import DeviceWorker, LiveDevice
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.visible import (
    CUDA,
    HIP,
    ROCR,
    UNPINNED,
    VARIABLES,
    Pin,
    physical_id,
    pinned_variables,
    widened,
)
from pytest_goblin.schemas import DeviceInfo


def pinned(before: Mapping[str, str], pin: Pin) -> dict[str, str]:
    """``before`` as an xdist worker pinned to ``pin`` has it (``xdist_gpus``)."""
    return {**before, **pinned_variables(before, pin)}


# --- widening a pinned environment ----------------------------------------------------------


def test_a_worker_pinned_by_the_driver_count_takes_its_gpu_and_the_next() -> None:
    env = pinned({}, Pin(CUDA, "1"))
    assert widened(env, 2, "cuda", 4) == {CUDA: "1,2"}
    assert widened(env, 3, "cuda", 4) == {CUDA: "1,2,3"}


def test_the_gpus_after_the_last_wrap_round_to_the_first() -> None:
    env = pinned({}, Pin(CUDA, "3"))
    assert widened(env, 3, "cuda", 4) == {CUDA: "3,0,1"}


def test_more_ranks_than_the_session_has_gpus_get_all_of_them() -> None:
    env = pinned({}, Pin(CUDA, "2"))
    # the run then counts 4 devices and skips with that number, not 1
    assert widened(env, 8, "cuda", 4) == {CUDA: "2,3,0,1"}


def test_the_users_list_orders_the_session_not_the_indices() -> None:
    env = pinned({CUDA: "6,2,4"}, Pin(CUDA, "2"))
    assert widened(env, 2, "cuda", 8) == {CUDA: "2,4"}
    assert widened(env, 3, "cuda", 8) == {CUDA: "2,4,6"}


def test_uuid_entries_are_widened_as_they_are() -> None:
    env = pinned({CUDA: "GPU-aa,GPU-bb,MIG-cc/1/2"}, Pin(CUDA, "GPU-bb"))
    assert widened(env, 3, "cuda", 3) == {CUDA: "GPU-bb,MIG-cc/1/2,GPU-aa"}


def test_on_rocm_hip_is_widened_within_rocr_which_stays() -> None:
    env = pinned({ROCR: "2,3,5"}, Pin(HIP, "2"))
    gpus = widened(env, 2, "rocm", 8)
    assert gpus == {HIP: "2,0"}
    # HIP's indices count within ROCR's list: the run's devices are GPUs 5 then 2
    run = {**env, **gpus}
    assert run[ROCR] == "2,3,5"
    assert [physical_id("rocm", i, run) for i in range(2)] == ["rocm-5", "rocm-2"]


def test_on_rocm_a_users_cuda_list_is_widened_through_hip() -> None:
    env = pinned({CUDA: "0,1"}, Pin(HIP, "1"))
    assert widened(env, 2, "rocm", 2) == {HIP: "1,0"}


def test_on_rocm_an_integrated_gpus_index_is_never_taken() -> None:
    env = pinned({}, Pin(HIP, "2"))
    # runtime index 0 is an APU's integrated GPU: the session's GPUs are 1 and 2
    assert widened(env, 2, "rocm", 2, indices=[1, 2]) == {HIP: "2,1"}


def test_nothing_is_widened_for_one_rank_unpinned_or_a_foreign_pin() -> None:
    env = pinned({}, Pin(CUDA, "1"))
    assert widened(env, 1, "cuda", 4) == {}
    assert widened({CUDA: "1"}, 2, "cuda", 4) == {}  # pinned by the user (--tx env:)
    assert widened({**env, CUDA: "7"}, 2, "cuda", 4) == {}  # not a GPU of the session


# --- the device worker a multi-rank run gets --------------------------------------------------


def pin(monkeypatch: pytest.MonkeyPatch, gpu: str) -> None:
    """This process as an xdist worker of a 4-GPU CUDA session, pinned to ``gpu``."""
    for name in (*VARIABLES, UNPINNED):
        monkeypatch.delenv(name, raising=False)
    for name, value in pinned_variables(os.environ, Pin(CUDA, gpu)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(measured, "installed", lambda: ("cuda", 4))


@pytest.fixture
def pinned_to_gpu_1(monkeypatch: pytest.MonkeyPatch) -> None:
    pin(monkeypatch, "1")


@pytest.mark.usefixtures("pinned_to_gpu_1")
def test_a_multi_rank_runs_worker_sees_the_gpus_it_takes() -> None:
    live = LiveDevice(MeasureOptions(device="auto", max_world_size=2))
    assert live._gpus(1) == {}
    assert live._gpus(2) == {CUDA: "1,2"}
    assert live._key({}, 1) != live._key({}, 2)  # a worker of its own
    assert live._key({}, 2) == live._key({}, 2)
    worker = DeviceWorker("auto", {"NCCL_DEBUG": "INFO"}, gpus=live._gpus(2))
    env = worker._environment()
    assert env[CUDA] == "1,2" and env["NCCL_DEBUG"] == "INFO"
    assert DeviceWorker("auto", {})._environment()[CUDA] == "1"  # one-rank runs: the pin


@pytest.mark.usefixtures("pinned_to_gpu_1")
def test_a_device_named_by_index_or_the_cpu_is_not_widened() -> None:
    # cuda:0 counts among the session's GPUs already (environ_for); the CPU has no GPUs
    for selector in ("cuda:0", "cpu"):
        live = LiveDevice(MeasureOptions(device=selector))
        assert live._gpus(2) == {}
        assert live._key({}, 1) == live._key({}, 2)


def test_an_unpinned_process_runs_every_rank_count_in_one_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNPINNED, raising=False)
    live = LiveDevice(MeasureOptions(device="auto"))
    assert live._gpus(4) == {}
    assert live._key({}, 1) == live._key({}, 4)


# --- the locks of the devices a run claims ----------------------------------------------------

GPU = DeviceInfo(kind="cuda", name="a GPU", platform="cuda", memory_gb=80.0)

HOLD = """
import os, sys
from pathlib import Path
from filelock import FileLock
path = Path(sys.argv[1])
with FileLock(path):
    path.with_suffix(".holder").write_text(f"{os.getpid()}\\n")
    print("held", flush=True)
    sys.stdin.readline()  # released when told
"""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Device workers that start without torch: each says hello as ``runner.detect`` names a
    GPU without a UUID (its visible index 0 followed through the variables), and the
    environments they were started with are recorded."""
    environments: list[dict[str, str]] = []

    def start(self: DeviceWorker) -> dict[str, Any]:
        env = self._environment()
        environments.append(env)
        return {"ok": True, "info": GPU.model_dump(), "lock_id": physical_id("cuda", 0, env)}

    monkeypatch.setattr(DeviceWorker, "start", start)
    return environments


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(measured, "LOCK_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def elsewhere(locks: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process measuring on GPU 0 (holding its lock until told to release it)."""
    path = locks / "cuda-0.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder, path
    finally:
        holder.kill()
        holder.wait()


def test_a_pinned_worker_claims_every_gpu_of_its_run_and_waits_naming_the_held_one(
    locks: Path,
    started: list[dict[str, str]],
    elsewhere: tuple[subprocess.Popen[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin(monkeypatch, "3")  # the last of 4: a 2-rank run wraps round to GPU 0
    live = LiveDevice(MeasureOptions(device="auto"))
    holder, held = elsewhere
    waits: list[str] = []

    def waiting(message: str) -> None:
        waits.append(message)
        # the locks are taken in path order: cuda-0 before cuda-3, the worker's own
        assert not (locks / "cuda-3.holder").exists()
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    live.on_wait = waiting
    with live.locked({}, ["cuda-3", "cuda-0"], ranks=2):
        for name in ("cuda-0", "cuda-3"):
            assert (locks / f"{name}.holder").read_text() == f"{os.getpid()}\n"
    assert started[-1][CUDA] == "3,0" and json.loads(started[-1][UNPINNED])[CUDA] is None
    assert live.lock_id == "cuda-3"  # the run's first GPU is the worker's own
    assert waits == [
        f"waiting for the lock of a device this 2-rank run takes {held} held by PID {holder.pid}"
    ]


def test_a_wait_for_the_workers_own_gpu_calls_it_the_device_lock(
    started: list[dict[str, str]],
    elsewhere: tuple[subprocess.Popen[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin(monkeypatch, "0")
    live = LiveDevice(MeasureOptions(device="auto"))
    holder, held = elsewhere
    waits: list[str] = []

    def waiting(message: str) -> None:
        waits.append(message)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    live.on_wait = waiting
    with live.locked({}, ["cuda-0", "cuda-1"], ranks=2):
        assert started[-1][CUDA] == "0,1"
    assert waits == [f"waiting for the device lock {held} held by PID {holder.pid}"]


# --- on GPUs ------------------------------------------------------------------------------------


TINY = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}


def _pin_to_last_gpu(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pin this process as xdist would its last worker; the session's GPU count."""
    from pytest_goblin.runner.visible import installed, pins, rocm_indices

    monkeypatch.delenv(UNPINNED, raising=False)
    platform, count = installed()
    session = pins(os.environ, platform, count, rocm_indices() if platform == "rocm" else None)
    if not session:
        pytest.skip("the kernel drivers show no GPU")
    for name, value in pinned_variables(os.environ, session[-1]).items():
        monkeypatch.setenv(name, value)
    return len(session)


@pytest.mark.gpu
def test_on_a_pinned_worker_more_ranks_than_the_sessions_gpus_skip_counting_them_all(
    monkeypatch: pytest.MonkeyPatch, private_locks: None
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a ROCm or CUDA device")
    from pytest_goblin.runner.device_session import DeviceSession
    from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

    count = _pin_to_last_gpu(monkeypatch)
    session = DeviceSession("cpu", MeasureOptions(device="auto", timeout_s=300))
    try:
        found = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
        config = WorkloadConfig(model=TINY, world_size=count + 1, strategy="ddp")
        reason = found.unsupported(config)
    finally:
        session.close()
    assert reason is not None
    assert f"this runner has {count} visible GPUs" in reason
    assert "every GPU of the session, this pytest-xdist worker's first" in reason


@pytest.mark.gpu
def test_on_a_pinned_worker_two_ranks_run_on_its_gpu_and_the_next(
    monkeypatch: pytest.MonkeyPatch, private_locks: None
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two ROCm or CUDA devices")
    from pytest_goblin.runner.device_session import DeviceSession
    from pytest_goblin.runner.measured import TorchRunner
    from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

    _pin_to_last_gpu(monkeypatch)
    session = DeviceSession("cpu", MeasureOptions(device="auto", timeout_s=300, warmup=2))
    try:
        found = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
        assert isinstance(found, TorchRunner)
        config = WorkloadConfig(model=TINY, batch_size=4, seq_len=128, world_size=2, strategy="ddp")
        claims = found._claims(config)
        metrics = found.run(config, steps=4)
    finally:
        session.close()
    assert len(set(claims)) == 2
    assert metrics.world_size == 2 and len(metrics.rank_peak_memory_gb) == 2
