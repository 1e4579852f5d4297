"""Specification of backend selection: ``auto``, models, and the header line that says why."""

from __future__ import annotations

import sys

import pytest

from pytest_goblin.agent.backends import (
    BackendUnavailable,
    Selection,
    describe,
    ensure_available,
    resolve_model,
    select,
)

LLM_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "HF_TOKEN",
    "GOBLIN_QWEN_BASE_URL",
    "GOBLIN_QWEN_PROVIDER",
    "GOBLIN_CLAUDE_MODEL",
    "GOBLIN_QWEN_MODEL",
)


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_auto_without_keys_is_the_planner_and_says_what_was_missing() -> None:
    selection = select("auto", environ={})
    assert selection.name == "planner"
    assert "ANTHROPIC_API_KEY" in selection.reason
    assert "HF_TOKEN" in selection.reason


def test_auto_picks_claude_when_anthropic_api_key_is_set() -> None:
    both = {"ANTHROPIC_API_KEY": "k", "HF_TOKEN": "t"}
    assert select("auto", environ=both) == Selection("claude", "auto: ANTHROPIC_API_KEY is set")


def test_auto_picks_qwen_when_hf_token_is_set() -> None:
    assert select("auto", environ={"HF_TOKEN": "t"}) == Selection("qwen", "auto: HF_TOKEN is set")


@pytest.mark.parametrize("where", ["option", "environment"])
def test_auto_picks_qwen_when_a_base_url_is_set(where: str) -> None:
    url = "http://localhost:8000/v1"
    selection = (
        select("auto", base_url=url, environ={})
        if where == "option"
        else select("auto", environ={"GOBLIN_QWEN_BASE_URL": url})
    )
    assert selection == Selection("qwen", "auto: a qwen base URL is set")


def test_auto_skips_a_backend_whose_sdk_is_missing_and_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    selection = select("auto", environ={"ANTHROPIC_API_KEY": "k"})
    assert selection.name == "planner"
    assert "pip install 'pytest-goblin[claude]'" in selection.reason


def test_an_explicit_backend_is_kept_as_requested() -> None:
    assert select("qwen", environ={"ANTHROPIC_API_KEY": "k"}) == Selection("qwen", "requested")


@pytest.mark.parametrize("name", ["claude", "qwen"])
def test_an_explicit_backend_without_its_sdk_is_unavailable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, {"claude": "anthropic", "qwen": "huggingface_hub"}[name], None)
    with pytest.raises(BackendUnavailable, match=rf"pip install 'pytest-goblin\[{name}\]'"):
        ensure_available(name)


def test_the_planner_needs_nothing_installed() -> None:
    ensure_available("planner")
    ensure_available("auto")


def test_the_model_setting_wins_over_the_variable_which_wins_over_the_default() -> None:
    environ = {"GOBLIN_CLAUDE_MODEL": "claude-haiku-4-5"}
    assert resolve_model("claude", "claude-opus-4-6", environ) == "claude-opus-4-6"
    assert resolve_model("claude", None, environ) == "claude-haiku-4-5"
    assert resolve_model("claude", None, {}) == "claude-sonnet-5-5"
    assert resolve_model("qwen", None, {"GOBLIN_QWEN_MODEL": "Qwen/Qwen3-8B"}) == "Qwen/Qwen3-8B"
    assert resolve_model("planner", "anything", {}) is None


def test_the_header_line_names_backend_model_and_reason() -> None:
    line = describe(Selection("claude", "auto: ANTHROPIC_API_KEY is set"), "claude-haiku-4-5", None)
    assert line == "agent: claude (model claude-haiku-4-5); auto: ANTHROPIC_API_KEY is set"


def test_the_header_line_names_the_qwen_server_or_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    qwen = Selection("qwen", "requested")
    assert "server http://vllm:8000/v1" in describe(qwen, None, "http://vllm:8000/v1")
    monkeypatch.setenv("GOBLIN_QWEN_PROVIDER", "together")
    assert "provider together" in describe(qwen, None, None)


def test_the_header_line_for_the_planner_has_no_model() -> None:
    assert describe(Selection("planner", "requested"), "ignored", None) == (
        "agent: planner; requested"
    )
