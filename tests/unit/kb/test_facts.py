"""Facts about the device and the profile in conditions, rule examples and fit guards: what a
rule may say about them, and the clear errors for what it may not."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_goblin.kb import AuditFacts, KnowledgeBase, Rule, parse_condition
from pytest_goblin.kb.conditions import ConditionError
from pytest_goblin.kb.facts import audit_facts, catalogue_facts
from pytest_goblin.schemas import RunMetrics, WasteBudget, WorkloadConfig


def rule_data(**overrides: Any) -> dict[str, Any]:
    """A valid guarded patch rule (checkpointing off when the profile leaves half free)."""
    data: dict[str, Any] = {
        "id": "test-checkpointing",
        "category": "memory",
        "platforms": ["all"],
        "when": {"gradient_checkpointing": True, "profile.memory_fraction": {"lt": 0.5}},
        "set": {"gradient_checkpointing": False},
        "fits": {"max_memory_fraction": 0.85},
        "symptom": "recompute the device has memory to avoid",
        "expected_impact": "one forward pass less per step",
        "citation": "https://huggingface.co/docs/transformers/perf_train_gpu_one",
        "examples": {
            "matches": [
                {
                    "gradient_checkpointing": True,
                    "model": "qwen2.5-0.5b",
                    "device": {"name": "mi300x"},
                }
            ],
            "not_matches": [
                {"gradient_checkpointing": True},
                {
                    "gradient_checkpointing": True,
                    "model": "qwen2.5-0.5b",
                    "device": {"name": "mi300x"},
                    "profile": {"peak_memory_gb": 150},
                },
            ],
        },
    }
    data.update(overrides)
    return data


def profile(peak_gb: float, **buckets: float) -> RunMetrics:
    return RunMetrics(
        steps=1,
        tokens_per_sec=1.0,
        step_time_s=1.0,
        tokens_per_step=1,
        hbm_peak_gb=peak_gb,
        mfu_pct=None,
        projected=True,
        runner_kind="fake",
        device="d",
        waste_budget=WasteBudget(**buckets),
    )


def test_a_rule_reads_facts_and_its_examples_give_them() -> None:
    rule = Rule.model_validate(rule_data())
    config = WorkloadConfig(gradient_checkpointing=True)
    half = audit_facts("d", "cpu", 100, config, profile(40), lambda c: 40.0)
    full = audit_facts("d", "cpu", 100, config, profile(60), lambda c: 60.0)
    assert rule.matches(config, half)
    assert not rule.matches(config, full)
    assert not rule.matches(config)  # without a profile the fact is missing: false


def test_bucket_shares_are_facts() -> None:
    facts = audit_facts(
        "d", "cpu", 10, WorkloadConfig(), profile(1, useful_gpu=0.6, data_wait=0.4), None
    )
    condition = parse_condition({"profile.buckets.data_wait": {"gte": 0.4}})
    assert condition.evaluate({**WorkloadConfig().model_dump(), **facts.data})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"when": {"profile.memory_fractoin": {"lt": 0.5}}},
            "did you mean 'profile.memory_fraction'",
        ),
        ({"when": {"device.memory_gb": {"lt": "big"}}}, "lt takes a number"),
        ({"set": {"device.memory_gb": 512}}, "read-only fact"),
        ({"fits": {"max_memory_fraction": 1.5}}, "max_memory_fraction"),
        ({"search": "micro_batch"}, "a search rule is a patch rule whose search makes the change"),
        (
            {
                "kind": "advisory",
                "set": {},
                "advice": "x",
                "when": {"gradient_checkpointing": True},
            },
            "fits: only a patch rule's change can be guarded",
        ),
    ],
)
def test_a_misused_fact_guard_or_search_is_a_load_error(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValidationError, ConditionError), match=re.escape(message)):
        Rule.model_validate(rule_data(**overrides))


def test_an_example_must_name_a_catalogue_device() -> None:
    data = rule_data()
    data["examples"]["matches"][0]["device"] = {"memory_gb": 192}
    with pytest.raises(ValidationError, match=re.escape("device.name: give a catalogue device")):
        Rule.model_validate(data)


def test_an_example_that_does_not_fit_its_device_does_not_match() -> None:
    data = rule_data()
    data["examples"]["matches"][0]["device"] = {"name": "mi300x"}
    data["examples"]["matches"][0]["profile"] = {"peak_memory_gb": 95}
    # under half the memory (0.49), but without checkpointing the scaled peak is over 85%
    data["examples"]["matches"][0]["model"] = "llama-3-8b"
    data["examples"]["matches"][0]["seq_len"] = 8192
    with pytest.raises(ValidationError, match="does not fit: predicted peak"):
        Rule.model_validate(data)


def test_the_measured_peak_scales_every_prediction() -> None:
    config = WorkloadConfig(model="qwen2.5-0.5b", gradient_checkpointing=True)
    projected = catalogue_facts({"name": "mi300x"}, {}, config)
    doubled = catalogue_facts(
        {"name": "mi300x"}, {"peak_memory_gb": 2 * (projected.peak_gb(config) or 0)}, config
    )
    patched = config.model_copy(update={"gradient_checkpointing": False})
    assert doubled.peak_gb(patched) == pytest.approx(2 * (projected.peak_gb(patched) or 0))


def test_a_guarded_rule_is_matched_only_where_it_fits() -> None:
    kb = KnowledgeBase([Rule.model_validate(rule_data())])
    config = WorkloadConfig(model="qwen2.5-0.5b", gradient_checkpointing=True)
    fits = catalogue_facts({"name": "mi300x"}, {}, config)
    result = kb.match(config, "rocm-instinct", facts=fits)
    assert [r.id for r in result.applicable] == ["test-checkpointing"]
    tight = AuditFacts(data=fits.data, memory_gb=1.0, peak_model=fits.peak_model, scale=fits.scale)
    skipped = dict(kb.match(config, "rocm-instinct", facts=tight).skipped)
    assert skipped["test-checkpointing"].startswith("does not fit: predicted peak")
