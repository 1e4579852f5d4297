"""The hf engine's ranks: the Hugging Face Trainer in 2 gloo ranks launched by torch's
elastic launcher through the device worker's protocol; its arguments per strategy; what
it refuses; a crashing rank; which engine measures a multi-rank workload under auto."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from helpers.ranks import (
    assert_crashed_rank_leaves_only_the_worker,
    assert_group_reaped,
    assert_two_rank_metrics,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import Trainer  # noqa: E402

from pytest_goblin.errors import DeviceFault  # noqa: E402
from pytest_goblin.runner import training  # noqa: E402
from pytest_goblin.runner.device_session import DeviceSession, MeasureOptions  # noqa: E402
from pytest_goblin.runner.distributed import device_count  # noqa: E402
from pytest_goblin.runner.hf_engine import _LossRecordingTrainer, unsupported_reason  # noqa: E402
from pytest_goblin.runner.hf_ranks import (  # noqa: E402
    FSDP_ON_CPU,
    ComputeOnly,
    HFRanks,
    rank_arguments,
)
from pytest_goblin.runner.measured import TorchRunner  # noqa: E402
from pytest_goblin.runner.worker import FAULT_ENV  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings  # noqa: E402

DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}
CPU = torch.device("cpu")

needs_two_cores = pytest.mark.skipif(
    device_count(CPU)[0] < 2, reason="2 gloo ranks need 2 CPU cores (one rank per core)"
)

pytestmark = pytest.mark.usefixtures("private_locks")  # tests/unit/runner/conftest.py


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": DIMS,
        "batch_size": 2,
        "seq_len": 32,
        "lr": 3e-3,
        "world_size": 2,
        "strategy": "ddp",
        "finetune": "lora",
        "lora_rank": 4,
    }
    return WorkloadConfig(**(values | fields))


def hf_options(**fields: Any) -> MeasureOptions:
    """The options ``--goblin-engine auto`` gives a session where the hf extra is installed."""
    values: dict[str, Any] = {
        "device": "cpu",
        "timeout_s": 120,
        "warmup": 1,
        "engine": "hf",
        "rank_engine": "native",
    }
    return MeasureOptions(**(values | fields))


def runner(session: DeviceSession) -> TorchRunner:
    found = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    assert isinstance(found, TorchRunner)
    return found


@pytest.fixture(scope="module")
def session(private_locks: None) -> Iterator[DeviceSession]:
    """One hf session for the module's good runs: a worker start imports transformers."""
    measured = DeviceSession("cpu", hf_options())
    yield measured
    measured.close()


@needs_two_cores
def test_two_gloo_ranks_of_the_trainer_are_measured_through_the_worker(
    session: DeviceSession,
) -> None:
    config = tiny()
    found = runner(session)
    assert found.engine(config) == "hf" and found.unsupported(config) is None
    metrics = found.run(config, steps=2)
    assert metrics.projected is False and metrics.world_size == 2
    assert not any("measured by the native engine" in w for w in metrics.warnings)
    # tokens are counted over both ranks: the workload's global batch
    assert metrics.tokens_per_step == config.tokens_per_step == 2 * 2 * 32
    assert len(metrics.rank_peak_memory_gb) == 2 and min(metrics.rank_peak_memory_gb) > 0
    assert metrics.hbm_peak_gb == max(metrics.rank_peak_memory_gb)
    assert metrics.comm_share is not None and 0.0 <= metrics.comm_share <= 1.0
    # warmup, drain and timed steps only: the compute-only steps after them are not reported
    assert len(metrics.losses) == 4 and all(4.0 < loss < 7.0 for loss in metrics.losses)


@needs_two_cores
def test_auto_measures_fsdp_on_the_cpu_with_the_native_engine_and_says_why(
    session: DeviceSession,
) -> None:
    config = tiny(strategy="fsdp")
    found = runner(session)
    assert found.engine(config) == "native"
    metrics = found.run(config, steps=2)
    assert metrics.world_size == 2 and metrics.comm_share is not None
    assert any(
        w.startswith("measured by the native engine, not the hf engine that --goblin-engine")
        and "FSDP runs on GPUs only" in w
        for w in metrics.warnings
    )


def test_explicit_hf_launches_what_it_can_and_never_hands_ranks_to_native() -> None:
    auto = DeviceSession("cpu", hf_options()).runner_for(None, WorkloadSettings())
    explicit = DeviceSession("cpu", hf_options(rank_engine=None)).runner_for(
        None, WorkloadSettings()
    )
    assert isinstance(auto, TorchRunner) and isinstance(explicit, TorchRunner)
    assert auto.engine(tiny()) == "hf" and auto.engine(tiny(strategy="single")) == "hf"
    assert auto.engine(tiny(world_size=1, strategy="fsdp")) == "hf"
    assert auto.engine(tiny(strategy="fsdp")) == "native"
    assert explicit.engine(tiny(strategy="fsdp")) == "hf"  # and is skipped with the reason
    # DeepSpeed stays with hf, whose skip says why: the native engine does not run it either
    assert auto.engine(tiny(strategy="deepspeed")) == "hf"


