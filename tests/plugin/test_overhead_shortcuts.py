"""Shortcuts taken for the overhead budget change the cost of an answer, never the answer.

Redaction finds secret names with ``str.find`` instead of one regular expression,
conditions look paths up with a fast path for dicts, and the YAML editor remembers
how a scalar is written. Each is held here against what it replaces.
"""

from __future__ import annotations

import random
import re
from types import MappingProxyType

import pytest

from pytest_goblin.formats.yaml_edit import YamlText
from pytest_goblin.kb.conditions import parse_condition
from pytest_goblin.redact import _names_a_value

NAME_BEFORE_VALUE = re.compile(r"(?:token|secret|passw(?:or)?d|api_?key|access_?key)[\"']?\s*[:=]")
"""The pattern the name scan stands for."""

PIECES = [
    "token",
    "tokens",
    "secret",
    "passwd",
    "password",
    "passwor",
    "passw",
    "or",
    "d",
    "api",
    "api_",
    "apikey",
    "key",
    "ke",
    "access",
    "access_",
    "_",
    '"',
    "'",
    " ",
    "\t",
    "\n",
    "\u2003",
    ":",
    "=",
    "x",
    "_per_sec",
    "{",
    ",",
]


def test_the_name_scan_finds_a_secret_name_before_a_value_exactly_where_the_pattern_does() -> None:
    rng = random.Random(0)
    for _ in range(50_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 10)))
        assert _names_a_value(text) == bool(NAME_BEFORE_VALUE.search(text)), repr(text)


@pytest.mark.parametrize(
    ("when", "data"),
    [
        ({"precision": "fp32"}, {"precision": "fp32"}),
        ({"env_vars.HF_HOME": {"exists": True}}, {"env_vars": {"HF_HOME": "/data"}}),
        ({"extras.deep.flag": True}, {"extras": {"deep": {"flag": True}}}),
        ({"world_size": {"gt": 1}}, {"world_size": 8}),
    ],
)
def test_a_condition_reads_any_mapping_as_it_reads_a_dict(
    when: dict[str, object], data: dict[str, object]
) -> None:
    condition = parse_condition(when)
    as_proxy = MappingProxyType(
        {
            key: MappingProxyType(value) if isinstance(value, dict) else value
            for key, value in data.items()
        }
    )
    assert condition.evaluate(data) is True
    assert condition.evaluate(as_proxy) is True


def test_a_value_is_written_as_itself_after_an_equal_value_of_another_kind() -> None:
    document = YamlText("a: x\nb: x\nc: x\nd: x\n")
    document.set(["a"], 0.0)
    document.set(["b"], -0.0)
    document.set(["c"], 1)
    document.set(["d"], True)
    assert document.text() == "a: 0.0\nb: -0.0\nc: 1\nd: true\n"
