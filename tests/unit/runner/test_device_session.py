"""The DeviceSession's worker processes on the CPU: reuse, restarts, OOM, locks, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from pytest_goblin.errors import (
    DeviceFault,
    OutOfMemory,
    RunFailed,
    UnsupportedConfig,
)
from pytest_goblin.runner import measured as live
from pytest_goblin.runner.device_session import DeviceSession, MeasureOptions
from pytest_goblin.runner.measured import TorchRunner
from pytest_goblin.runner.worker import FAULT_ENV
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {"model": DIMS, "batch_size": 2, "seq_len": 32, "lr": 3e-3}
    return WorkloadConfig(**(values | fields))


pytestmark = pytest.mark.usefixtures("private_locks")  # tests/unit/runner/conftest.py


@pytest.fixture(scope="module")
def session(private_locks: None) -> Iterator[DeviceSession]:
    """One session for the module: each worker start costs seconds (torch import)."""
    measured = DeviceSession("cpu", MeasureOptions(device="cpu", timeout_s=60, warmup=1))
    yield measured
    measured.close()


def runner(session: DeviceSession, **settings: Any) -> TorchRunner:
    found = session.runner_for(None, WorkloadSettings(sample_cost_ms=0, **settings))
    assert isinstance(found, TorchRunner)
    return found


def injected(monkeypatch: pytest.MonkeyPatch, fault: str, threads: str) -> dict[str, str]:
    """Env vars of a fresh worker that inherits ``fault`` from pytest's environment (a
    workload's env_vars may only carry tuning knobs); OMP_NUM_THREADS tells it apart."""
    monkeypatch.setenv(FAULT_ENV, fault)
    return {"OMP_NUM_THREADS": threads}


