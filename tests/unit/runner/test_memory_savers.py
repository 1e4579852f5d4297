"""Specification of the memory savers the frameworks run beside checkpointing: activation
offloading (torchtune's enable_activation_offloading) and the optimizer step inside the
backward (torchtune's optimizer_in_bwd), as the analytic model prices them."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import workloads
from pytest_goblin.catalogue.architectures import ModelArch
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import (
    OFFLOAD_FORWARD_STASH,
    PINNED_H2D_GBS,
    AnalyticModel,
)
from pytest_goblin.schemas import WorkloadConfig

H100 = AnalyticModel(get_device("h100"))

NARROW = ModelArch(
    name="narrow", layers=8, hidden=64, intermediate=256, heads=2, kv_heads=2, vocab=256
)
"""A model so narrow that copying its activations takes longer than computing them."""


def config(**fields: Any) -> WorkloadConfig:
    return workloads.pure_bf16_llama(**fields)


def test_offloading_leaves_only_the_layers_in_flight_on_the_device() -> None:
    kept = H100.memory(config())
    offloaded = H100.memory(config(activation_offloading=True))
    arch = config().arch
    layer_input = 2 * 2 * 2048 * arch.hidden / 1e9  # CHECKPOINT_BYTES x s x b x h, GB
    moved = (arch.layers - OFFLOAD_FORWARD_STASH) * layer_input
    assert offloaded.activations_gb == pytest.approx(kept.activations_gb - moved)
    assert (offloaded.weights_gb, offloaded.grads_gb) == (kept.weights_gb, kept.grads_gb)


def test_offloading_without_checkpointing_keeps_one_layer() -> None:
    kept = H100.memory(config(gradient_checkpointing=False))
    offloaded = H100.memory(config(gradient_checkpointing=False, activation_offloading=True))
    arch = config().arch
    full_layer = 34 * 2048 * 2 * arch.hidden / 1e9  # Korthikanti's 34 s b h, GB
    moved = (arch.layers - 1) * full_layer
    assert offloaded.activations_gb == pytest.approx(kept.activations_gb - moved)


def test_offload_copies_hide_behind_the_compute_of_a_wide_model() -> None:
    plain = H100.step_budget(config())
    offloaded = H100.step_budget(config(activation_offloading=True))
    assert offloaded.total == pytest.approx(plain.total)


def test_offload_copies_longer_than_the_compute_stall_the_step() -> None:
    narrow = {"model": NARROW, "model_name": "narrow", "batch_size": 64, "seq_len": 256}
    plain = H100.step_budget(config(gradient_checkpointing=False, **narrow))
    offloaded = H100.step_budget(
        config(gradient_checkpointing=False, activation_offloading=True, **narrow)
    )
    full_layer = 64 * 256 * NARROW.hidden * 34  # one layer's saved set, 16-bit
    copies = 2 * NARROW.layers * full_layer / (PINNED_H2D_GBS * 1e9)
    # the micro-batch's device time is the copies' (the optimizer step of so small a model
    # is a few microseconds), and what they add over the compute is memory headroom
    device = (
        offloaded.useful_gpu
        + offloaded.precision_path
        + offloaded.kernel_shape
        + offloaded.memory_headroom
    )
    assert device == pytest.approx(copies, rel=1e-3)
    assert offloaded.memory_headroom > plain.memory_headroom
    assert offloaded.total > plain.total


def test_offloading_on_the_host_is_modelled_as_off_and_said_so() -> None:
    cpu = AnalyticModel(get_device("cpu"))
    small = {"model": NARROW, "model_name": "narrow", "seq_len": 256}
    plain = cpu.memory(config(**small))
    asked = config(activation_offloading=True, **small)
    assert cpu.memory(asked) == plain
    warnings = cpu.run(asked, steps=1).warnings
    assert any("activation offloading" in w for w in warnings)


def test_optimizer_in_backward_holds_one_gradient_at_a_time() -> None:
    plain = H100.memory(config())
    fused = H100.memory(config(optimizer_in_backward=True))
    arch = config().arch
    largest = arch.vocab * arch.hidden * 2 / 1e9  # the embedding's bf16 gradient
    assert fused.grads_gb == pytest.approx(largest)
    assert fused.grads_gb < plain.grads_gb / 10
    assert fused.optimizer_gb == plain.optimizer_gb
    assert fused.total_gb == pytest.approx(plain.total_gb - plain.grads_gb + largest)


def test_optimizer_in_backward_cannot_accumulate() -> None:
    with pytest.raises(ValueError, match="grad_accum_steps 2"):
        config(optimizer_in_backward=True, grad_accum_steps=2)


def test_torchtune_offloading_goes_off_with_checkpointing() -> None:
    torchtune = config(activation_offloading=True, training_loop="torchtune")
    patched = WorkloadConfig.model_validate(
        {**torchtune.model_dump(), "gradient_checkpointing": False}
    )
    assert not patched.activation_offloading
    other = config(activation_offloading=True, gradient_checkpointing=False)
    assert other.activation_offloading
