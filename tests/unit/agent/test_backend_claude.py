"""The claude backend with the real anthropic client against a loopback /v1/messages server."""

from __future__ import annotations

import itertools
import json
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import pytest

from helpers.llm_servers import (
    LLM_VARIABLES,
    LLMServer,
    PlannerModel,
    Reply,
    Request,
    anthropic_error,
    anthropic_reply,
    text_block,
    tool_results,
    tool_use,
)
from helpers.workloads import MISTUNED_YAML, WorkloadFactory
from pytest_goblin.agent import tools
from pytest_goblin.agent.backends.claude import STOP_REASONS, ClaudeBackend
from pytest_goblin.agent.backends.prices import price_for
from pytest_goblin.agent.loop import MAX_STEPS, AuditOutcome, audit
from pytest_goblin.agent.prompts import SYSTEM_PROMPT
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.workload.read import Workload

API_KEY = "test-anthropic-key-7f3a9c"
"""Not token-shaped on purpose: it must be kept out of requests by its value."""
PATH = "workloads/w.goblin.yaml"
TOOL_NAMES = [tool.name for tool in tools.ALL_TOOLS]


@pytest.fixture(autouse=True)
def claude_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)


def run(
    script: list[Reply] | Any, workload: Workload, context: AuditContext, **options: Any
) -> tuple[AuditOutcome, LLMServer]:
    with LLMServer(script) as server:
        backend = ClaudeBackend(SYSTEM_PROMPT, base_url=server.url, **options)
        return audit(workload, context, backend=backend), server


def parse_call(call_id: str = "toolu_1") -> dict[str, Any]:
    return tool_use(call_id, "parse_config", file_path=PATH)


DONE = anthropic_reply(text_block("Done."))


# --- the canonical trajectory ----------------------------------------------------------------


def test_the_canonical_trajectory_reaches_the_planners_report(
    mistuned: Workload, context: AuditContext
) -> None:
    reference = audit(mistuned, context)
    outcome, server = run(PlannerModel(), mistuned, context)
    assert outcome.error is None
    assert outcome.report is not None and reference.report is not None
    assert outcome.report.model_dump() == reference.report.model_dump()
    assert outcome.usage.turns == reference.usage.turns == len(server.requests)


