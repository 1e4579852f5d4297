"""Preset architectures match their published parameter counts; MFU stays physical."""

from __future__ import annotations

import itertools

import pytest

from pytest_goblin.catalogue.architectures import _ALIASES, PRESETS, lookup, unsupported
from pytest_goblin.catalogue.devices import DEVICES
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.schemas import WorkloadConfig

PUBLISHED_BILLIONS = {
    # the model cards' / Hub pages' parameter counts, as printed there
    "llama-3-8b": "8.03",
    "llama-3.1-8b": "8.03",
    "llama-3.2-1b": "1.24",
    "llama-3.2-3b": "3.21",
    "llama-3.1-70b": "70.6",
    "qwen2.5-0.5b": "0.49",
    "qwen2.5-7b": "7.61",
    "mistral-7b": "7.24",
    "mistral-7b-v0.3": "7.25",
    "gemma-2-2b": "2.61",
    "phi-3-mini": "3.82",
    "llama-2-7b": "6.74",
    "llama-2-13b": "13.0",
    "llama-2-70b": "69.0",
    "llama-3-70b": "70.6",
    "llama-3.3-70b": "70.6",
    "llama-3.1-405b": "406",
    "tinyllama-1.1b": "1.1",
    "codellama-7b": "6.74",
    "codellama-13b": "13.0",
    "codellama-34b": "33.7",
    "qwen2-0.5b": "0.49",
    "qwen2-1.5b": "1.54",
    "qwen2-7b": "7.62",
    "qwen2.5-1.5b": "1.54",
    "qwen2.5-3b": "3.09",
    "qwen2.5-14b": "14.7",
    "qwen2.5-32b": "32.5",
    "qwen2.5-72b": "72.7",
    "qwen3-0.6b": "0.6",
    "qwen3-1.7b": "1.7",
    "qwen3-4b": "4.0",
    "qwen3-8b": "8.2",
    "qwen3-14b": "14.8",
    "qwen3-32b": "32.8",
    "gemma-2b": "2.51",
    "gemma-7b": "8.54",
    "gemma-2-9b": "9.24",
    "gemma-2-27b": "27.2",
    "phi-4": "14.7",
    "smollm2-135m": "0.135",
    "smollm2-360m": "0.362",
    "smollm2-1.7b": "1.71",
    # keras-hub keras_hub/src/models/gemma3/gemma3_presets.py "gemma3_1b": 999,885,952
    # (with the q/k and pre/post-MLP norms this count leaves out)
    "gemma-3-1b": "1.000",
    # rasbt/LLMs-from-scratch ch05/12_gemma3 (loads google/gemma-3-270m): 268,098,176
    "gemma-3-270m": "0.268",
    # model.safetensors.index.json of a full fine-tune of it: 1,777,088,000 (untied)
    "deepseek-r1-distill-qwen-1.5b": "1.777",
    "mistral-nemo-12b": "12.2",
    # the 23,572,403,200 text parameters of Mistral-Small-3.x (24.0B with its vision encoder)
    "mistral-small-24b": "23.57",
    "ministral-8b": "8.02",
    "phi-3-medium": "14.0",
    "open-llama-3b": "3.43",
    "stablelm-2-1.6b": "1.64",
}
NON_EMBEDDING_BILLIONS = {
    # the Qwen3 model cards' "Number of Parameters (Non-Embedding)": checks the untied
    # head of 8B and up, and head_dim 128 where heads x 128 != hidden
    "qwen3-0.6b": "0.44",
    "qwen3-1.7b": "1.4",
    "qwen3-4b": "3.6",
    "qwen3-8b": "6.95",
    "qwen3-14b": "13.2",
    "qwen3-32b": "31.2",
}


def tolerance(published: str) -> float:
    """1% of the figure, or half a unit of its last digit when it is printed coarser
    (Qwen3-1.7B's "1.7B" is anything from 1.65B to 1.75B)."""
    decimals = len(published.partition(".")[2])
    return max(0.01 * float(published), 0.5 * 10**-decimals)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_parameter_count_is_within_one_percent_of_the_published_total(
    preset: str,
) -> None:
    computed = PRESETS[preset].total_params / 1e9
    published = PUBLISHED_BILLIONS[preset]
    assert computed == pytest.approx(float(published), abs=tolerance(published))


def test_exact_published_counts_of_the_sourced_small_presets() -> None:
    """gemma-3-270m: the 268,098,176 parameters of the notebook that loads its checkpoint,
    less the q/k norms (2 x 256) and pre/post-MLP norms (2 x 640) of each layer, which the
    analytic model leaves out; DeepSeek-R1-Distill-Qwen-1.5B: the 1,777,088,000 of a saved
    copy's safetensors index, an untied LM head on Qwen2.5-1.5B's dims."""
    gemma = PRESETS["gemma-3-270m"]
    assert gemma.total_params + gemma.layers * (2 * 256 + 2 * 640) == 268_098_176
    distill = PRESETS["deepseek-r1-distill-qwen-1.5b"]
    assert distill.total_params == 1_777_088_000
    base = PRESETS["qwen2.5-1.5b"]
    assert distill.total_params == base.total_params + base.vocab * base.hidden


