"""The native engine's run guards in the hf engine (CPU): warmup that goes on until step time
settles, the prefetch backlog drained and one untimed step before window 0, skipped fp16
steps counted from accelerate's GradScaler, and telemetry at every window mark.

Step times and loss scales are injected (a fake clock, a fake scaler), never measured, so
no outcome depends on the machine's speed or load."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from pytest_goblin.runner import hf_engine, training  # noqa: E402
from pytest_goblin.runner.hf_engine import StepTimer, max_steps, measure  # noqa: E402
from pytest_goblin.runner.measurement import Measurement, run_metrics  # noqa: E402
from pytest_goblin.runner.training import INITIAL_LOSS_SCALE, RunRequest  # noqa: E402
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
CPU_INFO = DeviceInfo(kind="cpu", name="test CPU", platform="cpu")
DIMS = {"layers": 1, "hidden": 64, "intermediate": 128, "heads": 4, "kv_heads": 2, "vocab": 128}


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {"model": DIMS, "batch_size": 2, "seq_len": 16, "lr": 1e-3}
    return WorkloadConfig(**(values | fields))


def request(config: WorkloadConfig, steps: int = 2, warmup: int = 1) -> RunRequest:
    return RunRequest(config, steps=steps, warmup=warmup, sample_cost_s=0.0)


def run(config: WorkloadConfig, steps: int = 2, warmup: int = 1, **hooked: Any) -> Measurement:
    return measure(request(config, steps, warmup), CPU, **hooked)


def fake_clock(monkeypatch: pytest.MonkeyPatch, *increments: float) -> None:
    """The step timer's clock advances by the next of ``increments`` (in turn) each time it
    is read: the timer reads it as training begins and as each warmup step ends, so these
    are the warmup's step times, however loaded the machine is."""
    now = [0.0]
    reads = iter(range(1_000_000))

    def perf_counter() -> float:
        now[0] += increments[next(reads) % len(increments)]
        return now[0]

    monkeypatch.setattr(hf_engine, "time", SimpleNamespace(perf_counter=perf_counter))


class FakeScaler:
    """accelerate's GradScaler as the step timer reads it: enabled, and its loss scale."""

    def __init__(self) -> None:
        self._scale = torch.tensor(INITIAL_LOSS_SCALE)

    def is_enabled(self) -> bool:
        return True


def drive(timer: StepTimer, steps: int, scales: list[float] | None = None) -> list[bool]:
    """The Trainer's calls to ``timer`` for ``steps`` optimizer steps (``scales``: the loss
    scale after each); whether the timer stopped training after each step."""
    control = SimpleNamespace(should_training_stop=False)
    timer.on_train_begin(None, SimpleNamespace(global_step=0), control)
    stopped = []
    for step in range(1, steps + 1):
        if scales is not None:
            assert isinstance(timer.scaler, FakeScaler)
            timer.scaler._scale = torch.tensor(scales[step - 1])
        timer.on_step_end(None, SimpleNamespace(global_step=step), control)
        stopped.append(control.should_training_stop)
    return stopped


# settling warmup (issue 20, point 8)


def test_warmup_goes_on_while_step_time_changes_and_says_it_never_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training, "CPU_EXTRA_WARMUP", training.MAX_EXTRA_WARMUP)  # as on a GPU
    fake_clock(monkeypatch, 0.01, 0.04)  # 10 ms, 40 ms, 10 ms, ...: never settles
    measurement = run(tiny(), steps=2, warmup=1)
    assert measurement.warmup_steps == 1 + training.MAX_EXTRA_WARMUP
    assert any(w.startswith("warmup did not settle in 9 steps") for w in measurement.warnings)
    # warmup, one untimed step, the timed steps: the Trainer's whole max_steps
    assert len(measurement.losses) == 9 + 1 + 2 == max_steps(request(tiny()), CPU)


def test_a_warmup_that_settles_ends_and_the_trainer_stops_after_the_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training, "CPU_EXTRA_WARMUP", training.MAX_EXTRA_WARMUP)
    fake_clock(monkeypatch, 0.02)  # every warmup step takes 20 ms: settled after two
    measurement = run(tiny(), steps=2, warmup=1)
    assert measurement.warmup_steps == 2
    assert not any("warmup did not settle" in w for w in measurement.warnings)
    # stopped after the timed windows, well short of max_steps (1 + 8 + 1 + 2)
    assert len(measurement.losses) == 2 + 1 + 2 < max_steps(request(tiny()), CPU)