def test_every_request_offers_the_six_tools_with_the_system_prompt_and_tools_cached(
    mistuned: Workload, context: AuditContext
) -> None:
    _, server = run(PlannerModel(), mistuned, context)
    for request in server.requests:
        body = request.body
        assert request.path == "/v1/messages"
        assert [tool["name"] for tool in body["tools"]] == TOOL_NAMES
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["system"] == [
            {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
        ]
        assert body["model"] == "claude-sonnet-5-5"


def test_each_tool_use_id_comes_back_as_a_tool_result_in_the_next_request(
    mistuned: Workload, context: AuditContext
) -> None:
    _, server = run(PlannerModel(), mistuned, context)
    for reply, request in zip(server.replies, server.requests[1:]):
        asked = [b["id"] for b in reply.body["content"] if b["type"] == "tool_use"]
        assert [r["tool_use_id"] for r in tool_results(request)] == asked


# --- tool calls in all their shapes ----------------------------------------------------------


def test_two_tool_calls_in_one_turn_get_both_results_in_one_user_message(
    mistuned: Workload, context: AuditContext
) -> None:
    script = [
        anthropic_reply(parse_call()),
        anthropic_reply(
            tool_use("toolu_2", "profile_run", config_id="cfg-1"),
            tool_use("toolu_3", "query_rocm_kb", config_id="cfg-1"),
        ),
        DONE,
    ]
    _, server = run(script, mistuned, context)
    messages = server.requests[2].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    results = tool_results(server.requests[2])
    assert [r["tool_use_id"] for r in results] == ["toolu_2", "toolu_3"]
    assert [r["is_error"] for r in results] == [False, False]
    assert all(b["type"] == "tool_result" for b in messages[-1]["content"])


def test_misnested_arguments_are_unwrapped_and_the_tool_runs(
    mistuned: Workload, context: AuditContext
) -> None:
    misnested = tool_use(
        "toolu_1", "parse_config", name="parse_config", arguments={"file_path": PATH}
    )
    _, server = run([anthropic_reply(misnested), DONE], mistuned, context)
    (result,) = tool_results(server.requests[1])
    assert result["is_error"] is False
    assert json.loads(result["content"])["config_id"] == "cfg-1"


def test_an_unknown_tool_gets_an_error_result_listing_the_six_tools(
    mistuned: Workload, context: AuditContext
) -> None:
    script = [anthropic_reply(tool_use("toolu_1", "run_shell", command="rm -rf /")), DONE]
    outcome, server = run(script, mistuned, context)
    (result,) = tool_results(server.requests[1])
    assert result["is_error"] is True
    assert all(name in result["content"] for name in TOOL_NAMES)
    assert outcome.report is None


def test_a_tool_call_cut_off_at_max_tokens_is_not_run(
    mistuned: Workload, context: AuditContext
) -> None:
    script = [anthropic_reply(parse_call(), stop_reason="max_tokens"), DONE]
    outcome, server = run(script, mistuned, context)
    (result,) = tool_results(server.requests[1])
    assert result["is_error"] is True
    assert "cut off" in result["content"]
    assert not [e for e in outcome.events if e.type == "tool_result" and e.data["ok"]]


def test_every_api_stop_reason_has_an_action() -> None:
    assert set(typing.get_args(anthropic.types.StopReason)) == set(STOP_REASONS)


# --- models that misbehave -------------------------------------------------------------------


def test_a_runaway_model_is_stopped_by_the_step_cap(
    mistuned: Workload, context: AuditContext
) -> None:
    ids = itertools.count(1)

    def forever(request: Request) -> Reply:
        return anthropic_reply(parse_call(f"toolu_{next(ids)}"))

    outcome, server = run(forever, mistuned, context)
    assert len(server.requests) == MAX_STEPS
    assert outcome.report is None
    assert outcome.usage.turns == MAX_STEPS


def test_an_empty_response_ends_the_audit_with_an_error_not_a_crash(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome, server = run([anthropic_reply()], mistuned, context)
    assert len(server.requests) == 1
    assert outcome.report is None
    assert "without a report" in str(outcome.error)


# --- server failures -------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (429, "rate_limit_error")])
def test_an_overload_or_rate_limit_once_is_retried_by_the_sdk(
    status: int, kind: str, mistuned: Workload, context: AuditContext
) -> None:
    script = [
        anthropic_error(status, kind, "try again", retry_after_ms="1"),
        anthropic_reply(parse_call()),
        DONE,
    ]
    outcome, server = run(script, mistuned, context)
    first, retried, after = server.requests
    assert retried.text == first.text
    assert retried.headers["x-stainless-retry-count"] == "1"
    assert tool_results(after)[0]["is_error"] is False
    assert outcome.usage.turns == 2


def test_an_auth_failure_is_an_error_naming_the_variable_to_check(
    mistuned: Workload, context: AuditContext
) -> None:
    script = [anthropic_error(401, "authentication_error", "invalid x-api-key")]
    outcome, server = run(script, mistuned, context)
    assert len(server.requests) == 1
    assert outcome.report is None
    assert "401" in str(outcome.error)
    assert "check ANTHROPIC_API_KEY" in str(outcome.error)
    assert API_KEY not in str(outcome.error)


def test_a_missing_key_is_an_error_naming_the_variable(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    outcome = audit(mistuned, replace(context, backend="claude"))
    assert [event.type for event in outcome.events] == ["error"]
    assert "set ANTHROPIC_API_KEY" in str(outcome.error)


# --- secrets and usage -----------------------------------------------------------------------


def test_no_secret_reaches_a_request_or_an_event(
    workload: WorkloadFactory, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_token = "hf_" + "q" * 30
    monkeypatch.setenv("HF_TOKEN", hf_token)
    secret_workload = workload(MISTUNED_YAML + "env_vars:\n  WANDB_API_KEY: wandb-value-5150\n")
    outcome, server = run(PlannerModel(), secret_workload, context)
    assert outcome.report is not None
    sent = [request.text for request in server.requests]
    events = json.dumps([event.model_dump() for event in outcome.events])
    for secret in (API_KEY, hf_token, "wandb-value-5150"):
        assert not any(secret in text for text in sent)
        assert secret not in events
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_usage_adds_cached_input_to_the_tokens_and_prices_the_model(
    mistuned: Workload, context: AuditContext
) -> None:
    script = [
        anthropic_reply(
            parse_call(), input_tokens=100, output_tokens=20, cache_write=1000, cache_read=0
        ),
        anthropic_reply(
            text_block("Done."), input_tokens=50, output_tokens=10, cache_write=0, cache_read=1000
        ),
    ]
    outcome, _ = run(script, mistuned, context, model="claude-haiku-4-5")
    price = price_for("claude-haiku-4-5")
    assert price is not None
    assert outcome.usage.turns == 2
    assert outcome.usage.input_tokens == 100 + 1000 + 50 + 1000
    assert outcome.usage.output_tokens == 30
    expected = price.cost(100, 20, cache_write_tokens=1000) + price.cost(
        50, 10, cache_read_tokens=1000
    )
    assert outcome.usage.cost_usd == pytest.approx(expected)


def test_an_unpriced_model_reports_tokens_without_a_cost(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome, _ = run([DONE], mistuned, context, model="claude-fable-5")
    assert outcome.usage.input_tokens > 0
    assert outcome.usage.cost_usd is None