def environment(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_a_measured_run_reports_the_live_cpu(session: DeviceSession) -> None:
    metrics = runner(session).run(tiny(), steps=3)
    assert metrics.projected is False and metrics.runner_kind == "torch"
    assert metrics.tokens_per_sec > 0 and metrics.hbm_peak_gb > 0
    assert metrics.mfu_pct is not None and metrics.mfu_pct > 0
    assert session.info.kind == "cpu" and session.info.platform == "cpu"
    assert session.info.torch_version


def test_the_worker_is_started_once_and_reused(session: DeviceSession) -> None:
    first = runner(session)
    first.run(tiny(), steps=2)
    pid = first.device.worker_pid({})
    runner(session).run(tiny(batch_size=3), steps=2)
    assert pid is not None and first.device.worker_pid({}) == pid


def test_env_vars_get_their_own_worker_with_them_in_its_environment(
    session: DeviceSession,
) -> None:
    measured = runner(session)
    variables = {"PYTORCH_TUNABLEOP_ENABLED": "1"}
    measured.run(tiny(), steps=2)
    measured.run(tiny(env_vars=variables), steps=2)
    plain, tuned = measured.device.worker_pid({}), measured.device.worker_pid(variables)
    assert plain is not None and tuned is not None and plain != tuned
    assert b"PYTORCH_TUNABLEOP_ENABLED=1" in environment(tuned)
    assert b"PYTORCH_TUNABLEOP_ENABLED=1" not in environment(plain)


def test_a_worker_killed_mid_run_errors_the_run_and_the_next_run_restarts_it(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = runner(session)
    env = injected(monkeypatch, "crash:batch_size=3", "7")
    measured.run(tiny(env_vars=env), steps=2)
    before = measured.device.worker_pid(env)
    with pytest.raises(DeviceFault, match=r"(?s)died during a run.*SIGKILL.*stderr.*run: "):
        measured.run(tiny(env_vars=env, batch_size=3), steps=3)
    assert measured.run(tiny(env_vars=env), steps=2).tokens_per_sec > 0
    after = measured.device.worker_pid(env)
    assert before is not None and after is not None and after != before and not alive(before)


def test_out_of_memory_is_reported_as_oom_and_the_worker_lives_on(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = runner(session)
    env = injected(monkeypatch, "oom:batch_size=3", "8")
    with pytest.raises(OutOfMemory, match=r"^oom: out of memory on"):
        measured.run(tiny(env_vars=env, batch_size=3), steps=3)
    pid = measured.device.worker_pid(env)
    assert measured.run(tiny(env_vars=env), steps=2).tokens_per_sec > 0
    assert pid is not None and measured.device.worker_pid(env) == pid


def test_a_diverged_loss_fails_the_run(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = injected(monkeypatch, "nan", "9")
    with pytest.raises(RunFailed, match="diverged"):
        runner(session).run(tiny(env_vars=env), steps=3)


def test_a_config_the_device_cannot_run_is_refused_before_and_during_a_run(
    session: DeviceSession,
) -> None:
    measured = runner(session)
    reason = measured.unsupported(tiny(attention_impl="flash", precision="bf16"))
    assert reason is not None and "flash attention needs a ROCm or CUDA GPU" in reason
    assert measured.unsupported(tiny()) is None
    with pytest.raises(UnsupportedConfig, match="fp8"):
        measured.run(tiny(precision="fp8"), steps=2)


def test_fewer_layers_are_measured_and_the_full_model_extrapolated(
    session: DeviceSession,
) -> None:
    metrics = runner(session, layers=2).run(tiny(model=DIMS | {"layers": 6}), steps=2)
    assert metrics.extrapolated_from_layers == [1, 2]
    assert any("extrapolated to 6 layers" in w for w in metrics.warnings)


def test_close_leaves_no_worker_process() -> None:
    session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=0))
    measured = runner(session)
    measured.run(tiny(dataloader_workers=1, dataloader_persistent_workers=True), steps=1)
    pid = measured.device.worker_pid({})
    assert pid is not None
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    session.close()
    assert not alive(pid) and not any(alive(int(child)) for child in children)


def test_a_device_the_machine_lacks_fails_once_and_is_remembered() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    session = DeviceSession("cpu", MeasureOptions(device="cuda"))
    try:
        with pytest.raises(DeviceFault, match="no device for --goblin-device cuda"):
            session.info  # noqa: B018
        with pytest.raises(DeviceFault, match="no device"):
            runner(session).run(tiny(), steps=2)
        assert runner(session).device.worker_pid({}) is None
    finally:
        session.close()


def test_a_simulated_device_name_is_refused_in_measured_mode(session: DeviceSession) -> None:
    with pytest.raises(ValueError, match="simulated device"):
        session.runner_for("mi300x")


def test_the_device_lock_keeps_a_second_process_waiting(session: DeviceSession) -> None:
    from filelock import FileLock

    measured = runner(session)
    measured.run(tiny(), steps=2)  # starts the worker here, in the main thread
    assert measured.device._lock_path is not None
    other_process = FileLock(measured.device._lock_path)
    other_process.acquire()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (measured.run(tiny(), steps=2), done.set()))
    thread.start()
    try:
        assert not done.wait(1.0)
    finally:
        other_process.release()
    thread.join(60)
    assert done.is_set()


def test_the_projector_is_the_analytic_model_of_the_live_device(session: DeviceSession) -> None:
    projector = runner(session).projector
    assert projector.info.kind == "simulated" and projector.spec.name == "cpu"
    started = time.monotonic()
    assert projector.run(tiny(), 50).projected is True
    assert time.monotonic() - started < 5


def test_a_measured_runner_names_its_device_physically_by_the_lock_id(
    session: DeviceSession,
) -> None:
    measured = runner(session)
    assert measured.device_id == measured.device.lock_id == "cpu"


def test_a_library_oom_raised_as_a_runtime_error_is_reported_as_oom(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = injected(monkeypatch, "blas-oom:batch_size=3", "5")
    with pytest.raises(OutOfMemory, match="BLAS_STATUS_ALLOC_FAILED"):
        runner(session).run(tiny(env_vars=env, batch_size=3), steps=3)


def test_a_sticky_device_error_fails_the_run_and_the_worker_is_replaced(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = runner(session)
    env = injected(monkeypatch, "fatal:batch_size=3", "6")
    measured.run(tiny(env_vars=env), steps=2)
    before = measured.device.worker_pid(env)
    with pytest.raises(RunFailed, match=r"illegal memory access.*fatal device error"):
        measured.run(tiny(env_vars=env, batch_size=3), steps=3)
    assert measured.device.worker_pid(env) is None  # it exited rather than serve errors
    assert measured.run(tiny(env_vars=env), steps=2).tokens_per_sec > 0
    after = measured.device.worker_pid(env)
    assert before is not None and not alive(before) and after not in (None, before)


def test_a_start_failure_is_remembered_for_its_env_vars_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[dict[str, str]] = []

    def start(worker: live.DeviceWorker) -> dict[str, Any]:
        starts.append(worker.env_vars)
        if worker.env_vars.get("OMP_NUM_THREADS") == "3":
            return {"ok": False, "message": "hipErrorNoDevice"}
        return live.DeviceWorker.start.__wrapped__(worker)  # type: ignore[attr-defined]

    start.__wrapped__ = live.DeviceWorker.start  # type: ignore[attr-defined]
    monkeypatch.setattr(live.DeviceWorker, "start", start)
    device = live.LiveDevice(MeasureOptions(device="cpu", timeout_s=60, warmup=0))
    try:
        for _ in range(2):
            with pytest.raises(DeviceFault, match=r"with env_vars \{'OMP_NUM_THREADS': '3'\}"):
                device.request({"OMP_NUM_THREADS": "3"}, {"op": "check", "config": {}}, "checking")
        assert starts == [{"OMP_NUM_THREADS": "3"}]  # remembered, not retried
        response = device.request(
            {}, {"op": "check", "config": tiny().model_dump(mode="json")}, "checking"
        )
        assert response == {"ok": True, "reason": None}
    finally:
        device.close()


def test_each_worker_gets_a_tunableop_results_file_of_this_sessions_own(
    session: DeviceSession,
) -> None:
    measured = runner(session)
    measured.run(tiny(), steps=1)
    measured.run(tiny(env_vars={"OMP_NUM_THREADS": "2"}), steps=1)
    files = []
    for env in ({}, {"OMP_NUM_THREADS": "2"}):
        pid = measured.device.worker_pid(env)
        assert pid is not None
        named = [v for v in environment(pid) if v.startswith(b"PYTORCH_TUNABLEOP_FILENAME=")]
        files.append(named[0].split(b"=", 1)[1].decode())
    assert len(set(files)) == 2  # one per worker: they all call their GPU device 0
    assert all(Path(f).parent.is_dir() and not Path(f).is_relative_to(Path.cwd()) for f in files)


def test_a_tunableop_file_the_users_environment_names_is_left_alone(
    session: DeviceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTORCH_TUNABLEOP_FILENAME", "/tmp/mine.csv")
    env = {"OMP_NUM_THREADS": "4"}  # a worker started after the variable was set
    runner(session).run(tiny(env_vars=env), steps=1)
    pid = runner(session).device.worker_pid(env)
    assert pid is not None
    assert b"PYTORCH_TUNABLEOP_FILENAME=/tmp/mine.csv" in environment(pid)
