"""Matching's shortcuts change its cost, never its answer.

``KnowledgeBase.match`` dumps a config once, makes each patched config once and
skips re-evaluating a rule whose false condition reads nothing the other rules
change. Here it is held against the plain fixed point it replaces (every rule
asked on every pass, each lookahead config rebuilt), over a grid of configs on
every platform.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_goblin.kb import KnowledgeBase, Rule, load_kb
from pytest_goblin.kb.loader import WAIVED_REASON, _conflict, _order, _overlap, _precedence
from pytest_goblin.kb.schema import DEVICE_PLATFORMS
from pytest_goblin.schemas import WorkloadConfig

BUNDLED = load_kb()

GRID = [
    dict(
        zip(
            (
                "precision",
                "attention_impl",
                "optimizer",
                "dataloader_workers",
                "finetune",
                "gradient_checkpointing",
            ),
            values,
            strict=True,
        )
    )
    for values in itertools.product(
        ("fp32", "fp16", "bf16"),
        ("eager", "sdpa", "flash"),
        ("adamw_torch", "adamw_torch_fused"),
        (0, 4),
        ("full", "qlora"),
        (False, True),
    )
]


def plain_match(
    kb: KnowledgeBase, config: WorkloadConfig, platform: str, ignore: Sequence[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """The fixed point without shortcuts: the definition ``match`` must agree with."""
    live: list[tuple[Rule, set[str]]] = []
    skipped: list[tuple[Rule, str]] = []
    seen: set[str] = set()
    candidates = [rule for rule in kb.rules if rule.applies_on(platform)]
    joined = True
    while joined:
        joined = False
        for rule in candidates:
            if rule.id in seen or not (
                rule.matches(config) or rule.matches(with_others(config, rule, live))
            ):
                continue
            seen.add(rule.id)
            joined = True
            if rule.id in ignore:
                skipped.append((rule, WAIVED_REASON))
            else:
                live.append((rule, {path for path, _, _ in rule.changes(config)}))
    accepted: list[tuple[Rule, set[str]]] = []
    for rule, paths in sorted(live, key=lambda item: _precedence(item[0])):
        reason = _conflict(rule, paths, accepted)
        if reason is None:
            accepted.append((rule, paths))
        else:
            skipped.append((rule, reason))
    return (
        [rule.id for rule in sorted((r for r, _ in accepted), key=_order)],
        [(rule.id, why) for rule, why in sorted(skipped, key=lambda s: _order(s[0]))],
    )


def with_others(
    config: WorkloadConfig, rule: Rule, live: Sequence[tuple[Rule, set[str]]]
) -> WorkloadConfig:
    own = set(rule.set)
    for other, paths in sorted(live, key=lambda item: _precedence(item[0]), reverse=True):
        if paths and not any(_overlap(p, q) for p in paths for q in own):
            config = other.apply(config)
    return config


@pytest.mark.parametrize("platform", DEVICE_PLATFORMS)
@pytest.mark.parametrize("ignore", [(), ("bf16-mixed-precision",), ("flash-attention",)])
def test_match_agrees_with_the_plain_fixed_point(platform: str, ignore: tuple[str, ...]) -> None:
    for fields in GRID[::3] if ignore else GRID:
        config = WorkloadConfig(model="llama-3-8b", **fields)
        result = BUNDLED.match(config, platform, ignore=ignore)
        expected = plain_match(BUNDLED, config, platform, ignore)
        assert ([rule.id for rule in result.applicable], result.skipped) == expected, fields


def test_matching_leaves_the_config_and_its_dump_untouched() -> None:
    config = WorkloadConfig(
        model="llama-3-8b",
        precision="fp32",
        attention_impl="eager",
        env_vars={"HF_HOME": "/data"},
        extras={"note": {"a": 1}},
    )
    before: dict[str, Any] = config.model_dump()
    BUNDLED.match(config, "rocm-instinct")
    assert config.model_dump() == before
