"""Specification of the bundled rule set: its size and coverage, rules that fire through
the matcher on the platforms they name, and the memory bounds of the rules that change
memory use."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.kb import (
    CATEGORIES,
    DEVICE_PLATFORMS,
    KnowledgeBase,
    Rule,
    example_case,
    load_kb,
)
from pytest_goblin.kb.facts import AuditFacts, catalogue_facts
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.schemas import WorkloadConfig

BUNDLED = load_kb()


def alone(rule: Rule) -> KnowledgeBase:
    """A knowledge base of this one rule (its declared conflicts have no one to name)."""
    return KnowledgeBase([rule.model_copy(update={"conflicts_with": []})])


def test_at_least_forty_rules_cover_every_category() -> None:
    assert len(BUNDLED) >= 40
    assert set(BUNDLED.by_category()) == set(CATEGORIES)


def test_both_kinds_of_rule_are_present_in_numbers() -> None:
    kinds = [rule.kind for rule in BUNDLED]
    assert kinds.count("patch") >= 10
    assert kinds.count("advisory") >= 10


@pytest.mark.parametrize("rule", BUNDLED.rules, ids=lambda r: r.id)
def test_each_rule_fires_through_the_matcher_on_every_platform_it_names(rule: Rule) -> None:
    kb = alone(rule)
    platforms = DEVICE_PLATFORMS if "all" in rule.platforms else rule.platforms
    for platform in platforms:
        for case in rule.examples.matches:
            config, facts = example_case(case)
            applicable = kb.match(config, platform, facts=facts).applicable
            assert [r.id for r in applicable] == [rule.id], (platform, case)
        for case in rule.examples.not_matches:
            config, facts = example_case(case)
            assert kb.match(config, platform, facts=facts).applicable == []


@pytest.mark.parametrize("rule", BUNDLED.rules, ids=lambda r: r.id)
def test_no_rule_fires_on_a_platform_it_does_not_name(rule: Rule) -> None:
    kb = alone(rule)
    for platform in (p for p in DEVICE_PLATFORMS if not rule.applies_on(p)):
        for case in rule.examples.matches:
            config, facts = example_case(case)
            assert kb.match(config, platform, facts=facts).applicable == []


def test_a_rule_sees_the_winner_of_a_conflict_it_depends_on() -> None:
    result = BUNDLED.match(
        WorkloadConfig(precision="fp32", attention_impl="eager"), "rocm-instinct"
    )
    ids = [rule.id for rule in result.applicable]
    assert "flash-attention" in ids
    assert "padding-free-packing" in ids
    assert ("group-by-length", "conflicts with padding-free-packing (declared)") in result.skipped


def test_waived_lists_only_waived_rules_that_matched() -> None:
    config = WorkloadConfig(precision="fp32", attention_impl="eager")
    result = BUNDLED.match(config, "cuda", ignore=["bf16-mixed-precision", "fp8-linear-layers"])
    assert result.waived == ["bf16-mixed-precision"]


# --- fit-guarded patches ---------------------------------------------------------------

GUARDED = sorted(rule.id for rule in BUNDLED if rule.fits is not None)
DEVICES = ("mi250x", "mi300x", "a100", "h100", "cpu")


def facts_on(device: str, config: WorkloadConfig, peak_gb: float | None = None) -> AuditFacts:
    """An audit's facts for ``config`` profiled on a catalogue device (projected peak
    unless ``peak_gb`` says what the profile measured)."""
    profile = {} if peak_gb is None else {"peak_memory_gb": peak_gb}
    return catalogue_facts({"name": device}, profile, config)


def test_the_memory_hungry_rules_are_guarded() -> None:
    assert {"checkpointing-off-when-it-fits", "larger-micro-batch"} <= set(GUARDED)
    assert set(BASE_SWITCHES.values()) <= set(GUARDED)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "shape",
    [
        {"model": "qwen2.5-7b", "finetune": "lora", "seq_len": 4096, "batch_size": 4},
        {"model": "llama-3-8b", "finetune": "full", "seq_len": 2048, "batch_size": 2},
        {"model": "llama-3.1-70b", "finetune": "qlora", "seq_len": 8192, "batch_size": 1},
        {"model": "qwen2.5-0.5b", "finetune": "lora", "seq_len": 1024, "batch_size": 8},
    ],
    ids=lambda s: f"{s['model']}-{s['finetune']}",
)
def test_an_admitted_guarded_change_fits_the_device(device: str, shape: dict[str, Any]) -> None:
    config = WorkloadConfig.model_validate(
        {
            **shape,
            "precision": "bf16",
            "attention_impl": "sdpa",
            "gradient_checkpointing": True,
            "grad_accum_steps": 8,
        }
    )
    spec = get_device(device)
    facts = facts_on(device, config)
    result = BUNDLED.match(config, spec.platform, facts=facts)
    runner = AnalyticModel(spec)
    for rule in result.patches:
        if rule.fits is None:
            continue
        for values in result.options[rule.id]:
            patched = rule.apply(config, values=values)
            assert runner.memory(patched).total_gb <= rule.fits.max_memory_fraction * spec.memory_gb
    for rule_id, why in result.skipped:
        if rule_id in GUARDED:
            assert why.startswith("does not fit: predicted peak"), why


def test_a_measured_peak_above_the_projection_scales_the_prediction() -> None:
    config = WorkloadConfig(
        model="qwen2.5-7b",
        finetune="lora",
        precision="bf16",
        attention_impl="sdpa",
        gradient_checkpointing=True,
        seq_len=4096,
        batch_size=4,
    )
    projected = facts_on("mi300x", config)
    assert "checkpointing-off-when-it-fits" in [
        r.id for r in BUNDLED.match(config, "rocm-instinct", facts=projected).patches
    ]
    projected_peak = AnalyticModel(get_device("mi300x")).memory(config).total_gb
    # the device measured twice the projected peak: without checkpointing it no longer fits
    # at micro-batch 4, only at 2 (with twice the accumulation: the same global batch)
    measured = facts_on("mi300x", config, peak_gb=2 * projected_peak)
    options = BUNDLED.match(config, "rocm-instinct", facts=measured).options
    assert options["checkpointing-off-when-it-fits"] == [
        {"gradient_checkpointing": False, "batch_size": 2, "grad_accum_steps": 2}
    ]
    # six times: not even at micro-batch 1
    measured = facts_on("mi300x", config, peak_gb=6 * projected_peak)
    skipped = dict(BUNDLED.match(config, "rocm-instinct", facts=measured).skipped)
    assert skipped["checkpointing-off-when-it-fits"].startswith("does not fit")


BASE_SWITCHES = {"qlora": "lora-over-qlora-when-it-fits", "lora8": "lora-over-lora8-when-it-fits"}
"""The guarded rule that moves each quantized base to 16 bits: only its own base matches it."""


@pytest.mark.parametrize("finetune", sorted(BASE_SWITCHES))
def test_a_baseline_at_ninety_percent_of_memory_gets_no_memory_hungry_change(
    finetune: str,
) -> None:
    config = WorkloadConfig(
        model="llama-3-8b",
        finetune=finetune,
        precision="bf16",
        attention_impl="flash",
        gradient_checkpointing=True,
        seq_len=2048,
        batch_size=2,
        grad_accum_steps=8,
    )
    facts = facts_on("mi300x", config, peak_gb=0.9 * 192)
    result = BUNDLED.match(config, "rocm-instinct", facts=facts)
    assert not [rule.id for rule in result.patches if rule.fits is not None]
    others = {rule for base, rule in BASE_SWITCHES.items() if base != finetune}
    assert {rid for rid, _ in result.skipped} >= set(GUARDED) - others


def test_without_the_device_memory_a_guarded_rule_stays_out() -> None:
    config = WorkloadConfig(gradient_checkpointing=True)
    facts = AuditFacts(data={"device": {"name": "x", "platform": "cpu"}})
    skipped = dict(BUNDLED.match(config, "cpu", facts=facts).skipped)
    assert "cannot be checked" in skipped["checkpointing-off-when-it-fits"]


def test_micro_batch_variants_keep_the_global_batch() -> None:
    rule = BUNDLED.get("larger-micro-batch")
    config = WorkloadConfig(batch_size=2, grad_accum_steps=12)
    variants = rule.variants(config)
    assert [v["batch_size"] for v in variants] == [4, 6, 8, 12, 24]
    for values in variants:
        patched = rule.apply(config, values=values)
        assert patched.batch_size * patched.grad_accum_steps == 24
        assert (patched.lr, patched.warmup_steps) == (config.lr, config.warmup_steps)
    assert rule.variants(WorkloadConfig(grad_accum_steps=1)) == []


def test_checkpointing_off_variants_shrink_the_micro_batch_and_keep_the_global_batch() -> None:
    rule = BUNDLED.get("checkpointing-off-when-it-fits")
    config = WorkloadConfig(gradient_checkpointing=True, batch_size=6, grad_accum_steps=2)
    variants = rule.variants(config)
    assert variants[0] == {"gradient_checkpointing": False}
    assert [v["batch_size"] for v in variants[1:]] == [3, 2, 1]
    for values in variants:
        patched = rule.apply(config, values=values)
        assert patched.gradient_checkpointing is False
        assert patched.batch_size * patched.grad_accum_steps == 12
