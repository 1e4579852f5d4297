"""Specification of the bundled rule set: its size and coverage, rules that fire through
the matcher on the platforms they name, and the memory bounds of the rules that change
memory use."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_goblin.kb import CATEGORIES, DEVICE_PLATFORMS, KnowledgeBase, Rule, load_kb
from pytest_goblin.runner.analytic import FakeRunner
from pytest_goblin.runner.devices import get_device
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
            applicable = kb.match(WorkloadConfig.model_validate(case), platform).applicable
            assert [r.id for r in applicable] == [rule.id], (platform, case)
        for case in rule.examples.not_matches:
            assert kb.match(WorkloadConfig.model_validate(case), platform).applicable == []


@pytest.mark.parametrize("rule", BUNDLED.rules, ids=lambda r: r.id)
def test_no_rule_fires_on_a_platform_it_does_not_name(rule: Rule) -> None:
    kb = alone(rule)
    for platform in (p for p in DEVICE_PLATFORMS if not rule.applies_on(p)):
        for case in rule.examples.matches:
            assert kb.match(WorkloadConfig.model_validate(case), platform).applicable == []


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


# --- memory-bounded patches ------------------------------------------------------------

# The largest config each bound admits: 8B-class Llama-style dims, rank 64 on every
# linear, 16-bit, no checkpointing after the change.
LARGEST_ADMITTED: dict[str, Any] = {
    "model": {"layers": 32, "hidden": 4096, "intermediate": 18944, "heads": 32, "vocab": 152064},
    "lora_rank": 64,
    "lora_targets": ["all-linear"],
    "precision": "fp16",
    "attention_impl": "sdpa",
}
BOUNDED = {
    "checkpointing-off-when-it-fits": {"finetune": "lora", "gradient_checkpointing": True},
    "lora-over-qlora-when-it-fits": {"finetune": "qlora"},
}
SHAPES = [{"seq_len": 2048, "batch_size": 2}, {"seq_len": 4096, "batch_size": 1}]


@pytest.mark.parametrize("rule_id", sorted(BOUNDED))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['seq_len']}x{s['batch_size']}")
def test_a_memory_bounded_patch_fits_the_smallest_device_of_its_platforms(
    rule_id: str, shape: dict[str, int]
) -> None:
    rule = BUNDLED.get(rule_id)
    config = WorkloadConfig.model_validate({**LARGEST_ADMITTED, **BOUNDED[rule_id], **shape})
    assert rule.matches(config)
    smallest = min(
        (
            device
            for device in map(get_device, ("mi250x", "mi300x", "a100", "h100"))
            if rule.applies_on(device.platform)
        ),
        key=lambda device: device.memory_gb,
    )
    needed = FakeRunner(smallest).memory(rule.apply(config)).total_gb
    assert needed < smallest.memory_gb


@pytest.mark.parametrize("rule_id", sorted(BOUNDED))
@pytest.mark.parametrize(
    "beyond",
    [
        {"seq_len": 4096, "batch_size": 2},
        {"seq_len": 8192, "batch_size": 1},
        {"lora_rank": 128},
        {"precision": "fp32"},
        {"attention_impl": "eager"},
        {"model": "llama-3.1-70b"},
    ],
    ids=lambda b: ",".join(f"{k}={v}" for k, v in b.items()),
)
def test_a_memory_bounded_patch_stays_out_beyond_its_bound(
    rule_id: str, beyond: dict[str, Any]
) -> None:
    fields = {**LARGEST_ADMITTED, **BOUNDED[rule_id], **SHAPES[0], **beyond}
    assert not BUNDLED.get(rule_id).matches(WorkloadConfig.model_validate(fields))
