"""Specification of reading unvetted YAML: plain data only, aliases within reason."""

from __future__ import annotations

import pytest
import yaml

from pytest_goblin.safe_yaml import MAX_ALIAS_NODES, UnsafeYaml, load, nested_deeper_than


def laughs(levels: int, width: int = 10) -> str:
    """A billion-laughs document: each anchor is ``width`` aliases of the one before."""
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_anchors_shared_with_a_merge_key_read_as_usual() -> None:
    text = "base: &base {batch_size: 4, precision: bf16}\nrun:\n  <<: *base\n  seq_len: 2048\n"
    assert load(text)["run"] == {"batch_size": 4, "precision": "bf16", "seq_len": 2048}


def test_aliases_that_repeat_a_few_thousand_nodes_are_allowed() -> None:
    assert len(load(laughs(3))["l3"]) == 10


def test_an_alias_bomb_is_refused_before_anything_is_built() -> None:
    with pytest.raises(UnsafeYaml, match=f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes"):
        load(laughs(9))


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(UnsafeYaml, match="refers to the anchor it is inside"):
        load("a: &a [1, *a]\n")


def test_a_python_tag_is_an_error_and_constructs_nothing() -> None:
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        load("x: !!python/object/apply:os.getcwd []\n")


def test_an_empty_document_is_none() -> None:
    assert load("# only a comment\n") is None


@pytest.mark.parametrize(
    ("data", "deeper"),
    [
        ({"a": {"b": [1, 2]}}, False),
        ({"a": {"b": [[1]]}}, True),
        ([[[]]], False),
        ("text", False),
    ],
)
def test_nesting_depth_counts_lists_and_mappings(data: object, deeper: bool) -> None:
    assert nested_deeper_than(data, 3) is deeper
