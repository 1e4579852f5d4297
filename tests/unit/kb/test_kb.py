"""Specification of the knowledge base: rule format, condition language, loading,
matching and search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_goblin.kb import (
    CATEGORIES,
    ConditionError,
    KnowledgeBase,
    KnowledgeBaseError,
    Rule,
    evaluate,
    example_case,
    load_kb,
    parse_condition,
    search,
)
from pytest_goblin.kb.loader import BUNDLED_DIR
from pytest_goblin.schemas import WorkloadConfig

BUNDLED = load_kb()


def rule_data(**overrides: Any) -> dict[str, Any]:
    """A valid patch rule (workers 0 -> 4) to vary one field at a time."""
    data: dict[str, Any] = {
        "id": "test-workers",
        "category": "data",
        "platforms": ["all"],
        "when": {"dataloader_workers": 0},
        "set": {"dataloader_workers": 4},
        "symptom": "data loading in the training process",
        "expected_impact": "overlap loading with compute",
        "citation": "https://docs.pytorch.org/tutorials/recipes/recipes/tuning_guide.html",
        "examples": {"matches": [{}], "not_matches": [{"dataloader_workers": 2}]},
    }
    data.update(overrides)
    return data


def write_pack(directory: Path, *rules: dict[str, Any], name: str = "rules.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(list(rules), sort_keys=False), encoding="utf-8")
    return path


def config_dict(**fields: Any) -> dict[str, Any]:
    return WorkloadConfig(**fields).model_dump()


# --- bundled rules -------------------------------------------------------------------


def test_bundled_rules_load_with_unique_ids() -> None:
    ids = [rule.id for rule in BUNDLED]
    assert len(ids) >= 8
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rule", BUNDLED.rules, ids=lambda r: r.id)
def test_bundled_rule_examples_hold(rule: Rule) -> None:
    for case in rule.examples.matches:
        assert rule.why_not(*example_case(case)) is None, case
    for case in rule.examples.not_matches:
        assert rule.why_not(*example_case(case)) is not None, case


@pytest.mark.parametrize("rule", BUNDLED.rules, ids=lambda r: r.id)
def test_bundled_citations_are_https(rule: Rule) -> None:
    assert rule.citation
    assert all(url.startswith("https://") for url in rule.citation)


def test_each_bundled_file_holds_one_category_named_after_it() -> None:
    for rule in BUNDLED:
        assert BUNDLED.sources[rule.id].stem == rule.category
        assert BUNDLED.sources[rule.id].parent == BUNDLED_DIR


def test_rules_are_ordered_by_category_then_id() -> None:
    keys = [(CATEGORIES.index(r.category), r.id) for r in BUNDLED]
    assert keys == sorted(keys)


# --- condition language --------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ({"precision": "fp32"}, {}, True),
        ({"precision": {"eq": "bf16"}}, {}, False),
        ({"precision": {"ne": "bf16"}}, {}, True),
        ({"precision": {"in": ["fp32", "tf32"]}}, {"precision": "tf32"}, True),
        ({"precision": {"not_in": ["fp32", "tf32"]}}, {"precision": "tf32"}, False),
        ({"seq_len": {"lt": 4096}}, {"seq_len": 4096}, False),
        ({"seq_len": {"lte": 4096}}, {"seq_len": 4096}, True),
        ({"seq_len": {"gt": 4096}}, {"seq_len": 8192}, True),
        ({"seq_len": {"gte": 8193}}, {"seq_len": 8192}, False),
        ({"optimizer": {"regex": "(?i)8bit"}}, {"optimizer": "paged_adamw_8bit"}, True),
        ({"optimizer": {"regex": "^adamw_torch$"}}, {"optimizer": "adamw_torch_fused"}, False),
        (
            {"env_vars.HIP_FORCE_DEV_KERNARG": {"exists": True}},
            {"env_vars": {"HIP_FORCE_DEV_KERNARG": "1"}},
            True,
        ),
        ({"lora_rank": {"exists": True}}, {}, False),
        ({"extras.launch": {"eq": {"procs": 8}}}, {"extras": {"launch": {"procs": 8}}}, True),
        ({"model.layers": {"gte": 32}}, {"model": "llama-3-8b"}, True),
    ],
)
def test_each_operator(condition: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert evaluate(parse_condition(condition), config_dict(**fields)) is expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("eq", "1", False),
        ("ne", "1", True),
        ("in", ["1"], False),
        ("not_in", ["1"], True),
        ("regex", ".", False),
        ("exists", True, False),
        ("exists", False, True),
    ],
)
def test_a_missing_path_fails_comparisons_except_negative_ones(
    operator: str, value: Any, expected: bool
) -> None:
    cond = parse_condition({"env_vars.NCCL_MIN_NCHANNELS": {operator: value}})
    assert cond.evaluate(config_dict()) is expected


@pytest.mark.parametrize("operator", ["lt", "lte", "gt", "gte"])
def test_a_missing_path_fails_numeric_comparisons(operator: str) -> None:
    assert not evaluate({"extras.world": {operator: 1}}, config_dict())


def test_booleans_are_not_numbers() -> None:
    data = config_dict(extras={"flag": True})
    assert not evaluate({"extras.flag": 1}, data)
    assert not evaluate({"extras.flag": {"gt": 0}}, data)
    assert evaluate({"extras.flag": True}, data)


def test_combinators_and_several_keys_mean_all() -> None:
    data = config_dict(precision="bf16", attention_impl="eager")
    assert evaluate({"precision": "bf16", "attention_impl": "eager"}, data)
    assert not evaluate({"precision": "bf16", "attention_impl": "sdpa"}, data)
    assert evaluate({"any": [{"precision": "fp32"}, {"attention_impl": "eager"}]}, data)
    assert evaluate({"not": {"precision": "fp32"}}, data)
    assert evaluate({"all": [{"seq_len": {"gte": 512, "lt": 2048}}]}, data)


def test_a_condition_round_trips_through_its_yaml_form() -> None:
    cond = parse_condition(
        {"any": [{"precision": {"in": ["fp32", "tf32"]}}, {"not": {"seq_len": {"lt": 8}}}]}
    )
    assert parse_condition(cond.to_data()) == cond


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"precision": {"equals": "fp32"}}, "unknown operator 'equals'"),
        ({"precison": "fp32"}, "did you mean 'precision'"),
        ({"precision": "bf17"}, "can never hold"),
        ({"env_vars.PYTORCH_TUNABLEOP_ENABLED": 1}, "can never hold"),
        ({"seq_len": {"gt": "long"}}, "gt takes a number"),
        ({"precision": ["fp32", "tf32"]}, "bare list is ambiguous"),
        ({"optimizer": {"regex": "("}}, "bad regex"),
        ({"seq_len.value": 1}, "has no sub-fields"),
        ({"any": []}, "non-empty list"),
        ({}, "empty condition"),
        ("precision == fp32", "a condition is a mapping"),
    ],
)
def test_a_bad_condition_is_refused_when_parsed(condition: Any, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        parse_condition(condition)


def test_a_nested_error_says_where_it_is() -> None:
    with pytest.raises(ConditionError, match=r"when\.any\[1\]\.precision"):
        parse_condition({"any": [{"seq_len": 1}, {"precision": {"eqq": "fp32"}}]})


# --- rules ---------------------------------------------------------------------------


def test_a_rule_never_fires_when_its_change_is_already_in_place() -> None:
    rule = Rule.model_validate(
        rule_data(
            id="kernarg",
            category="env",
            when=None,
            set={"env_vars.HIP_FORCE_DEV_KERNARG": "1"},
            examples={
                "matches": [{}],
                "not_matches": [{"env_vars": {"HIP_FORCE_DEV_KERNARG": "1"}}],
            },
        )
    )
    assert rule.changes(WorkloadConfig()) == [("env_vars.HIP_FORCE_DEV_KERNARG", None, "1")]
    assert not rule.matches(WorkloadConfig(env_vars={"HIP_FORCE_DEV_KERNARG": 1}))


TUNED = WorkloadConfig(
    precision="bf16",
    attention_impl="flash",
    optimizer="adamw_torch_fused",
    dataloader_workers=4,
    dataloader_persistent_workers=True,
)


@pytest.mark.parametrize("platform", ["rocm-instinct", "rocm-radeon", "cuda", "cpu"])
def test_a_tuned_config_gets_no_bundled_patches(platform: str) -> None:
    radeon_sdpa = {"TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL": "1"}
    config = TUNED.model_copy(update={"env_vars": radeon_sdpa})
    assert BUNDLED.match(config, platform).patches == []


@pytest.mark.parametrize("platform", ["rocm-instinct", "rocm-radeon", "cuda", "cpu"])
def test_a_config_with_every_marker_in_place_gets_no_bundled_findings(platform: str) -> None:
    done = TUNED.model_copy(
        update={
            "packing": True,
            "torch_compile": True,
            "env_vars": {
                "TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL": "1",
                "PYTORCH_TUNABLEOP_ENABLED": "1",
                "PYTORCH_TUNABLEOP_TUNING": "0",
                "HIP_FORCE_DEV_KERNARG": "1",
                "TORCH_BLAS_PREFER_HIPBLASLT": "1",
                "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
            },
            "extras": {"numa_balancing": 0, "torch_compile_mode": "max-autotune"},
        }
    )
    result = BUNDLED.match(done, platform)
    assert (result.applicable, result.skipped) == ([], [])


def test_changes_lists_only_the_fields_that_differ() -> None:
    rule = Rule.model_validate(
        rule_data(
            when=None,
            set={"dataloader_workers": 4, "dataloader_pin_memory": True},
            examples={"matches": [{}], "not_matches": [{"dataloader_workers": 4}]},
        )
    )
    assert rule.changes(WorkloadConfig()) == [("dataloader_workers", 0, 4)]
    assert rule.apply(WorkloadConfig()).dataloader_workers == 4


def test_a_single_citation_string_is_wrapped() -> None:
    assert Rule.model_validate(rule_data()).citation == [
        "https://docs.pytorch.org/tutorials/recipes/recipes/tuning_guide.html"
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": "Test_Workers"}, "kebab-case"),
        ({"citation": "PyTorch tuning guide"}, "not an https URL"),
        ({"citation": "http://example.com/guide"}, "not an https URL"),
        ({"set": {}}, "must change at least one field"),
        ({"set": {"dataloader_wrokers": 4}}, "did you mean 'dataloader_workers'"),
        ({"set": {"precision": "bf17"}}, "set: precision"),
        ({"kind": "advisory", "set": {}}, "must say what to do"),
        ({"kind": "advisory", "advice": "do it"}, "advisory rule changes nothing"),
        ({"expected_speedup": [1.5, 1.2]}, "low <= high"),
        ({"requires": {"torch": "two point four"}}, "not a version specifier"),
        ({"category": "topology"}, "category"),
        ({"platforms": ["rocm"]}, "platforms"),
        ({"examples": {"matches": [{}], "not_matches": []}}, "not_matches"),
    ],
)
def test_an_invalid_rule_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule.model_validate(rule_data(**overrides))


def test_an_example_that_does_not_hold_is_refused_with_the_reason() -> None:
    bad = rule_data(examples={"matches": [{"dataloader_workers": 2}], "not_matches": [{}]})
    with pytest.raises(ValueError, match=r"examples\.matches\[0\].*condition .* is false"):
        Rule.model_validate(bad)


def test_an_example_that_is_not_a_valid_config_is_refused() -> None:
    bad = rule_data(examples={"matches": [{"batch_sz": 2}], "not_matches": [{}]})
    with pytest.raises(ValueError, match=r"examples\.matches\[0\] is not a valid config"):
        Rule.model_validate(bad)


def test_requirements_use_known_versions_only() -> None:
    rule = Rule.model_validate(rule_data(requires={"torch": ">=2.4", "rocm": "<6.2"}))
    assert rule.requirements_met({"torch": "2.5.1+rocm6.1", "rocm": "6.1.3"})
    assert rule.requirements_met({})
    assert rule.unmet_requirements({"torch": "2.3.0"}) == ["torch>=2.4 (have 2.3.0)"]


def test_applies_on_honours_the_all_wildcard() -> None:
    assert BUNDLED.get("sdpa-attention").applies_on("cpu")
    assert not BUNDLED.get("flash-attention").applies_on("cpu")
    assert not BUNDLED.get("flash-attention").applies_on("rocm-radeon")


# --- matching ------------------------------------------------------------------------

EAGER_BF16 = WorkloadConfig(attention_impl="eager", precision="bf16")


def test_flash_beats_sdpa_on_instinct_and_sdpa_is_recorded() -> None:
    result = BUNDLED.match(EAGER_BF16, "rocm-instinct")
    ids = [rule.id for rule in result.applicable]
    assert "flash-attention" in ids
    assert "sdpa-attention" not in ids
    assert ("sdpa-attention", "conflicts with flash-attention on attention_impl") in result.skipped


def test_on_cpu_only_sdpa_applies_for_eager_attention() -> None:
    result = BUNDLED.match(EAGER_BF16, "cpu")
    attention = [rule.id for rule in result.applicable if rule.category == "attention"]
    assert attention == ["sdpa-attention"]
    assert result.skipped == []


def test_ignore_drops_a_rule_and_records_it() -> None:
    result = BUNDLED.match(EAGER_BF16, "rocm-instinct", ignore=["flash-attention"])
    ids = [rule.id for rule in result.applicable]
    assert "flash-attention" not in ids
    assert "sdpa-attention" in ids
    assert ("flash-attention", "ignored by goblin ignore") in result.skipped


def test_ignoring_an_unknown_rule_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(KnowledgeBaseError, match="did you mean 'flash-attention'"):
        BUNDLED.match(EAGER_BF16, "cuda", ignore=["flash-atention"])


def test_an_unknown_platform_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown platform 'rocm'"):
        BUNDLED.match(EAGER_BF16, "rocm")


def test_matched_rules_split_into_patches_and_advisories() -> None:
    result = BUNDLED.match(WorkloadConfig(precision="tf32"), "rocm-instinct")
    assert "tf32-rocm-caveat" in [rule.id for rule in result.advisories]
    assert "bf16-mixed-precision" in [rule.id for rule in result.patches]
    assert all(rule.kind == "patch" for rule in result.patches)


def test_a_tie_in_priority_is_broken_by_id() -> None:
    examples = {"matches": [{}], "not_matches": [{"dataloader_workers": 4}]}
    base = rule_data(when=None, examples=examples)
    kb = KnowledgeBase(
        [
            Rule.model_validate({**base, "id": "b-workers"}),
            Rule.model_validate({**base, "id": "a-workers"}),
        ]
    )
    result = kb.match(WorkloadConfig(), "cpu")
    assert [rule.id for rule in result.applicable] == ["a-workers"]
    assert result.skipped == [("b-workers", "conflicts with a-workers on dataloader_workers")]


def test_declared_conflicts_drop_the_lower_priority_rule() -> None:
    workers = Rule.model_validate(rule_data(priority=1, conflicts_with=["test-pin"]))
    pin = Rule.model_validate(
        rule_data(
            id="test-pin",
            when=None,
            set={"dataloader_pin_memory": True},
            examples={"matches": [{"dataloader_pin_memory": False}], "not_matches": [{}]},
        )
    )
    result = KnowledgeBase([workers, pin]).match(
        WorkloadConfig(dataloader_pin_memory=False), "cuda"
    )
    assert [rule.id for rule in result.applicable] == ["test-workers"]
    assert result.skipped == [("test-pin", "conflicts with test-workers (declared)")]


def test_unmet_requirements_skip_a_rule_when_versions_are_given() -> None:
    config = WorkloadConfig(precision="fp32")
    ignore = ["bf16-mixed-precision"]
    assert "tf32-cuda" in [r.id for r in BUNDLED.match(config, "cuda", ignore).applicable]
    result = BUNDLED.match(config, "cuda", ignore, versions={"compute_capability": "7.0"})
    assert ("tf32-cuda", "requires compute_capability>=8.0 (have 7.0)") in result.skipped


# --- loading -------------------------------------------------------------------------


def test_a_user_directory_adds_rules(tmp_path: Path) -> None:
    write_pack(tmp_path / "ours", rule_data())
    kb = load_kb([tmp_path / "ours"])
    assert kb.get("test-workers").category == "data"
    assert len(kb) == len(BUNDLED) + 1
    assert kb.replaced == []


def test_a_user_rule_with_a_builtin_id_replaces_it_and_is_recorded(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule_data(id="dataloader-workers", set={"dataloader_workers": 2}))
    kb = load_kb([tmp_path])
    assert kb.get("dataloader-workers").set == {"dataloader_workers": 2}
    assert kb.replaced == [("dataloader-workers", path)]
    assert kb.sources["dataloader-workers"] == path


def test_duplicate_ids_across_user_dirs_name_both_files(tmp_path: Path) -> None:
    first = write_pack(tmp_path / "a", rule_data())
    second = write_pack(tmp_path / "b", rule_data())
    with pytest.raises(KnowledgeBaseError, match="duplicate rule id 'test-workers'") as info:
        load_kb([tmp_path / "a", tmp_path / "b"])
    assert str(first) in str(info.value)
    assert str(second) in str(info.value)


def test_a_typod_operator_names_the_file_the_rule_and_the_operator(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule_data(when={"dataloader_workers": {"equals": 0}}))
    with pytest.raises(KnowledgeBaseError) as info:
        load_kb([tmp_path])
    message = str(info.value)
    assert str(path) in message
    assert "rule 'test-workers'" in message
    assert "unknown operator 'equals'" in message


def test_a_field_error_names_the_file_the_rule_and_the_field(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule_data(), rule_data(id="second", category="dataa"))
    with pytest.raises(KnowledgeBaseError) as info:
        load_kb([tmp_path])
    message = str(info.value)
    assert str(path) in message
    assert "rule 'second' (#2)" in message
    assert "category:" in message


def test_a_rule_without_an_id_is_named_by_its_position(tmp_path: Path) -> None:
    data = rule_data()
    del data["id"]
    write_pack(tmp_path, data)
    with pytest.raises(KnowledgeBaseError, match=r"rule #1: id: Field required"):
        load_kb([tmp_path])


def test_a_file_may_hold_a_rules_mapping(tmp_path: Path) -> None:
    (tmp_path / "pack.yml").write_text(yaml.safe_dump({"rules": [rule_data()]}), encoding="utf-8")
    assert "test-workers" in load_kb([tmp_path])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [\n", "not valid YAML"),
        ("notes: []\n", "mapping with only 'rules'"),
        ("just a string\n", "expected a list of rules"),
        ("- 3\n", r"rule #1: expected a mapping"),
    ],
)
def test_a_malformed_file_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=message):
        load_kb([tmp_path])


def test_a_missing_or_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="no such rule directory"):
        load_kb([tmp_path / "absent"])
    with pytest.raises(KnowledgeBaseError, match="no rule files"):
        load_kb([tmp_path])


def test_conflicts_with_an_unknown_rule_is_an_error(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule_data(conflicts_with=["pin-memroy"]))
    with pytest.raises(KnowledgeBaseError, match="did you mean 'pin-memory'") as info:
        load_kb([tmp_path])
    assert str(path) in str(info.value)


def test_get_suggests_close_ids() -> None:
    with pytest.raises(KeyError, match="did you mean 'fused-adamw'"):
        BUNDLED.get("fused-adam")


def test_by_category_follows_display_order() -> None:
    groups = BUNDLED.by_category()
    assert list(groups) == [c for c in CATEGORIES if c in groups]
    assert sum(len(rules) for rules in groups.values()) == len(BUNDLED)


def test_a_rule_dumps_its_condition_as_yaml_data() -> None:
    dumped = BUNDLED.get("bf16-mixed-precision").model_dump()
    assert dumped["when"] == {"precision": {"in": ["fp32", "tf32"]}}


# --- search --------------------------------------------------------------------------


def test_search_finds_rules_by_symptom_words() -> None:
    results = search(BUNDLED, ["dataloader workers, accelerator idle between steps"])
    assert results[0][0].id == "dataloader-workers"
    assert all(score > 0 for _, score in results)


def test_search_ranks_globally_across_queries() -> None:
    weak, strong = "variability", "eager attention score matrix square sequence length"
    results = search(BUNDLED, [weak, strong], top_k=10)
    ids = [rule.id for rule, _ in results]
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert len(ids) == len(set(ids))
    assert ids.index("sdpa-attention") < ids.index("numa-balancing-off")


def test_search_returns_at_most_top_k_and_nothing_for_unrelated_text() -> None:
    assert len(search(BUNDLED, ["memory attention precision data workers"], top_k=2)) == 2
    assert search(BUNDLED, ["zzz qqq"]) == []
    assert search(BUNDLED, []) == []


def test_search_accepts_a_subset_of_rules() -> None:
    applicable = BUNDLED.match(EAGER_BF16, "cpu").applicable
    results = search(applicable, ["attention memory grows with sequence length"])
    assert {rule.id for rule, _ in results} <= {rule.id for rule in applicable}