def test_max_steps_allows_for_the_longest_warmup_and_the_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tiny(dataloader_workers=2, dataloader_prefetch_factor=3, grad_accum_steps=2)
    assert max_steps(request(config, steps=5, warmup=2), CPU) == 2 + 3 + 5  # CPU: not extended
    monkeypatch.setattr(training, "CPU_EXTRA_WARMUP", training.MAX_EXTRA_WARMUP)
    assert max_steps(request(config, steps=5, warmup=2), CPU) == 2 + 8 + 3 + 5


# backlog drain and window 0 (issue 20, points 3 and 9)


def test_the_prefetched_backlog_is_consumed_before_the_first_window() -> None:
    config = tiny(dataloader_workers=2, dataloader_prefetch_factor=3, grad_accum_steps=2)
    timer = StepTimer(request(config, steps=2, warmup=1), CPU, training._PeakMemory(CPU), None)
    assert (timer.backlog, timer.drain_steps) == (6, 3)  # 2 workers x 3, two per step
    marks = []
    control = SimpleNamespace(should_training_stop=False)
    timer.on_train_begin(None, SimpleNamespace(global_step=0), control)
    for step in range(1, 7):
        timer.on_step_end(None, SimpleNamespace(global_step=step), control)
        marks.append(len(timer.clock.times))
    # warmup (step 1), three drain steps, window 0 opens after step 4, windows end at 5, 6
    assert marks == [0, 0, 0, 1, 2, 3] and control.should_training_stop


def test_a_timed_phase_short_beside_the_backlog_is_said() -> None:
    measurement = run(tiny(dataloader_workers=1), steps=2, warmup=0)
    assert measurement.drain_steps == 2  # torch's default prefetch_factor: 2 per worker
    assert any("prefetch backlog (2 batches)" in w for w in measurement.warnings)
    assert len(measurement.losses) == 2 + 2


def test_one_untimed_step_runs_before_window_0_even_without_warmup_or_workers() -> None:
    measurement = run(tiny(), steps=2, warmup=0)
    assert measurement.warmup_steps == 0 and measurement.drain_steps == 1
    assert len(measurement.losses) == 1 + 2
    assert not any("prefetch" in w for w in measurement.warnings)


# skipped fp16 steps (issue 20, point 10)


def test_skipped_fp16_steps_are_counted_from_drops_in_the_loss_scale() -> None:
    timer = StepTimer(request(tiny(), steps=3, warmup=1), CPU, training._PeakMemory(CPU), None)
    timer.scaler = FakeScaler()  # type: ignore[assignment]
    start = INITIAL_LOSS_SCALE
    # warmup (a drop: not timed), drain, then three timed steps of which two drop the scale
    stopped = drive(timer, 5, [start / 2, start / 2, start / 4, start / 4, start / 8])
    assert stopped[-1] and timer.skipped() == 2
    assert any(n.startswith("GradScaler skipped 2 of the 3 timed") for n in timer.notes(3, tiny()))


def test_skipped_timed_steps_reach_the_metrics_and_warmup_waits_for_them_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training, "CPU_EXTRA_WARMUP", training.MAX_EXTRA_WARMUP)
    fake_clock(monkeypatch, 0.02)  # step time settled from the second step on
    scaler = FakeScaler()
    monkeypatch.setattr(hf_engine, "_scaler", lambda trainer: scaler)
    start = INITIAL_LOSS_SCALE
    # the loss scale each step leaves: three overflows in warmup, one in the timed steps
    after = [start / 2, start / 4, start / 8, start / 8, start / 8, start / 16, start / 16]

    def overflow(step: int, model: Any) -> None:
        scaler._scale = torch.tensor(after[step])

    measurement = run(tiny(), steps=2, warmup=1, hook=overflow)
    assert measurement.warmup_steps == 4  # until a step without a skip
    assert measurement.skipped_steps == 1
    assert any("GradScaler skipped 1 of the 2 timed" in w for w in measurement.warnings)
    assert run_metrics(tiny(), [measurement], CPU_INFO).skipped_steps == 1


# per-window telemetry (issue 20, point 8)


def test_telemetry_is_read_at_every_window_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(range(100))
    monkeypatch.setattr(training, "telemetry", lambda device: {"clock_mhz": next(readings)})
    measurement = run(tiny(), steps=3, warmup=1)
    # window 0's opening, then the end of each window
    assert measurement.window_telemetry == [{"clock_mhz": n} for n in range(4)]


def test_the_cpu_has_no_telemetry() -> None:
    assert run(tiny(), steps=1, warmup=0).window_telemetry == []
