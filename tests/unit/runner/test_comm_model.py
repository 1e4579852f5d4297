"""The analytic model charges DDP's settings: bucket latency and find_unused_parameters."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import AnalyticModel, ddp_buckets
from pytest_goblin.schemas import WorkloadConfig

MIB = 1024 * 1024
SMALL = {"layers": 4, "hidden": 256, "intermediate": 512, "heads": 4, "kv_heads": 2, "vocab": 1024}


def comm(device: str = "h100", **fields: Any) -> float:
    base: dict[str, Any] = {
        "model": "llama-3-8b",
        "world_size": 8,
        "strategy": "ddp",
        "precision": "bf16",
        "batch_size": 1,
        "seq_len": 2048,
        "gradient_checkpointing": True,
    }
    base.update(fields)
    return AnalyticModel(get_device(device)).step_budget(WorkloadConfig(**base)).comm_excess


def test_buckets_close_at_their_limit_the_first_at_one_mib_by_default() -> None:
    # torch 2.13: a bucket closes once it reaches its limit; unset, 1 MiB then 25 MiB
    assert ddp_buckets([MIB // 2] * 4 + [10 * MIB] * 5, None) == [MIB, 31 * MIB, 20 * MIB]
    assert ddp_buckets([10 * MIB] * 5, 20) == [20 * MIB, 20 * MIB, 10 * MIB]
    # a tensor larger than the limit fills a bucket by itself
    assert ddp_buckets([100 * MIB, MIB], 25) == [100 * MIB, MIB]


def test_smaller_buckets_cost_more_latency() -> None:
    # many small tensors: the number of all-reduces follows bucket_cap_mb
    default, tiny, big = (comm(model=SMALL, ddp_bucket_cap_mb=cap) for cap in (None, 1, 100))
    assert tiny > default > big


def test_find_unused_parameters_costs_a_graph_walk_and_an_all_reduce() -> None:
    off = comm(ddp_find_unused_parameters=False)
    on = comm(ddp_find_unused_parameters=True)
    assert on > off
    # the walk grows with the graph: LoRA adapters add nodes, the full model has more layers
    assert (
        comm(model=SMALL, ddp_find_unused_parameters=True)
        - comm(model=SMALL, ddp_find_unused_parameters=False)
        < on - off
    )


def test_unset_find_unused_parameters_is_charged_as_the_trainer_sets_it() -> None:
    # the Trainer turns it on without checkpointing, off with it (full fine-tune)
    assert comm(gradient_checkpointing=False) == comm(
        gradient_checkpointing=False, ddp_find_unused_parameters=True
    )
    assert comm() == comm(ddp_find_unused_parameters=False)


@pytest.mark.parametrize("fields", [{"ddp_find_unused_parameters": True}, {"ddp_bucket_cap_mb": 1}])
def test_ddp_settings_cost_nothing_without_ddp(fields: dict[str, Any]) -> None:
    assert comm(world_size=1, **fields) == 0.0
    assert comm(strategy="fsdp", **fields) == comm(strategy="fsdp")
