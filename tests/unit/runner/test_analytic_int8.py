"""LoRA over an 8-bit LLM.int8() base (``finetune: lora8``) in the analytic model: the bytes
it holds and moves are bitsandbytes' ``MatMul8bitLt`` mechanism, counted exactly."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.workloads import LLAMA_LORA
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import (
    BANDWIDTH_EFFICIENCY,
    INT8_BYTES_PER_PARAM,
    INT8_SCALE_BYTES,
    AnalyticModel,
)
from pytest_goblin.schemas import WorkloadConfig

LLAMA_LORA8: dict[str, Any] = {**LLAMA_LORA, "finetune": "lora8"}

GB = 1e9


def config(**changes: Any) -> WorkloadConfig:
    return WorkloadConfig(**{**LLAMA_LORA8, **changes})


def decoder_linears(cfg: WorkloadConfig) -> list[tuple[int, int]]:
    """(in, out) of every decoder-layer linear, over all layers."""
    arch = cfg.arch
    assert arch is not None
    return list(arch.layer_linear_shapes().values()) * arch.layers


def test_an_8_bit_base_holds_a_byte_per_decoder_weight_and_a_scale_per_row() -> None:
    model = AnalyticModel(get_device("mi300x"))
    int8 = model.memory(config()).weights_gb
    sixteen = model.memory(config(finetune="lora")).weights_gb
    linears = decoder_linears(config())
    weights = sum(i * o for i, o in linears)
    rows = sum(o for _, o in linears)
    # the 16-bit base holds 2 B per decoder weight; the 8-bit one 1 B plus an fp32 scale per row
    expected = (weights * (2 - INT8_BYTES_PER_PARAM) - rows * INT8_SCALE_BYTES) / GB
    assert sixteen - int8 == pytest.approx(expected, rel=1e-9)
    assert model.memory(config(finetune="qlora")).weights_gb < int8 < sixteen


def test_a_bf16_run_pays_bitsandbytes_fp16_casts_on_every_8_bit_linear() -> None:
    # MatMul8bitLt casts a non-fp16 input to fp16 before quantising and its fp16 output back:
    # read 2 + write 2 bytes per input and per output element. H100's fp16 and bf16 peaks
    # are equal, so the casts are the whole difference; a 16-bit LoRA has none.
    device = get_device("h100")
    model = AnalyticModel(device)
    lora = [model.run(config(finetune="lora", precision=p), steps=10) for p in ("bf16", "fp16")]
    assert lora[0].step_time_s == pytest.approx(lora[1].step_time_s, rel=1e-12)
    bf16, fp16 = (model.run(config(precision=p), steps=10) for p in ("bf16", "fp16"))
    tokens = LLAMA_LORA8["batch_size"] * LLAMA_LORA8["seq_len"]
    moved = tokens * sum(4 * i + 4 * o for i, o in decoder_linears(config()))
    bandwidth = device.bandwidth_gbs * GB * BANDWIDTH_EFFICIENCY
    assert bf16.step_time_s - fp16.step_time_s == pytest.approx(moved / bandwidth, rel=1e-9)


def test_the_quantisation_cost_is_memory_headroom_waste() -> None:
    # On an H100 the quantisation traffic outweighs the int8 GEMMs' saving: the 16-bit
    # base's time is the lean one, and the excess is spent to save memory.
    model = AnalyticModel(get_device("h100"))
    int8 = model.step_budget(config())
    sixteen = model.step_budget(config(finetune="lora"))
    assert sixteen.memory_headroom == 0
    assert int8.memory_headroom > 0
    assert int8.useful_gpu == pytest.approx(sixteen.useful_gpu, rel=1e-6)


def test_a_dpo_reference_forward_runs_the_8_bit_base_once_more() -> None:
    # The reference log-probs of a LoRA DPO run are a forward of the 8-bit base with the
    # adapter off: over the same sequences it costs what checkpointing's second forward
    # costs, relative to a 16-bit base.
    model = AnalyticModel(get_device("h100"))
    dpo = {"precision": "fp16", "batch_size": 1, "objective": "dpo"}

    def extra(**fields: Any) -> float:
        int8 = model.run(config(**dpo, **fields), steps=10).step_time_s
        return int8 - model.run(config(finetune="lora", **dpo, **fields), steps=10).step_time_s

    reference = extra(reference="adapter") - extra(reference="precomputed")
    recompute = extra(reference="precomputed", gradient_checkpointing=True) - extra(
        reference="precomputed"
    )
    assert reference != 0
    assert reference == pytest.approx(recompute, rel=1e-6)
