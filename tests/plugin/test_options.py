"""Parsing --goblin-device without torch."""

from __future__ import annotations

import pytest

from pytest_goblin.runner.options import DeviceSelector, parse_selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", DeviceSelector("auto")),
        ("CPU", DeviceSelector("cpu")),
        ("cuda", DeviceSelector("cuda")),
        ("cuda:1", DeviceSelector("cuda", 1)),
        (" rocm:0 ", DeviceSelector("rocm", 0)),
    ],
)
def test_every_selector_form_parses(text: str, expected: DeviceSelector) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cpu:0", "auto:1", "rocm:x", "mi300x"])
def test_anything_else_is_refused_with_the_forms_listed(text: str) -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda, cuda:N, rocm or rocm:N"):
        parse_selector(text)


def test_a_selector_prints_as_it_is_written() -> None:
    assert str(parse_selector("rocm:2")) == "rocm:2" and str(parse_selector("cpu")) == "cpu"
