"""Specification of the in-place JSON editor: key order, indent and untouched values stay."""

from __future__ import annotations

import json

from pytest_goblin.formats.json_edit import JsonText

ARGS = """\
{
  "model_name_or_path": "microsoft/Phi-3-mini-4k-instruct",
  "learning_rate": 3e-5,
  "fp16": true,
  "optim": "adamw_torch"
}
"""


def edited(text: str, *edits: tuple[tuple[str, ...], object]) -> str:
    document = JsonText(text)
    for path, value in edits:
        document.set(path, value)
    json.loads(document.text())
    return document.text()


def test_a_value_is_replaced_and_other_numbers_keep_their_spelling() -> None:
    text = edited(ARGS, (("fp16",), False))
    assert text == ARGS.replace('"fp16": true', '"fp16": false')
    assert '"learning_rate": 3e-5' in text


def test_a_missing_key_is_added_last_with_the_siblings_indent() -> None:
    text = edited(ARGS, (("dataloader_num_workers",), 4))
    assert text.endswith('  "optim": "adamw_torch",\n  "dataloader_num_workers": 4\n}\n')


def test_a_missing_nested_key_creates_its_object() -> None:
    text = edited(ARGS, (("model_init_kwargs", "attn_implementation"), "sdpa"))
    assert json.loads(text)["model_init_kwargs"] == {"attn_implementation": "sdpa"}
    assert list(json.loads(text))[-1] == "model_init_kwargs"


def test_a_key_is_added_to_an_existing_nested_object() -> None:
    text = '{"a": {"b": 1}, "c": [1, 2]}'
    assert edited(text, (("a", "d"), True)) == '{"a": {"b": 1, "d": true}, "c": [1, 2]}'


def test_an_empty_object_gets_its_first_member() -> None:
    assert edited('{"env": {}}', (("env", "X"), "1")) == '{"env": {"X": "1"}}'


def test_crlf_line_endings_are_kept() -> None:
    text = edited('{\r\n  "a": 1\r\n}\r\n', (("b",), 2))
    assert text == '{\r\n  "a": 1,\r\n  "b": 2\r\n}\r\n'


def test_strings_with_escapes_are_skipped_correctly() -> None:
    text = '{"path": "C:\\\\runs\\"x\\"", "n": 1}'
    assert json.loads(edited(text, (("n",), 2))) == {"path": 'C:\\runs"x"', "n": 2}
