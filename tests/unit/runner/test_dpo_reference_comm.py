"""DPO's frozen reference copy is sharded like the policy (TRL prepare_fsdp / prepare_deepspeed):
under FULL_SHARD / ZeRO-3 its forward all-gathers its weights on every micro-batch, and the
copy is split across the ranks; at lower stages it is whole on every rank and gathers nothing."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import workloads
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import INTERCONNECT_GBS, AnalyticModel, reference_gathers
from pytest_goblin.schemas import WorkloadConfig

GB = 1e9


def config(**fields: Any) -> WorkloadConfig:
    return workloads.sharded_llama(
        **({"pure_precision": True, "grad_accum_steps": 4, "objective": "dpo"} | fields)
    )


def model() -> AnalyticModel:
    return AnalyticModel(get_device("h100"))


def extra_comm(**fields: Any) -> float:
    """What a reference copy adds to the communication over precomputed reference log-probs."""
    copied = model().step_budget(config(reference="model", **fields)).comm_excess
    return copied - model().step_budget(config(reference="precomputed", **fields)).comm_excess


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"zero_stage": 3}, 4),
        ({"strategy": "deepspeed", "zero_stage": 3}, 4),
        ({"zero_stage": 2}, 0),
        ({"strategy": "deepspeed", "zero_stage": 2}, 0),
        ({"strategy": "ddp"}, 0),
    ],
)
def test_the_reference_is_gathered_once_per_micro_batch_where_it_is_sharded(
    fields: dict[str, Any], expected: int
) -> None:
    assert reference_gathers(config(**fields), "model") == expected
    assert reference_gathers(config(**fields), "precomputed") == 0


def test_full_shard_charges_the_references_gathers() -> None:
    # A gathers of (n-1)/n of the 16-bit copy, each at least its bytes' time
    params = config().arch.total_params
    floor = 4 * 7 / 8 * params * 2 / (INTERCONNECT_GBS["cuda"] * GB)
    assert extra_comm(zero_stage=3) > floor
    assert extra_comm(zero_stage=3, grad_accum_steps=8) == pytest.approx(
        2 * extra_comm(zero_stage=3)
    )


def test_a_reference_whole_on_every_rank_moves_nothing() -> None:
    assert extra_comm(zero_stage=2) == 0.0
    assert extra_comm(strategy="deepspeed", zero_stage=1) == 0.0


def test_the_copy_is_split_across_ranks_only_where_it_is_sharded() -> None:
    def extra_weights(**fields: Any) -> float:
        copied = model().memory(config(reference="model", **fields)).weights_gb
        return copied - model().memory(config(reference="precomputed", **fields)).weights_gb

    copy_gb = config().arch.total_params * 2 / GB
    assert extra_weights(zero_stage=3) == pytest.approx(copy_gb / 8)
    assert extra_weights(zero_stage=2) == pytest.approx(copy_gb)
