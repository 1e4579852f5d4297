"""Whose training loop runs a sharded workload decides how often FSDP reduces gradients
(accelerate once per optimizer step, torchtune, LLaMA-Factory v1 and torchtitan on every
micro-batch),
and the gradients cross the interconnect in the dtype each framework reduces in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import workloads
from helpers.format_support import load, write
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import (
    INTERCONNECT_GBS,
    AnalyticModel,
    reduced_gradient_bytes,
    sharded_collectives,
)
from pytest_goblin.schemas import WorkloadConfig

GB = 1e9


def config(**fields: Any) -> WorkloadConfig:
    return workloads.sharded_llama(**({"pure_precision": True} | fields))


def comm(cfg: WorkloadConfig) -> float:
    return AnalyticModel(get_device("h100")).step_budget(cfg).comm_excess


def test_the_default_loop_is_accelerates_so_existing_workloads_keep_their_accounting() -> None:
    assert WorkloadConfig().training_loop == "accelerate"


@pytest.mark.parametrize("loop", ["torchtune", "llamafactory-v1", "torchtitan"])
def test_a_loop_without_no_sync_reduce_scatters_every_micro_batch(loop: str) -> None:
    assert sharded_collectives(config(grad_accum_steps=4)) == (8, 1)
    assert sharded_collectives(config(grad_accum_steps=4, training_loop=loop)) == (8, 4)
    # one micro-batch per step: nothing to skip, the same collectives
    assert sharded_collectives(config(training_loop=loop)) == sharded_collectives(config())
    assert comm(config(training_loop="torchtune")) == comm(config())


def test_torchtunes_extra_reduce_scatters_are_charged_per_accumulated_micro_batch() -> None:
    def extra(accum: int) -> float:
        tuned = comm(config(grad_accum_steps=accum, training_loop="torchtune"))
        return tuned - comm(config(grad_accum_steps=accum))

    # A - 1 more reduce-scatters of the 16-bit gradients, each at least its bytes' time
    params = config().arch.total_params
    floor = 7 / 8 * params * 2 / (INTERCONNECT_GBS["cuda"] * GB)
    assert extra(4) > 3 * floor
    assert extra(8) == pytest.approx(7 / 3 * extra(4))


def test_deepspeeds_reductions_do_not_depend_on_the_loop() -> None:
    fields = {"strategy": "deepspeed", "zero_stage": 1, "grad_accum_steps": 4}
    assert sharded_collectives(config(**fields, training_loop="torchtune")) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"strategy": "deepspeed", "precision": "bf16"}, 2.0),
        ({"strategy": "deepspeed", "precision": "fp32"}, 4.0),
        ({"strategy": "fsdp", "precision": "bf16"}, 2.0),
        ({"strategy": "fsdp", "precision": "fp16"}, 2.0),
        ({"strategy": "fsdp", "precision": "fp32"}, 4.0),
        ({"strategy": "fsdp", "precision": "bf16", "training_loop": "torchtune"}, 2.0),
        ({"strategy": "fsdp", "precision": "bf16", "training_loop": "llamafactory-v1"}, 4.0),
        ({"strategy": "fsdp", "precision": "bf16", "training_loop": "torchtitan"}, 4.0),
    ],
)
def test_gradients_are_reduced_in_the_frameworks_dtype(
    fields: dict[str, Any], expected: float
) -> None:
    cfg = config(**fields)
    assert reduced_gradient_bytes(cfg, cfg.precision) == expected


def test_llamafactory_v1_reduces_in_fp32_so_moves_more_than_torchtune() -> None:
    torchtune = comm(config(grad_accum_steps=4, training_loop="torchtune"))
    assert comm(config(grad_accum_steps=4, training_loop="llamafactory-v1")) > torchtune


def test_readers_record_the_loop_their_framework_runs(tmp_path: Path) -> None:
    tuned = load(tmp_path, "torchtune/qwen25_7b_lora_distributed.yaml").config
    assert (tuned.strategy, tuned.training_loop) == ("fsdp", "torchtune")
    v1 = "model: Qwen/Qwen3-4B\nmodel_class: llm\ntrain_dataset: d.yaml\n"
    v1 += "dist_config:\n  name: fsdp2\n"
    assert write(tmp_path, "v1/a.yaml", v1).config.training_loop == "llamafactory-v1"
    for path in ("axolotl/qwen25-7b-support-qlora.yml", "llamafactory/gemma2_2b_full_ds2.yaml"):
        assert load(tmp_path, path).config.training_loop == "accelerate"


def test_the_native_format_accepts_the_loop(tmp_path: Path) -> None:
    text = "model: llama-3-8b\nworld_size: 8\nstrategy: fsdp\ntraining_loop: torchtune\n"
    assert write(tmp_path, "w/a.yaml", text).config.training_loop == "torchtune"


def test_ddp_all_reduces_a_pure_16_bit_models_gradients_in_16_bits() -> None:
    # torch DDP reduces param.grad as it is: fp32 beside AMP's master weights, bf16 for a
    # model loaded and trained in bf16 (no comm hook), so the bytes halve
    amp = config(strategy="ddp", model="llama-3.2-1b", pure_precision=False)
    pure = config(strategy="ddp", model="llama-3.2-1b")
    assert comm(pure) < comm(amp)
