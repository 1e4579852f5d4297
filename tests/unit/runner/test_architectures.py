"""Preset architectures match their published parameter counts; MFU stays physical."""

from __future__ import annotations

import itertools

import pytest

from pytest_goblin.catalogue.architectures import PRESETS, lookup
from pytest_goblin.catalogue.devices import DEVICES
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.schemas import WorkloadConfig

PUBLISHED_BILLIONS = {
    # the model cards' / Hub pages' parameter counts
    "llama-3-8b": 8.03,
    "llama-3.1-8b": 8.03,
    "llama-3.2-1b": 1.24,
    "llama-3.2-3b": 3.21,
    "llama-3.1-70b": 70.6,
    "qwen2.5-0.5b": 0.49,
    "qwen2.5-7b": 7.61,
    "mistral-7b": 7.24,
    "mistral-7b-v0.3": 7.25,
    "gemma-2-2b": 2.61,
    "phi-3-mini": 3.82,
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_parameter_count_is_within_one_percent_of_the_published_total(
    preset: str,
) -> None:
    computed = PRESETS[preset].total_params / 1e9
    assert computed == pytest.approx(PUBLISHED_BILLIONS[preset], rel=0.01)


@pytest.mark.parametrize(
    ("model_id", "preset"),
    [
        ("meta-llama/Llama-3.2-3B-Instruct", "llama-3.2-3b"),
        ("mistralai/Mistral-7B-Instruct-v0.1", "mistral-7b"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral-7b"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"),
        ("unsloth/mistral-7b-v0.3-bnb-4bit", "mistral-7b-v0.3"),
        ("unsloth/Llama-3.2-1B-Instruct-unsloth-bnb-4bit", "llama-3.2-1b"),
        ("google/gemma-2-2b-it", "gemma-2-2b"),
    ],
)
def test_a_model_id_finds_its_preset_whatever_its_variant_tags(model_id: str, preset: str) -> None:
    found = lookup(model_id)
    assert found is not None and found.name == preset


def test_a_model_id_of_another_size_finds_no_preset() -> None:
    assert lookup("Qwen/Qwen2.5-14B-Instruct") is None


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_projected_mfu_is_never_above_one_hundred_percent(device: str) -> None:
    runner = AnalyticModel(DEVICES[device])
    grid = itertools.product(
        ["qwen2.5-0.5b", "llama-3.2-1b", "llama-3-8b"],
        ["fp32", "bf16", "fp16"],
        ["eager", "sdpa", "flash"],
        [1, 8, 32],
        [False, True],
    )
    for model, precision, attention, batch, compile_ in grid:
        config = WorkloadConfig(
            model=model,
            precision=precision,
            attention_impl=attention,
            batch_size=batch,
            seq_len=1024,
            torch_compile=compile_,
            finetune="lora",
            dataloader_workers=4,
        )
        try:
            metrics = runner.run(config, 10)
        except OutOfMemory:
            continue
        assert metrics.mfu_pct is not None and 0 < metrics.mfu_pct <= 100, (config, metrics)