@pytest.mark.parametrize(
    ("model_id", "total", "non_embedding"),
    [
        ("Qwen/Qwen2.5-Coder-0.5B", "0.49", "0.36"),
        ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "1.54", "1.31"),
        ("Qwen/Qwen2.5-Coder-3B", "3.09", "2.77"),
    ],
)
def test_small_qwen_coders_match_their_model_cards_with_tied_embeddings(
    model_id: str, total: str, non_embedding: str
) -> None:
    arch = lookup(model_id)
    assert arch is not None and arch.tied_embeddings
    assert arch.total_params / 1e9 == pytest.approx(float(total), abs=tolerance(total))
    computed = (arch.total_params - arch.embedding_params) / 1e9
    assert computed == pytest.approx(float(non_embedding), abs=tolerance(non_embedding))


@pytest.mark.parametrize("preset", sorted(NON_EMBEDDING_BILLIONS))
def test_qwen3_non_embedding_parameters_match_the_model_cards(preset: str) -> None:
    arch = PRESETS[preset]
    computed = (arch.total_params - arch.embedding_params - arch.lm_head_params) / 1e9
    published = NON_EMBEDDING_BILLIONS[preset]
    assert computed == pytest.approx(float(published), abs=tolerance(published))


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
        ("Qwen/Qwen3-4B-Instruct-2507", "qwen3-4b"),
        ("Qwen/Qwen3-4B-Thinking-2507", "qwen3-4b"),
        ("unsloth/qwen3-14b-unsloth-bnb-4bit", "qwen3-14b"),
        ("NousResearch/Llama-2-7b-hf", "llama-2-7b"),
        ("meta-llama/Llama-2-13b-chat-hf", "llama-2-13b"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "tinyllama-1.1b"),
        ("google/gemma-7b", "gemma-7b"),
        ("google/gemma-2-9b-it", "gemma-2-9b"),
        ("microsoft/phi-4", "phi-4"),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "smollm2-1.7b"),
        ("codellama/CodeLlama-34b-Instruct-hf", "codellama-34b"),
        ("google/gemma-3-1b-it", "gemma-3-1b"),
        ("google/gemma-3-1b-pt", "gemma-3-1b"),
        ("unsloth/gemma-3-1b-it-unsloth-bnb-4bit", "gemma-3-1b"),
        ("mistralai/Mistral-Nemo-Instruct-2407", "mistral-nemo-12b"),
        ("mistralai/Mistral-Nemo-Base-2407", "mistral-nemo-12b"),
        ("unsloth/Mistral-Nemo-Instruct-2407-bnb-4bit", "mistral-nemo-12b"),
        ("mistralai/Mistral-Small-24B-Instruct-2501", "mistral-small-24b"),
        ("mistralai/Mistral-Small-24B-Base-2501", "mistral-small-24b"),
        ("mistralai/Devstral-Small-2507", "mistral-small-24b"),
        ("mistralai/Magistral-Small-2506", "mistral-small-24b"),
        ("mistralai/Magistral-Small-2507", "mistral-small-24b"),
        ("mistralai/Ministral-8B-Instruct-2410", "ministral-8b"),
        ("microsoft/Phi-3.5-mini-instruct", "phi-3-mini"),
        ("microsoft/Phi-3-mini-128k-instruct", "phi-3-mini"),
        ("microsoft/Phi-3-medium-4k-instruct", "phi-3-medium"),
        ("microsoft/Phi-3-medium-128k-instruct", "phi-3-medium"),
        ("openlm-research/open_llama_3b_v2", "open-llama-3b"),
        ("openlm-research/open_llama_3b", "open-llama-3b"),
        ("stabilityai/stablelm-2-1_6b", "stablelm-2-1.6b"),
        ("stabilityai/stablelm-2-1_6b-chat", "stablelm-2-1.6b"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-7b"),
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen2.5-32b"),
        ("Qwen/Qwen2.5-Math-72B", "qwen2.5-72b"),
        ("Qwen/QwQ-32B", "qwen2.5-32b"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "qwen2.5-14b"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama-3.1-8b"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "llama-3.3-70b"),
        ("hugging-quants/Meta-Llama-3.1-405B-BNB-NF4-BF16", "llama-3.1-405b"),
        ("casperhansen/llama-3-70b-fp16", "llama-3-70b"),
        ("Qwen/Qwen3-8B", "qwen3-8b"),
        ("google/gemma-3-270m-it", "gemma-3-270m"),
        ("unsloth/gemma-3-270m-it", "gemma-3-270m"),
        ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-1.5b"),
        ("Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-0.5b"),
        ("Qwen/Qwen2.5-Coder-3B", "qwen2.5-3b"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-r1-distill-qwen-1.5b"),
    ],
)
def test_a_model_id_finds_its_preset_whatever_its_variant_tags(model_id: str, preset: str) -> None:
    found = lookup(model_id)
    assert found is not None and found.name == preset


def test_a_model_id_of_another_size_finds_no_preset() -> None:
    assert lookup("Qwen/Qwen2-72B-Instruct") is None


def test_a_variant_with_another_vocabulary_finds_no_preset() -> None:
    # CodeLlama-7b-Python has 32000 tokens, CodeLlama-7b 32016
    assert lookup("codellama/CodeLlama-7b-Python-hf") is None


@pytest.mark.parametrize(
    "model_id",
    [
        # Llama / Mistral layouts whose names share a word with a refused family
        "tiiuae/Falcon3-7B-Instruct",
        "nvidia/Llama-3.1-Minitron-4B-Width-Base",
        "nvidia/Mistral-NeMo-Minitron-8B-Base",
        "ibm-granite/granite-4.0-micro",
    ],
)
def test_an_unsourced_or_unlisted_dense_model_is_neither_a_preset_nor_refused(
    model_id: str,
) -> None:
    assert lookup(model_id) is None
    assert unsupported(model_id) is None


@pytest.mark.parametrize(
    ("model_id", "kind"),
    [
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "Llama 4 mixture-of-experts"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "vision-language"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "vision-language"),
        ("Qwen/Qwen3-30B-A3B", "mixture-of-experts"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", "mixture-of-experts"),
        ("mistralai/Mixtral-8x7B-v0.1", "mixture-of-experts"),
        ("openai/gpt-oss-20b", "mixture-of-experts"),
        ("google/gemma-3-12b-it", "vision-language"),
        ("google/gemma-3-4b-it", "vision-language"),
        ("google/gemma-4-12B-it", "vision-language"),
        ("google/gemma-4-E2B-it", "vision-language"),
        ("google/gemma-4-26B-A4B", "mixture-of-experts"),
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "vision-language"),
        ("mistralai/Mistral-Small-3.2-24B-Instruct-2506", "vision-language"),
        ("mistralai/Magistral-Small-2509", "vision-language"),
        ("mistralai/Ministral-3-3B-Reasoning-2512", "vision-language"),
        ("axolotl-ai-co/Mistral-Medium-3.5-128B-BF16", "vision-language"),
        ("zai-org/GLM-4.6V-Flash", "vision-language"),
        ("axolotl-ai-co/Mistral-Small-4-119B-2603-BF16", "mixture-of-experts"),
        ("zai-org/GLM-4.7-Flash", "mixture-of-experts"),
        ("MiniMaxAI/MiniMax-M2", "mixture-of-experts"),
        ("arcee-ai/Trinity-Nano-Preview", "mixture-of-experts"),
        ("nvidia/DeepSeek-V4-Flash-NVFP4", "mixture-of-experts"),
        ("mistralai/Voxtral-Mini-3B-2507", "speech model"),
        ("state-spaces/mamba-2.8b", "state-space"),
        ("tiiuae/falcon-mamba-7b", "state-space"),
        ("ai21labs/Jamba-v0.1", "hybrid"),
        ("tiiuae/Falcon-H1-1.5B-Deep-Base", "hybrid"),
        ("Qwen/Qwen3.5-9B", "hybrid"),
        ("Qwen/Qwen3.5-27B", "vision-language"),
        ("Qwen/Qwen3-Next-80B-A3B-Instruct", "hybrid"),
        ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "hybrid"),
        ("nvidia/Nemotron-H-8B-Base-8K", "hybrid"),
        ("moonshotai/Kimi-Linear-48B-A3B-Instruct", "hybrid"),
        ("LiquidAI/LFM2-350M", "hybrid"),
        ("ibm-granite/granite-4.0-h-small", "hybrid"),
        ("ibm-granite/granite-4.0-tiny-preview", "hybrid"),
        ("tiiuae/falcon-7b", "non-gated"),
        ("microsoft/phi-1_5", "non-gated"),
        ("microsoft/phi-2", "non-gated"),
        ("mosaicml/mpt-7b", "non-gated"),
        ("EleutherAI/pythia-1.4b-deduped", "non-gated"),
        ("EleutherAI/gpt-j-6b", "non-gated"),
        ("bigcode/starcoder2-3b", "non-gated"),
        ("nvidia/Nemotron-Mini-4B-Instruct", "non-gated"),
        ("swiss-ai/Apertus-8B-Instruct-2509", "non-gated"),
    ],
)
def test_a_model_no_dense_preset_describes_is_named_as_such(model_id: str, kind: str) -> None:
    assert lookup(model_id) is None
    assert kind in (unsupported(model_id) or "")


def test_a_model_of_several_kinds_is_named_with_each() -> None:
    reason = unsupported("Qwen/Qwen3.5-35B-A3B") or ""
    assert "hybrid" in reason and "mixture-of-experts" in reason and "vision" in reason


@pytest.mark.parametrize("name", sorted(set(PRESETS) | set(_ALIASES)))
def test_no_preset_or_alias_is_taken_for_a_model_the_catalogue_refuses(name: str) -> None:
    assert unsupported(name) is None


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
