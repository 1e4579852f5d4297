"""Specification of tool-call normalisation: what a model wrote, as calls the loop can trust."""

from __future__ import annotations

import json

import pytest

from pytest_goblin.agent import tools
from pytest_goblin.agent.backends.toolcalls import (
    ArgumentError,
    ParsedCall,
    decode_arguments,
    recover_text_calls,
    split_think,
)

SCHEMAS = {s["name"]: s["input_schema"] for s in tools.tool_schemas()}
ARGS = {"config_id": "cfg-1", "steps": 20}


# --- <think> ---------------------------------------------------------------------------------


def test_a_closed_think_block_is_reasoning_and_the_rest_is_visible() -> None:
    assert split_think("<think>plan it</think>\nReading the file.") == (
        "plan it",
        "Reading the file.",
    )


def test_a_closing_tag_without_an_opening_one_ends_the_reasoning() -> None:
    assert split_think("the template opened it</think>Visible.") == (
        "the template opened it",
        "Visible.",
    )


def test_an_unclosed_think_block_is_all_reasoning() -> None:
    assert split_think("Start. <think>cut off while thinking") == (
        "cut off while thinking",
        "Start.",
    )


def test_text_without_think_is_all_visible() -> None:
    assert split_think("Just text.") == ("", "Just text.")


# --- arguments -------------------------------------------------------------------------------


def test_dict_arguments_are_used_as_they_are() -> None:
    assert decode_arguments(ARGS, "profile_run") == ARGS


def test_json_string_arguments_are_decoded() -> None:
    assert decode_arguments(json.dumps(ARGS), "profile_run") == ARGS


def test_double_encoded_arguments_are_decoded_twice() -> None:
    assert decode_arguments(json.dumps(json.dumps(ARGS)), "profile_run") == ARGS


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_missing_arguments_are_an_empty_object(raw: str | None) -> None:
    assert decode_arguments(raw, "profile_run") == {}


@pytest.mark.parametrize("key", ["arguments", "parameters"])
def test_a_call_misnested_inside_its_arguments_is_unwrapped(key: str) -> None:
    nested = {"name": "profile_run", key: json.dumps(ARGS)}
    assert decode_arguments(nested, "profile_run") == ARGS


def test_a_wrapper_naming_another_tool_is_left_for_validation_to_refuse() -> None:
    nested = {"name": "benchmark", "arguments": ARGS}
    assert decode_arguments(nested, "profile_run") == nested


def test_code_fences_stray_backslashes_and_trailing_text_are_repaired() -> None:
    raw = '```json\n{"file_path": "C:\\data\\models.yaml"}\n```'
    assert decode_arguments(raw, "parse_config") == {"file_path": "C:\\data\\models.yaml"}
    assert decode_arguments('{"steps": 20} and then some', "profile_run") == {"steps": 20}


def test_truncated_json_fails_closed_with_a_message_for_the_model() -> None:
    with pytest.raises(ArgumentError, match=r"not valid JSON.*complete JSON object"):
        decode_arguments('{"config_id": "cfg-1", "ste', "profile_run")


def test_arguments_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(ArgumentError, match="must be a JSON object, got list"):
        decode_arguments("[1, 2]", "profile_run")


# --- calls written as text -------------------------------------------------------------------


def test_hermes_tool_call_blocks_are_recovered_and_removed_from_the_text() -> None:
    text = (
        'Let me profile it.\n<tool_call>\n{"name": "profile_run", "arguments": '
        '{"config_id": "cfg-1", "steps": 20}}\n</tool_call>'
    )
    clean, calls = recover_text_calls(text, SCHEMAS)
    assert clean == "Let me profile it."
    assert calls == [ParsedCall("profile_run", ARGS)]


def test_several_blocks_are_several_calls_and_duplicates_are_dropped() -> None:
    block = '<tool_call>{"name": "benchmark", "arguments": {"config_id": "cfg-1"}}</tool_call>'
    other = '<tool_call>{"name": "benchmark", "arguments": {"patch_id": "patch-1"}}</tool_call>'
    _, calls = recover_text_calls(block + block + other, SCHEMAS)
    assert [c.arguments for c in calls] == [{"config_id": "cfg-1"}, {"patch_id": "patch-1"}]


def test_a_closing_tag_inside_a_string_argument_does_not_cut_the_call() -> None:
    text = (
        '<tool_call>{"name": "compare_runs", "arguments": {"workload_name": '
        '"a</tool_call>b", "before": "run-1", "after": "run-2"}}</tool_call>'
    )
    _, calls = recover_text_calls(text, SCHEMAS)
    assert calls[0].arguments["workload_name"] == "a</tool_call>b"


def test_an_unreadable_block_becomes_an_error_call() -> None:
    _, calls = recover_text_calls("<tool_call>{not json</tool_call>", SCHEMAS)
    assert calls[0].error is not None
    assert '"arguments"' in calls[0].error


def test_qwen3_coder_xml_calls_are_recovered_with_typed_values() -> None:
    text = (
        "<tool_call>\n<function=profile_run>\n<parameter=config_id>\ncfg-1\n</parameter>\n"
        "<parameter=steps>\n20\n</parameter>\n</function>\n</tool_call>"
    )
    _, calls = recover_text_calls(text, SCHEMAS)
    assert calls == [ParsedCall("profile_run", ARGS)]


def test_leaked_chat_template_tokens_are_removed() -> None:
    clean, _ = recover_text_calls("Done.<|im_end|>", SCHEMAS)
    assert clean == "Done."
