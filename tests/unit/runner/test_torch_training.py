"""One measured run in-process on the CPU: the training step, the data, the measurement."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from pytest_goblin.errors import UnsupportedConfig  # noqa: E402
from pytest_goblin.runner import training  # noqa: E402
from pytest_goblin.runner.data import SyntheticTokens, make_loader  # noqa: E402
from pytest_goblin.runner.measurement import Measurement, run_metrics  # noqa: E402
from pytest_goblin.runner.optimizers import unsupported_reason as optimizer_reason  # noqa: E402
from pytest_goblin.runner.training import (  # noqa: E402
    Diverged,
    RunRequest,
    measure,
    unsupported_reason,
    window_sizes,
)
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
CPU_INFO = DeviceInfo(kind="cpu", name="test CPU", platform="cpu")
DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {"model": DIMS, "batch_size": 4, "seq_len": 32, "lr": 3e-3}
    return WorkloadConfig(**(values | fields))


def run(config: WorkloadConfig, steps: int = 6, warmup: int = 1, **request: Any) -> Measurement:
    return measure(
        RunRequest(config, steps=steps, warmup=warmup, sample_cost_s=0.0, **request), CPU
    )


def test_a_run_gives_positive_tokens_per_second_finite_falling_loss_and_peak_memory() -> None:
    metrics = run_metrics(tiny(), [run(tiny(), steps=12)], CPU_INFO)
    assert metrics.tokens_per_sec > 0 and metrics.step_time_s > 0
    assert all(sample > 0 for sample in metrics.samples)
    assert all(math.isfinite(loss) for loss in metrics.losses)
    half = len(metrics.losses) // 2
    assert sum(metrics.losses[half:]) / half < sum(metrics.losses[:half]) / half
    assert metrics.hbm_peak_gb > 0
    assert metrics.projected is False and metrics.runner_kind == "torch"


def test_warmup_steps_are_run_but_not_timed() -> None:
    measurement = run(tiny(), steps=4, warmup=2)
    # at least the warmup asked for, more while step time has not settled
    assert 2 <= measurement.warmup_steps <= 2 + training.MAX_EXTRA_WARMUP
    assert sum(measurement.window_steps) == 4
    assert measurement.drain_steps == 1  # no DataLoader workers: one step refills the queue
    assert len(measurement.losses) == measurement.warmup_steps + 1 + 4


def test_tokens_are_counted_from_the_batches_with_gradient_accumulation() -> None:
    config = tiny(grad_accum_steps=3)
    measurement = run(config, steps=5)
    assert measurement.tokens_per_step == 3 * 4 * 32
    assert sum(measurement.window_tokens) == 5 * 3 * 4 * 32


def test_timed_steps_are_split_into_up_to_five_windows() -> None:
    assert window_sizes(12) == [3, 3, 2, 2, 2]
    assert window_sizes(3) == [1, 1, 1]
    assert len(run(tiny(), steps=7).window_seconds) == 5


def test_checkpointing_on_and_off_give_the_same_losses_for_the_same_seed() -> None:
    plain = run(tiny(gradient_checkpointing=False)).losses
    checkpointed = run(tiny(gradient_checkpointing=True)).losses
    n = min(len(plain), len(checkpointed))  # warmup runs until step time settles
    assert checkpointed[:n] == pytest.approx(plain[:n], rel=1e-5)


def test_eager_and_sdpa_runs_train_the_same_way() -> None:
    eager = run(tiny(attention_impl="eager")).losses
    sdpa = run(tiny(attention_impl="sdpa")).losses
    n = min(len(eager), len(sdpa))  # warmup runs until step time settles
    assert sdpa[:n] == pytest.approx(eager[:n], rel=1e-4)


def test_lora_trains_only_the_adapters() -> None:
    config = tiny(finetune="lora", lora_rank=4, lora_targets=["q_proj", "v_proj"])
    trainer = training._Trainer(RunRequest(config, steps=3, warmup=0, sample_cost_s=0.0), CPU)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for _ in range(3):
        trainer.step()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    assert all(name.endswith(("lora_a", "lora_b")) for name in changed)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
def test_every_supported_precision_trains_with_finite_losses(precision: str) -> None:
    measurement = run(tiny(precision=precision), steps=3)
    assert all(math.isfinite(loss) for loss in measurement.losses)


def test_fp16_uses_a_grad_scaler_and_bf16_does_not() -> None:
    fp16 = training._Trainer(RunRequest(tiny(precision="fp16"), 1, 0, 0.0), CPU)
    bf16 = training._Trainer(RunRequest(tiny(precision="bf16"), 1, 0, 0.0), CPU)
    assert fp16.scaler.is_enabled() and not bf16.scaler.is_enabled()


@pytest.mark.parametrize(
    "optimizer", ["adamw_torch", "adamw_torch_fused", "adamw_hf", "sgd", "adafactor", "adamw"]
)
def test_every_built_in_optimizer_trains(optimizer: str) -> None:
    measurement = run(tiny(optimizer=optimizer), steps=2)
    assert all(math.isfinite(loss) for loss in measurement.losses)


def test_the_optimizer_implementation_follows_the_name() -> None:
    foreach = training._Trainer(RunRequest(tiny(optimizer="adamw_torch"), 1, 0, 0.0), CPU)
    fused = training._Trainer(RunRequest(tiny(optimizer="adamw_torch_fused"), 1, 0, 0.0), CPU)
    assert foreach.optimizer.defaults["foreach"] is True
    assert fused.optimizer.defaults["fused"] is True


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here"
)
def test_eight_bit_optimizers_need_bitsandbytes() -> None:
    reason = optimizer_reason("adamw_bnb_8bit")
    assert reason is not None and "bitsandbytes" in reason


def test_an_optimizer_the_runner_does_not_build_is_refused_with_the_ones_it_does() -> None:
    reason = optimizer_reason("lion_32bit")
    assert reason is not None and "adamw_torch_fused" in reason


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"attention_impl": "flash"}, "flash attention needs a ROCm or CUDA GPU"),
        ({"precision": "fp8"}, "fp8"),
        ({"finetune": "qlora"}, "QLoRA"),
        ({"finetune": "lora8"}, "bitsandbytes' Linear8bitLt"),
        ({"world_size": 8, "strategy": "fsdp"}, "world_size 8"),
        ({"optimizer": "paged_adamw_8bit"}, "bitsandbytes"),
    ],
)
def test_what_the_device_cannot_run_is_refused_with_the_reason(
    fields: dict[str, Any], needle: str
) -> None:
    config = tiny(**fields)
    reason = unsupported_reason(config, CPU)
    assert reason is not None and needle in reason
    with pytest.raises(UnsupportedConfig, match=needle):
        run(config)


def test_a_config_the_cpu_can_run_has_no_refusal() -> None:
    assert unsupported_reason(tiny(attention_impl="sdpa", precision="bf16"), CPU) is None


def test_an_unknown_precision_is_an_error_that_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="precision is unknown"):
        run(tiny(precision="unknown"))


def test_a_diverging_loss_fails_the_run() -> None:
    def poison(step: int, model: torch.nn.Module) -> None:
        if step == 1:
            with torch.no_grad():
                model.embed.weight.fill_(float("nan"))

    with pytest.raises(Diverged, match="step 2"):
        measure(RunRequest(tiny(), steps=3, warmup=0, sample_cost_s=0.0), CPU, hook=poison)


def test_compile_time_is_reported_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "COMPILE_BACKEND", "eager")
    measurement = run(tiny(torch_compile=True), steps=2, warmup=0)
    assert measurement.warmup_steps >= 1  # compilation is never timed
    assert measurement.compile_time_s is not None and measurement.compile_time_s >= 0
    assert run(tiny(), steps=2).compile_time_s is None


def test_a_run_of_fewer_layers_says_how_many_it_ran() -> None:
    assert run(tiny(model=DIMS | {"layers": 6}), steps=2, layers=1).layers == 1


def test_synthetic_samples_are_the_same_in_every_run() -> None:
    first = SyntheticTokens(vocab=256, seq_len=32, length=4, sample_cost_s=0.0, seed=0)
    again = SyntheticTokens(vocab=256, seq_len=32, length=4, sample_cost_s=0.0, seed=0)
    assert torch.equal(first[3], again[3])
    assert first[3].shape == (33,) and int(first[3].max()) < 256


def test_the_dataloader_honours_the_data_knobs() -> None:
    config = tiny(
        dataloader_workers=2,
        dataloader_prefetch_factor=4,
        dataloader_persistent_workers=True,
        dataloader_pin_memory=True,
    )
    loader = make_loader(config, vocab=256, samples=8, sample_cost_s=0.0, device=CPU)
    assert loader.num_workers == 2 and loader.prefetch_factor == 4
    assert loader.persistent_workers is True
    assert loader.pin_memory is False  # pinning only helps copies to an accelerator


def test_without_workers_prefetch_and_persistence_are_not_passed() -> None:
    config = tiny(
        dataloader_workers=0, dataloader_prefetch_factor=4, dataloader_persistent_workers=True
    )
    loader = make_loader(config, vocab=256, samples=8, sample_cost_s=0.0, device=CPU)
    assert loader.num_workers == 0 and loader.persistent_workers is False


def test_dataloader_workers_feed_a_run() -> None:
    measurement = run(tiny(dataloader_workers=2, dataloader_persistent_workers=True), steps=3)
    assert sum(measurement.window_tokens) == 3 * 4 * 32
