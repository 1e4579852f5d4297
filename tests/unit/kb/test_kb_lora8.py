"""lora-over-lora8-when-it-fits: an 8-bit base goes to 16 bits only where the analytic
model's memory says the 16-bit run fits the device."""

from __future__ import annotations

from pytest_goblin.kb import load_kb
from pytest_goblin.kb.facts import catalogue_facts
from pytest_goblin.schemas import WorkloadConfig

RULE = "lora-over-lora8-when-it-fits"
BUNDLED = load_kb()


def lora8(model: str, **fields: object) -> WorkloadConfig:
    return WorkloadConfig(
        model=model,
        finetune="lora8",
        precision="bf16",
        attention_impl="flash",
        seq_len=2048,
        batch_size=1,
        **{"gradient_checkpointing": True, **fields},
    )


def test_an_8_bit_base_that_fits_in_16_bits_is_patched_to_a_16_bit_lora() -> None:
    config = lora8("llama-3-8b")
    result = BUNDLED.match(config, "cuda", facts=catalogue_facts({"name": "h100"}, {}, config))
    patch = next(rule for rule in result.patches if rule.id == RULE)
    assert patch.apply(config).finetune == "lora"


def test_an_8_bit_base_whose_16_bit_weights_do_not_fit_keeps_its_8_bits() -> None:
    # Llama-3.1-70B without checkpointing: ~123 GB in 8 bits fits an MI300X's 192 GB, ~191 GB
    # in 16 bits is over the guard's 85%
    config = lora8("llama-3.1-70b", gradient_checkpointing=False)
    facts = catalogue_facts({"name": "mi300x"}, {}, config)
    result = BUNDLED.match(config, "rocm-instinct", facts=facts)
    assert RULE not in [rule.id for rule in result.patches]
    assert dict(result.skipped)[RULE].startswith("does not fit")


def test_an_8_bit_base_on_an_amd_gpu_is_told_to_check_its_bitsandbytes_build() -> None:
    config = lora8("llama-3-8b")
    facts = catalogue_facts({"name": "mi300x"}, {}, config)
    result = BUNDLED.match(config, "rocm-instinct", facts=facts)
    assert "bitsandbytes-on-rocm" in [rule.id for rule in result.advisories]
