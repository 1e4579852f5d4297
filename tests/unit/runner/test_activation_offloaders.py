"""Specification of how the analytic model prices each framework's activation offloading
(``activation_offloader``): TRL's and axolotl's offloader wraps the whole training step, so
the loss's saved log-probabilities are copied to the host too; axolotl's ``hidden_states``
mode keeps two layer inputs in flight instead of five."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import workloads
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import PINNED_H2D_GBS, AnalyticModel
from pytest_goblin.schemas import WorkloadConfig

H100 = AnalyticModel(get_device("h100"))


def config(**fields: Any) -> WorkloadConfig:
    return workloads.pure_bf16_llama(
        **({"grad_accum_steps": 4, "activation_offloading": True} | fields)
    )


def test_an_unnamed_offloader_is_torchtunes_and_none_while_off() -> None:
    assert config().activation_offloader == "torchtune"
    assert config(activation_offloading=False).activation_offloader is None
    assert (
        config(activation_offloader="trl", activation_offloading=False).activation_offloader is None
    )


@pytest.mark.parametrize("offloader", ["trl", "axolotl"])
def test_offloading_the_training_step_copies_the_loss_log_probs_out_in_series(
    offloader: str,
) -> None:
    torchtune = H100.step_budget(config())
    step = H100.step_budget(config(activation_offloader=offloader))
    arch = config().arch
    log_probs = 2 * 2048 * arch.vocab * 4  # fp32 log-softmax of the micro-batch
    copy = log_probs / (PINNED_H2D_GBS * 1e9)
    assert step.total == pytest.approx(torchtune.total + 4 * copy, rel=1e-6)
    # it stays in the forward's stash for the backward: the device peak is unchanged
    assert H100.memory(config(activation_offloader=offloader)) == H100.memory(config())


def test_a_fused_loss_leaves_only_its_input_sized_tensor_to_copy() -> None:
    extras = {"use_liger_kernel": True}
    torchtune = H100.step_budget(config(extras=extras))
    trl = H100.step_budget(config(extras=extras, activation_offloader="trl"))
    arch = config().arch
    saved = 2 * 2048 * (arch.hidden * 2 + 4)  # Liger's grad_input (bf16) + fp32 loss per token
    assert trl.total == pytest.approx(torchtune.total + 4 * saved / (PINNED_H2D_GBS * 1e9))


def test_axolotl_hidden_states_keeps_two_layer_inputs_in_flight_not_five() -> None:
    torchtune = H100.memory(config())
    hidden = H100.memory(config(activation_offloader="axolotl-hidden-states"))
    layer_input = 2 * 2 * 2048 * config().arch.hidden / 1e9  # CHECKPOINT_BYTES x s x b x h, GB
    assert hidden.activations_gb == pytest.approx(torchtune.activations_gb - 3 * layer_input)
    assert H100.step_budget(config(activation_offloader="axolotl-hidden-states")).total == (
        pytest.approx(H100.step_budget(config()).total)
    )


def test_axolotl_offloading_goes_off_with_checkpointing_and_trls_does_not() -> None:
    for offloader in ("axolotl", "axolotl-hidden-states"):
        assert not config(
            activation_offloader=offloader, gradient_checkpointing=False
        ).activation_offloading
    trl = config(activation_offloader="trl", gradient_checkpointing=False)
    assert trl.activation_offloading and trl.activation_offloader == "trl"