def test_what_the_hf_ranks_cannot_run_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert unsupported_reason(tiny(strategy="fsdp"), CPU) == FSDP_ON_CPU
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert unsupported_reason(tiny(strategy="deepspeed"), CPU) == (
        "strategy deepspeed: DeepSpeed is not installed; the hf engine launches ddp, and "
        "fsdp on GPUs, through the Trainer"
    )
    cores, _ = device_count(CPU)
    reason = unsupported_reason(tiny(world_size=cores + 1), CPU)
    assert reason is not None
    assert reason.startswith(f"world_size {cores + 1} (ddp) needs {cores + 1} devices")


def test_a_ranks_trainer_arguments_carry_the_backend_and_the_workloads_ddp_settings() -> None:
    # (TrainingArguments with a backend initialise the process group: only a launched rank
    # builds them; the runs through the worker above do)
    given = rank_arguments(tiny(ddp_find_unused_parameters=False, ddp_bucket_cap_mb=5), CPU)
    assert given == {
        "ddp_backend": "gloo",
        "ddp_find_unused_parameters": False,
        "ddp_bucket_cap_mb": 5,
    }
    unset = rank_arguments(tiny(), CPU)
    assert unset["ddp_find_unused_parameters"] is None  # the Trainer decides
    assert unset["ddp_bucket_cap_mb"] is None and "fsdp" not in unset


def test_fsdp_ranks_ask_the_trainer_for_fsdp2_as_the_workload_shards() -> None:
    gpu = torch.device("cuda")  # only its type is read: no GPU needed
    full = rank_arguments(tiny(strategy="fsdp"), gpu)
    assert full["ddp_backend"] == "nccl" and full["fsdp"] is True
    assert full["fsdp_config"] == {"version": 2, "reshard_after_forward": True}
    grad_op = rank_arguments(
        tiny(
            strategy="fsdp",
            zero_stage=2,
            offload_params=True,
            extras={"fsdp_config": {"activation_checkpointing": True}},
        ),
        gpu,
    )
    assert grad_op["fsdp_config"] == {
        "version": 2,
        "reshard_after_forward": False,  # SHARD_GRAD_OP
        "cpu_offload": True,
        "activation_checkpointing": True,
    }
    with pytest.raises(ValueError, match=r"extras\.fsdp_config is 'full_shard'"):
        rank_arguments(tiny(strategy="fsdp", extras={"fsdp_config": "full_shard"}), gpu)


def test_the_compute_only_steps_follow_the_timed_ones_without_gradient_sync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ranks = HFRanks(0, 2, "ddp", CPU, threads=1)
    phase = ComputeOnly(ranks, start=4, steps=2, memory=training._PeakMemory(CPU))
    synced: list[object] = []

    class Accelerator:
        @contextlib.contextmanager
        def no_sync(self, model: object) -> Iterator[None]:
            synced.append(model)
            yield

    monkeypatch.setattr(Trainer, "training_step", lambda self, model, *a, **k: torch.ones(()))
    trainer = _LossRecordingTrainer.__new__(_LossRecordingTrainer)  # no model, no accelerate
    trainer.accelerator = Accelerator()  # type: ignore[assignment]
    trainer.micro_losses = []
    trainer.compute_only = phase
    control = SimpleNamespace(should_training_stop=False)
    stopped = []
    for step in range(1, 8):  # the Trainer's global_step after each optimizer step
        trainer.training_step("ddp-model", {})  # type: ignore[arg-type]
        phase.on_step_end(None, SimpleNamespace(global_step=step), control)
        stopped.append(control.should_training_stop)
    # steps 1-4 (warmup and timed) sync; 5 (untimed) and 6-7 (timed) do not
    assert synced == ["ddp-model"] * 3 and len(trainer.micro_losses) == 7
    assert phase.peak_gb > 0  # read when the timed steps ended
    assert len(phase.clock.times) == 2  # around steps 6 and 7 only
    assert phase.seconds() == (phase.clock.times[1] - phase.clock.times[0]) / 2
    # the Trainer's max_steps allows for a longer warmup: the last compute-only step stops it
    assert stopped == [False] * 6 + [True]


@needs_two_cores
def test_a_crashing_trainer_rank_errors_the_run_and_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash:rank=1")
    faulty = DeviceSession("cpu", hf_options())
    try:
        found = runner(faulty)
        assert_crashed_rank_leaves_only_the_worker(found, tiny())
    finally:
        faulty.close()


@needs_two_cores
def test_a_hanging_trainer_rank_times_out_and_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:rank=1")
    faulty = DeviceSession("cpu", hf_options(timeout_s=4))
    try:
        found = runner(faulty)
        config = tiny()
        found.unsupported(config)  # starts the worker outside the run's timeout
        worker = found.device.worker_pid(config.env_vars)
        assert worker is not None
        with pytest.raises(DeviceFault, match="timed out during a run"):
            found.run(config, steps=2)
        assert_group_reaped(worker)
    finally:
        faulty.close()


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="needs two ROCm or CUDA devices",
)
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_nccl_ranks_of_the_trainer_are_measured_on_two_gpus(strategy: str) -> None:
    gpus = DeviceSession("auto", hf_options(device="auto", timeout_s=300, warmup=2))
    try:
        found = runner(gpus)
        config = tiny(strategy=strategy, precision="bf16", batch_size=4, seq_len=256)
        assert found.engine(config) == "hf" and found.unsupported(config) is None
        metrics = found.run(config, steps=6)
    finally:
        gpus.close()
    assert found.info.kind in ("cuda", "rocm")
    assert_two_rank_metrics(metrics, config)
