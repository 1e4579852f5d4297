"""The analytic model's memory as the frameworks really hold it: the weights' dtype, ZeRO
stages and FSDP sharding, CPU offload; and the readers that say which a file runs with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.format_support import copy_in
from pytest_goblin.catalogue.architectures import lookup
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import OutOfMemory, WorkloadError
from pytest_goblin.runner.analytic import AnalyticModel, MemoryEstimate
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import load_workload
from pytest_goblin.workload.sidecar import sidecar_path

FULL: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "precision": "bf16",
    "attention_impl": "flash",
    "optimizer": "adamw_torch_fused",
    "batch_size": 1,
    "seq_len": 2048,
    "gradient_checkpointing": True,
}
ARCH = lookup("llama-3.1-8b")
assert ARCH is not None
P = ARCH.total_params
LAYER = ARCH.params_per_layer
GB = 1e9
FFT_8B = "real/axolotl/llama-3_fft-8b.yaml"


def memory(**changes: Any) -> MemoryEstimate:
    return AnalyticModel(get_device("h100")).memory(WorkloadConfig(**{**FULL, **changes}))


def states(estimate: MemoryEstimate) -> tuple[float, float, float]:
    return estimate.weights_gb, estimate.grads_gb, estimate.optimizer_gb


def test_fp32_master_weights_hold_4_bytes_of_weight_and_gradient_and_8_of_adamw_state() -> None:
    assert states(memory()) == pytest.approx((4 * P / GB, 4 * P / GB, 8 * P / GB))


def test_a_model_trained_in_bf16_holds_2_bytes_each_and_adamw_state_in_bf16() -> None:
    assert states(memory(pure_precision=True)) == pytest.approx(
        (2 * P / GB, 2 * P / GB, 4 * P / GB)
    )


def test_an_8bit_optimizers_state_is_2_bytes_whatever_the_weights() -> None:
    for pure in (False, True):
        estimate = memory(pure_precision=pure, optimizer="paged_adamw_8bit")
        assert estimate.optimizer_gb == pytest.approx(2 * P / GB)


def test_pure_precision_in_fp32_is_fp32() -> None:
    assert states(memory(precision="fp32", pure_precision=True)) == pytest.approx(
        states(memory(precision="fp32"))
    )


@pytest.mark.parametrize(
    ("stage", "weights", "grads", "optimizer"),
    [
        (0, 2 * P, 2 * P, 12 * P),
        (1, 2 * P, 2 * P, 12 * P / 8),
        (2, 2 * P, 2 * P / 8, 12 * P / 8),
        (3, 2 * P / 8 + 2 * LAYER * 2, 2 * P / 8, 12 * P / 8),
    ],
)
def test_deepspeed_zero_stages_split_optimizer_state_then_gradients_then_weights(
    stage: int, weights: float, grads: float, optimizer: float
) -> None:
    """16-bit weights and gradients, fp32 master weights plus fused AdamW's two fp32
    moments (12 B) as optimizer state; stage 3 holds two gathered layers in bf16."""
    estimate = memory(strategy="deepspeed", world_size=8, zero_stage=stage)
    assert states(estimate) == pytest.approx((weights / GB, grads / GB, optimizer / GB))


def test_an_unstated_zero_stage_is_modelled_as_stage_3() -> None:
    assert memory(strategy="deepspeed", world_size=8) == memory(
        strategy="deepspeed", world_size=8, zero_stage=3
    )


def test_fsdp_full_shard_and_shard_grad_op_split_the_weights_dtype_states() -> None:
    full_shard = memory(strategy="fsdp", world_size=4, pure_precision=True)
    assert states(full_shard) == pytest.approx(
        ((2 * P / 4 + 2 * LAYER * 2) / GB, 2 * P / 4 / GB, 4 * P / 4 / GB)
    )
    grad_op = memory(strategy="fsdp", world_size=4, pure_precision=True, zero_stage=2)
    assert states(grad_op) == pytest.approx((2 * P / GB, 2 * P / 4 / GB, 4 * P / 4 / GB))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("stage", [2, 3])
def test_fsdp_accumulating_under_accelerates_no_sync_holds_full_gradients_in_the_compute_dtype(
    version: int, stage: int
) -> None:
    """FSDP1's no_sync and FSDP2's set_requires_gradient_sync(False) keep each rank's
    unsharded gradients until the last micro-batch: 2 B per parameter in bf16 (the
    unsharded parameters' dtype), not fp32 master-weight shards (4 B / 8)."""
    sharded = memory(strategy="fsdp", world_size=8, zero_stage=stage, fsdp_version=version)
    assert sharded.grads_gb == pytest.approx(4 * P / 8 / GB)
    accumulating = memory(
        strategy="fsdp", world_size=8, zero_stage=stage, fsdp_version=version, grad_accum_steps=4
    )
    assert accumulating.grads_gb == pytest.approx(2 * P / GB)
    assert accumulating.total_gb - sharded.total_gb == pytest.approx((2 * P - 4 * P / 8) / GB)
    assert (accumulating.weights_gb, accumulating.optimizer_gb) == pytest.approx(
        (sharded.weights_gb, sharded.optimizer_gb)
    )


def test_sync_each_batch_keeps_gradient_shards_while_accumulating() -> None:
    sharded = {"strategy": "fsdp", "world_size": 8, "sync_each_batch": True}
    assert memory(**sharded, grad_accum_steps=4) == memory(**sharded)


@pytest.mark.parametrize("loop", ["torchtune", "llamafactory-v1", "torchtitan"])
def test_loops_that_reduce_every_micro_batch_keep_gradient_shards_when_accumulating(
    loop: str,
) -> None:
    states_of = {"strategy": "fsdp", "world_size": 8, "pure_precision": True, "training_loop": loop}
    assert memory(**states_of, grad_accum_steps=4) == memory(**states_of)


def test_deepspeed_partitions_gradients_while_accumulating_whatever_the_loop() -> None:
    for stage in (2, 3):
        zero = {"strategy": "deepspeed", "world_size": 8, "zero_stage": stage}
        assert memory(**zero, grad_accum_steps=4) == memory(**zero)


def test_fsdp_no_sync_gradients_stay_on_the_device_under_cpu_offload() -> None:
    """FSDP1's no_sync: "the gradients will not be offloaded to CPU when inside the
    context manager"; only the gathered layers' weights remain of the rest."""
    offloaded = {
        "strategy": "fsdp",
        "world_size": 8,
        "pure_precision": True,
        "offload_params": True,
    }
    assert memory(**offloaded).grads_gb == 0.0
    accumulating = memory(**offloaded, grad_accum_steps=2)
    assert states(accumulating) == pytest.approx((2 * LAYER * 2 / GB, 2 * P / GB, 0.0))


def test_two_ranks_of_fp32_shards_weigh_what_the_bf16_unsharded_gradients_do() -> None:
    """The larger of the two is held: the previous step's shards are set to None by the
    Trainer's zero_grad before the unsharded ones accumulate, never both in full."""
    pair = {"strategy": "fsdp", "world_size": 2, "zero_stage": 2}
    assert memory(**pair, grad_accum_steps=8).grads_gb == pytest.approx(memory(**pair).grads_gb)
    fp32 = dict(pair, precision="fp32")
    assert memory(**fp32, grad_accum_steps=8).grads_gb == pytest.approx(4 * P / GB)


def test_ddp_splits_nothing_even_with_a_stage() -> None:
    assert states(memory(strategy="ddp", world_size=8, zero_stage=3)) == pytest.approx(
        states(memory())
    )


def test_deepspeed_optimizer_offload_moves_optimizer_state_and_gradients_to_the_host() -> None:
    estimate = memory(strategy="deepspeed", world_size=8, zero_stage=2, offload_optimizer=True)
    assert states(estimate) == pytest.approx((2 * P / GB, 0.0, 0.0))


def test_parameter_offload_keeps_only_the_gathered_layers_on_the_device() -> None:
    deepspeed = memory(strategy="deepspeed", world_size=8, zero_stage=3, offload_params=True)
    assert states(deepspeed) == pytest.approx((2 * LAYER * 2 / GB, 2 * P / 8 / GB, 12 * P / 8 / GB))
    fsdp = memory(strategy="fsdp", world_size=1, offload_params=True, pure_precision=True)
    assert states(fsdp) == pytest.approx((2 * LAYER * 2 / GB, 0.0, 0.0))


def test_axolotl_fft_8b_loaded_in_bf16_fits_an_80gb_h100_because_its_weights_are_bf16(
    tmp_path: Path,
) -> None:
    """axolotl loads the model in bf16 (``bf16: auto``): 2 B weights and gradients and
    paged 8-bit AdamW's 2 B, ~62 GB; fp32 master weights would need ~94 GB."""
    config = load_workload(copy_in(tmp_path, FFT_8B), display=FFT_8B).config
    assert config.pure_precision and config.strategy == "single"
    runner = AnalyticModel(get_device("h100"))
    estimate = runner.memory(config)
    assert states(estimate) == pytest.approx((2 * P / GB, 2 * P / GB, 2 * P / GB))
    assert estimate.total_gb < 80
    assert runner.run(config, steps=1).hbm_peak_gb == pytest.approx(estimate.total_gb)
    with pytest.raises(OutOfMemory, match=r"needs 9[0-9]"):
        runner.run(config.model_copy(update={"pure_precision": False}), steps=1)


def test_the_oom_message_says_how_it_assumed_the_run_is_launched_and_how_to_say_otherwise() -> None:
    runner = AnalyticModel(get_device("h100"))
    big = WorkloadConfig(**{**FULL, "model": "llama-3.1-70b"})
    with pytest.raises(OutOfMemory) as info:
        runner.run(big, steps=1)
    assert "assuming one device, every rank holding all weights" in str(info.value)
    assert "sidecar (world_size, strategy, zero_stage, offload_optimizer" in str(info.value)
    sharded = big.model_copy(update={"strategy": "deepspeed", "world_size": 2, "zero_stage": 1})
    with pytest.raises(OutOfMemory, match="assuming deepspeed ZeRO stage 1 over 2 ranks;"):
        runner.run(sharded, steps=1)
    no_sync = big.model_copy(update={"strategy": "fsdp", "world_size": 2, "grad_accum_steps": 4})
    with pytest.raises(OutOfMemory, match="full gradients held across 4 accumulated micro-b"):
        runner.run(no_sync, steps=1)


# --- what the readers say --------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str, sidecar: str | None = None) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    if sidecar is not None:
        sidecar_path(path).write_text(sidecar, encoding="utf-8")
    return path


AXOLOTL = (
    "base_model: NousResearch/Meta-Llama-3.1-8B\nmicro_batch_size: 1\n"
    "gradient_accumulation_steps: 1\nsequence_len: 2048\n"
)
LLAMAFACTORY = (
    "model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct\nstage: sft\ndo_train: true\n"
    "finetuning_type: full\ncutoff_len: 1024\nbf16: true\n"
)


@pytest.mark.parametrize(
    ("text", "pure"),
    [
        (AXOLOTL, True),
        (AXOLOTL + "adapter: lora\nlora_r: 8\n", False),
        (LLAMAFACTORY, False),
        (LLAMAFACTORY + "pure_bf16: true\n", True),
        (
            "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\n"
            "torch_dtype: bfloat16\n",
            True,
        ),
        ("model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\n", False),
    ],
    ids=["axolotl-full", "axolotl-lora", "llamafactory", "pure_bf16", "trl-bf16-load", "trl"],
)
def test_readers_say_whether_the_model_trains_in_its_compute_dtype(
    tmp_path: Path, text: str, pure: bool
) -> None:
    assert load_workload(write(tmp_path, "w.yaml", text)).config.pure_precision is pure


@pytest.mark.parametrize(
    ("deepspeed", "expected"),
    [
        ("deepspeed_configs/zero1.json", (1, False, False)),
        ("deepspeed_configs/zero2.json", (2, True, False)),
        ("deepspeed_configs/zero3_bf16_cpuoffload_all.json", (3, True, True)),
        ("/opt/axolotl/deepspeed_configs/zero3_bf16_cpuoffload_params.json", (3, False, True)),
        ("my/own_zero.json", (None, False, False)),
        (
            "{zero_optimization: {stage: 2, offload_optimizer: {device: cpu}}}",
            (2, True, False),
        ),
        ("{train_micro_batch_size_per_gpu: auto}", (0, False, False)),
    ],
)
def test_an_axolotl_deepspeed_key_gives_the_stage_and_offload_it_runs_with(
    tmp_path: Path, deepspeed: str, expected: tuple[int | None, bool, bool]
) -> None:
    config = load_workload(write(tmp_path, "w.yaml", AXOLOTL + f"deepspeed: {deepspeed}\n")).config
    assert config.strategy == "deepspeed"
    assert (config.zero_stage, config.offload_optimizer, config.offload_params) == expected


def test_llamafactorys_shipped_deepspeed_configs_are_known(tmp_path: Path) -> None:
    relpath = "real/llamafactory/train_full_llama3_full_sft.yaml"
    config = load_workload(copy_in(tmp_path, relpath), display=relpath).config
    assert (config.strategy, config.zero_stage, config.offload_optimizer) == ("deepspeed", 3, False)


@pytest.mark.parametrize(
    ("fsdp", "expected"),
    [
        ("fsdp: full_shard auto_wrap\n", (3, False)),
        ("fsdp: shard_grad_op auto_wrap offload\n", (2, True)),
    ],
)
def test_trainer_fsdp_options_give_the_sharding_and_offload(
    tmp_path: Path, fsdp: str, expected: tuple[int, bool]
) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\n" + fsdp
    config = load_workload(write(tmp_path, "w.yaml", text)).config
    assert (config.strategy, config.zero_stage, config.offload_params) == ("fsdp", *expected)


def test_axolotl_fsdp_config_gives_sharding_and_offload(tmp_path: Path) -> None:
    relpath = "real/axolotl/llama-3_fft-8b-liger-fsdp.yaml"
    config = load_workload(copy_in(tmp_path, relpath), display=relpath).config
    assert (config.strategy, config.offload_params) == ("fsdp", True)
    text = AXOLOTL + "fsdp_version: 2\nfsdp_config:\n  reshard_after_forward: false\n"
    config = load_workload(write(tmp_path, "w.yaml", text)).config
    assert (config.strategy, config.zero_stage) == ("fsdp", 2)


@pytest.mark.parametrize(
    "accelerator_config",
    [
        "accelerator_config:\n  gradient_accumulation_kwargs:\n    sync_each_batch: true\n",
        """accelerator_config: '{"gradient_accumulation_kwargs": {"sync_each_batch": true}}'\n""",
    ],
)
def test_trainer_accelerator_config_says_whether_each_batch_syncs(
    tmp_path: Path, accelerator_config: str
) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\n"
    text += "fsdp: full_shard auto_wrap\ngradient_accumulation_steps: 4\n"
    assert load_workload(write(tmp_path, "a.yaml", text)).config.sync_each_batch is False
    workload = load_workload(write(tmp_path, "b.yaml", text + accelerator_config))
    assert workload.config.sync_each_batch is True
    assert workload.sources["sync_each_batch"] == (
        "accelerator_config.gradient_accumulation_kwargs.sync_each_batch"
    )


def test_axolotl_accelerator_config_says_whether_each_batch_syncs(tmp_path: Path) -> None:
    text = AXOLOTL + "fsdp_version: 2\nfsdp_config:\n  reshard_after_forward: true\n"
    text += "accelerator_config:\n  gradient_accumulation_kwargs:\n    sync_each_batch: True\n"
    assert load_workload(write(tmp_path, "w.yaml", text)).config.sync_each_batch is True


def test_a_sidecar_describes_a_launcher_that_shards_and_offloads(tmp_path: Path) -> None:
    sidecar = "world_size: 8\nstrategy: deepspeed\nzero_stage: 2\noffload_optimizer: true\n"
    config = load_workload(write(tmp_path, "w.yaml", AXOLOTL, sidecar)).config
    assert (config.world_size, config.strategy, config.zero_stage) == (8, "deepspeed", 2)
    assert config.offload_optimizer is True


def test_a_sidecar_stage_that_contradicts_the_files_deepspeed_config_is_an_error(
    tmp_path: Path,
) -> None:
    text = AXOLOTL + "deepspeed: deepspeed_configs/zero1.json\n"
    with pytest.raises(WorkloadError, match="differs from the file's own zero_stage") as info:
        load_workload(write(tmp_path, "w.yaml", text, "zero_stage: 3\n"))
    assert info.value.field == "zero_stage"


def test_a_workload_that_cannot_be_made_to_fit_says_which_launch_was_assumed() -> None:
    from pytest_goblin.audit.fit import fit

    found = fit(WorkloadConfig(**{**FULL, "model": "llama-3.1-70b"}), get_device("h100"))
    assert found is not None and not found.fits
    text = found.describe()
    assert "assuming one device, every rank holding all weights" in text
    assert "in the sidecar: world_size, strategy, zero_stage" in text
