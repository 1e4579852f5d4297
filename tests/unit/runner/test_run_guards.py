"""What a measured run guards against and records (CPU): the prefetch backlog, unsettled
warmup, skipped fp16 steps, the attention backend, TunableOp and tf32 on ROCm."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from pytest_goblin.runner import training  # noqa: E402
from pytest_goblin.runner.measurement import Measurement, run_metrics  # noqa: E402
from pytest_goblin.runner.training import RunRequest, measure  # noqa: E402
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
CPU_INFO = DeviceInfo(kind="cpu", name="test CPU", platform="cpu")
DIMS = {"layers": 1, "hidden": 32, "intermediate": 64, "heads": 2, "kv_heads": 1, "vocab": 128}


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {"model": DIMS, "batch_size": 2, "seq_len": 16, "lr": 1e-3}
    return WorkloadConfig(**(values | fields))


def run(config: WorkloadConfig, steps: int = 2, warmup: int = 1, **hooked: Any) -> Measurement:
    return measure(RunRequest(config, steps=steps, warmup=warmup, sample_cost_s=0.0), CPU, **hooked)


def test_the_prefetched_backlog_is_consumed_before_the_first_window() -> None:
    config = tiny(dataloader_workers=2, dataloader_prefetch_factor=3, grad_accum_steps=2)
    trainer = training._Trainer(RunRequest(config, steps=2, warmup=1, sample_cost_s=0.0), CPU)
    assert (trainer.backlog, trainer.drain_steps) == (6, 3)  # 2 workers x 3, two per step


def test_a_timed_phase_short_beside_the_backlog_is_said() -> None:
    measurement = run(tiny(dataloader_workers=1), steps=2, warmup=0)
    assert measurement.drain_steps == 2  # torch's default prefetch_factor: 2 per worker
    assert any("prefetch backlog (2 batches)" in w for w in measurement.warnings)
    assert not any("prefetch" in w for w in run(tiny(), warmup=0).warnings)


def test_an_explicit_warmup_of_zero_is_honoured() -> None:
    assert run(tiny(), warmup=0).warmup_steps == 0


def test_warmup_goes_on_while_step_time_changes_and_says_it_never_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as on a GPU; the CPU's warmup is not extended by default
    monkeypatch.setattr(training, "CPU_EXTRA_WARMUP", training.MAX_EXTRA_WARMUP)

    # the run's clock advances only inside a step: 10 ms, then 40 ms, and so on, so step
    # time never settles however loaded the machine is
    clock = [0.0]
    step = training._Trainer.step
    calls = iter(range(1_000))

    def uneven(self: training._Trainer) -> Any:
        clock[0] += 0.04 if next(calls) % 2 else 0.01
        return step(self)

    monkeypatch.setattr(training._Trainer, "step", uneven)
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    measurement = run(tiny(), warmup=1)
    assert measurement.warmup_steps == 1 + training.MAX_EXTRA_WARMUP
    assert any("warmup did not settle" in w for w in measurement.warnings)


def test_skipped_fp16_steps_are_counted_from_drops_in_the_loss_scale() -> None:
    trainer = training._Trainer(RunRequest(tiny(), steps=2, warmup=0, sample_cost_s=0.0), CPU)
    start = training.INITIAL_LOSS_SCALE
    trainer.scales = [torch.tensor(x) for x in (start / 2, start / 2, start / 4, start / 2)]
    assert trainer.skipped() == 2  # the first and third steps lowered the scale
    assert trainer.skipped(2) == 1


def test_skipped_timed_steps_reach_the_metrics_with_a_warning() -> None:
    measurement = Measurement(
        layers=1,
        warmup_steps=1,
        window_steps=[2],
        window_seconds=[1.0],
        window_tokens=[64],
        losses=[3.0, 2.9, 2.8],
        peak_memory_gb=1.0,
        skipped_steps=1,
        attention_backend="sdpa:math",
        peak_reserved_gb=1.5,
    )
    metrics = run_metrics(tiny(), [measurement], CPU_INFO)
    assert metrics.skipped_steps == 1 and metrics.attention_backend == "sdpa:math"
    assert metrics.hbm_reserved_peak_gb == 1.5


@pytest.mark.parametrize(("impl", "label"), [("eager", "eager"), ("sdpa", "sdpa:")])
def test_the_attention_kernel_that_ran_is_recorded(impl: str, label: str) -> None:
    backend = run(tiny(attention_impl=impl)).attention_backend
    assert backend is not None and backend.startswith(label)


def test_tunableop_makes_warmup_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTORCH_TUNABLEOP_ENABLED", "1")
    measurement = run(tiny(), warmup=0)
    assert measurement.warmup_steps >= 1
    assert any("TunableOp" in w for w in measurement.warnings)


def test_tf32_on_rocm_without_hipblaslt_allow_tf32_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "hip", "6.4.0", raising=False)
    monkeypatch.delenv("HIPBLASLT_ALLOW_TF32", raising=False)
    try:
        assert "HIPBLASLT_ALLOW_TF32=1" in training._set_matmul_precision("tf32")[0]
        monkeypatch.setenv("HIPBLASLT_ALLOW_TF32", "1")
        assert training._set_matmul_precision("tf32") == []
        assert training._set_matmul_precision("bf16") == []
    finally:
        torch.set_float32_matmul_precision("highest")


def test_memory_left_by_an_earlier_run_or_held_by_another_process_is_said() -> None:
    memory = training._PeakMemory(CPU)
    assert memory.start_notes() == []
    memory.leftover_gb, memory.foreign_gb = 0.5, 6.0
    left, foreign = memory.start_notes()
    assert left.startswith("0.50 GB was still allocated") and "the peak includes it" in left
    assert foreign.startswith("6.0 GB of device memory is in use outside this worker")


def test_the_cpu_has_no_telemetry() -> None:
    assert training.telemetry(CPU) == {}
    assert run(tiny()).window_telemetry == []


def test_the_workloads_compile_mode_and_backend_are_honoured() -> None:
    config = tiny(
        torch_compile=True,
        extras={"torch_compile_mode": "max-autotune", "torch_compile_backend": "eager"},
    )
    assert training.compile_options(config) == {"backend": "eager", "mode": "max-autotune"}
    assert training.compile_options(tiny(torch_compile=True)) == {"backend": "inductor"}


def test_an_unknown_compile_mode_is_an_error_naming_the_field() -> None:
    config = tiny(torch_compile=True, extras={"torch_compile_mode": "fastest"})
    with pytest.raises(ValueError, match=r"extras.torch_compile_mode 'fastest'"):
        run(config)


def test_the_cpus_warmup_is_what_was_asked_for() -> None:
    assert run(tiny(), warmup=2).warmup_steps == 2
