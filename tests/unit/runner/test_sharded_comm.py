"""The analytic model's FSDP / DeepSpeed collectives: how often per optimizer step, how many
bytes (frozen bases included), and what offload moves over PCIe instead of the device step."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import workloads
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import (
    HOST_OPTIMIZER_NOT_PRICED,
    INTERCONNECT_GBS,
    QLORA_BYTES_PER_PARAM,
    AnalyticModel,
    sharded_collectives,
)
from pytest_goblin.schemas import WasteBudget, WorkloadConfig

LORA = {"finetune": "lora", "lora_rank": 16, "lora_targets": ["all-linear"]}
QLORA = {**LORA, "finetune": "qlora"}


def config(**fields: Any) -> WorkloadConfig:
    return workloads.sharded_llama(**fields)


def budget(device: str = "h100", **fields: Any) -> WasteBudget:
    return AnalyticModel(get_device(device)).step_budget(config(**fields))


def comm(device: str = "h100", **fields: Any) -> float:
    return budget(device, **fields).comm_excess


def test_full_shard_gathers_parameters_in_every_micro_batch() -> None:
    # FSDP FULL_SHARD: two all-gathers per micro-batch, one reduce-scatter per step
    assert sharded_collectives(config(grad_accum_steps=4)) == (8, 1)
    one, four = comm(grad_accum_steps=1), comm(grad_accum_steps=4)
    assert four > 2.5 * one
    # the same global batch in fewer, larger micro-batches gathers less
    assert comm(batch_size=4, grad_accum_steps=1) < comm(batch_size=1, grad_accum_steps=4)


def test_ddp_all_reduces_once_per_optimizer_step() -> None:
    assert comm(strategy="ddp", grad_accum_steps=4) == comm(strategy="ddp", grad_accum_steps=1)


def test_sync_each_batch_reduces_on_every_micro_batch() -> None:
    """accelerate's sync_each_batch enters no no_sync: FSDP reduce-scatters and DDP
    all-reduces in every backward, and FSDP1 SHARD_GRAD_OP frees its parameters after each."""
    assert sharded_collectives(config(grad_accum_steps=4, sync_each_batch=True)) == (8, 4)
    fsdp1 = {"zero_stage": 2, "fsdp_version": 1, "grad_accum_steps": 4}
    assert sharded_collectives(config(**fsdp1)) == (1, 1)
    assert sharded_collectives(config(**fsdp1, sync_each_batch=True)) == (4, 4)
    ddp = {"strategy": "ddp", "grad_accum_steps": 4}
    assert comm(**ddp, sync_each_batch=True) == pytest.approx(4 * comm(**ddp))


def test_sync_each_batch_belongs_to_accelerates_loop() -> None:
    with pytest.raises(ValueError, match="sync_each_batch: training_loop torchtune"):
        config(training_loop="torchtune", sync_each_batch=True)


@pytest.mark.parametrize(
    ("stage", "expected"),
    [(1, (1, 1)), (2, (1, 4)), (3, (8, 4)), (0, (0, 1))],
)
def test_deepspeed_collectives_per_stage(stage: int, expected: tuple[int, int]) -> None:
    # ZeRO-1/2 keep parameters whole: one gather of the updated partitions per step;
    # from stage 2 gradients are reduced every micro-step, stage 1 at the boundary
    cfg = config(strategy="deepspeed", zero_stage=stage, grad_accum_steps=4)
    assert sharded_collectives(cfg) == expected


def test_zero_1_communication_does_not_grow_with_accumulation() -> None:
    fields = {"strategy": "deepspeed", "zero_stage": 1}
    assert comm(grad_accum_steps=4, **fields) == comm(grad_accum_steps=1, **fields)


def test_shard_grad_op_gathers_once_per_micro_batch() -> None:
    assert sharded_collectives(config(zero_stage=2, grad_accum_steps=4)) == (4, 1)
    assert comm(zero_stage=2, grad_accum_steps=4) < comm(zero_stage=3, grad_accum_steps=4)


def test_qlora_under_fsdp_gathers_its_4_bit_base() -> None:
    cfg = config(**QLORA)
    arch = cfg.arch
    base_linears = arch.layers * sum(i * o for i, o in arch.layer_linear_shapes().values())
    # two gathers of (n-1)/n of the packed base at the interconnect's rate, at least
    floor = 2 * 7 / 8 * base_linears * QLORA_BYTES_PER_PARAM / (INTERCONNECT_GBS["cuda"] * 1e9)
    assert comm(**QLORA) > floor
    # a 16-bit base moves four times the bytes of a 4-bit one (embeddings and head are
    # 16-bit in both)
    assert comm(**LORA) > 2 * comm(**QLORA)
    # ZeRO-2 keeps the frozen base whole on every rank: only adapters move
    assert comm(strategy="deepspeed", zero_stage=2, **QLORA) < comm(**QLORA) / 10


def test_an_offloaded_optimizer_costs_no_device_step_and_says_so() -> None:
    fields = {"strategy": "deepspeed", "zero_stage": 2, "offload_optimizer": True}
    # the device does not step: a slower torch AdamW changes nothing
    assert budget(optimizer="adamw_torch", **fields).total == pytest.approx(
        budget(optimizer="adamw_torch_fused", **fields).total
    )
    assert budget(optimizer="adamw_torch").total > budget(optimizer="adamw_torch_fused").total
    # its gradient and parameter copies cross PCIe
    assert comm(**fields) > comm(strategy="deepspeed", zero_stage=2)
    metrics = AnalyticModel(get_device("h100")).run(config(**fields), steps=1)
    assert HOST_OPTIMIZER_NOT_PRICED in metrics.warnings
    plain = AnalyticModel(get_device("h100")).run(config(strategy="deepspeed"), steps=1)
    assert HOST_OPTIMIZER_NOT_PRICED not in plain.warnings


def test_single_gpu_zero_offload_copies_over_pcie_but_not_on_the_host() -> None:
    fields = {"world_size": 1, "strategy": "deepspeed", "zero_stage": 2, "offload_optimizer": True}
    assert comm(**fields) > 0
    assert comm(device="cpu", model="qwen2.5-0.5b", **fields) == 0.0


def test_offloaded_parameters_are_copied_before_every_gather() -> None:
    offloaded = comm(offload_params=True, grad_accum_steps=4)
    assert offloaded > comm(offload_optimizer=True, grad_accum_steps=4)
