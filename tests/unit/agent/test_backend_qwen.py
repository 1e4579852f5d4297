"""The qwen backend with the real huggingface_hub client against a loopback OpenAI-style server."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.utils._http import default_client_factory

from helpers.llm_servers import (
    LLM_VARIABLES,
    LLMServer,
    PlannerModel,
    Reply,
    Request,
    openai_call,
    openai_error,
    openai_reply,
    tool_messages,
)
from pytest_goblin.agent import tools
from pytest_goblin.agent.backends.qwen import QwenBackend
from pytest_goblin.agent.backends.retry import RetryPolicy
from pytest_goblin.agent.loop import MAX_STEPS, AuditOutcome, audit
from pytest_goblin.agent.prompts import SYSTEM_PROMPT
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.workload.read import Workload

HF_TOKEN = "hf_" + "s" * 34
PATH = "workloads/w.goblin.yaml"
TOOL_NAMES = [tool.name for tool in tools.ALL_TOOLS]
PARSE = openai_call("call_a", "parse_config", json.dumps({"file_path": PATH}))
DONE = openai_reply("Done.")


class Sleeps:
    """An injected sleep: records the waits the retry policy asked for, and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def qwen_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user has a Hugging Face token: it must never go to a third-party server."""
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def run(
    script: list[Reply] | Any,
    workload: Workload,
    context: AuditContext,
    sleeps: Sleeps | None = None,
    **options: Any,
) -> tuple[AuditOutcome, LLMServer]:
    with LLMServer(script) as server:
        backend = QwenBackend(
            SYSTEM_PROMPT,
            base_url=f"{server.url}/v1",
            retry=RetryPolicy(sleep=sleeps or Sleeps()),
            **options,
        )
        return audit(workload, context, backend=backend), server


def ran(outcome: AuditOutcome) -> list[tuple[str, bool]]:
    """The tool calls the loop ran, with whether each succeeded."""
    return [(e.data["name"], e.data["ok"]) for e in outcome.events if e.type == "tool_result"]


# --- the canonical trajectory ----------------------------------------------------------------


def test_the_canonical_trajectory_reaches_the_planners_report(
    mistuned: Workload, context: AuditContext
) -> None:
    reference = audit(mistuned, context)
    outcome, server = run(PlannerModel(), mistuned, context)
    assert outcome.error is None
    assert outcome.report is not None and reference.report is not None
    assert outcome.report.model_dump() == reference.report.model_dump()
    assert outcome.usage.turns == len(server.requests)


def test_every_request_offers_the_six_tools_as_openai_functions_to_the_chosen_model(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOBLIN_QWEN_MODEL", "Qwen/Qwen3-8B")
    _, server = run(PlannerModel(), mistuned, context)
    for request in server.requests:
        body = request.body
        assert request.path == "/v1/chat/completions"
        assert body["model"] == "Qwen/Qwen3-8B"
        assert body["tool_choice"] == "auto"
        assert [t["function"]["name"] for t in body["tools"]] == TOOL_NAMES
        assert all(t["type"] == "function" and "parameters" in t["function"] for t in body["tools"])
        assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_each_tool_call_id_comes_back_as_a_tool_message_in_the_next_request(
    mistuned: Workload, context: AuditContext
) -> None:
    _, server = run(PlannerModel(), mistuned, context)
    for reply, request in zip(server.replies, server.requests[1:]):
        asked = [c["id"] for c in reply.body["choices"][0]["message"].get("tool_calls", [])]
        assert [m["tool_call_id"] for m in tool_messages(request)] == asked


def test_the_hugging_face_token_never_goes_to_the_base_url_server(
    mistuned: Workload, context: AuditContext
) -> None:
    _, server = run(PlannerModel(), mistuned, context)
    for request in server.requests:
        assert request.headers["authorization"] == "Bearer EMPTY"
        assert HF_TOKEN not in request.text
        assert HF_TOKEN not in json.dumps(request.headers)


def test_the_base_url_server_gets_the_goblin_qwen_api_key_and_it_stays_out_of_the_text(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOBLIN_QWEN_API_KEY", "vllm-key-8080")
    outcome, server = run(PlannerModel(), mistuned, context)
    assert all(r.headers["authorization"] == "Bearer vllm-key-8080" for r in server.requests)
    assert not any("vllm-key-8080" in r.text for r in server.requests)
    assert "vllm-key-8080" not in json.dumps([e.model_dump() for e in outcome.events])


# --- tool calls in all their shapes ----------------------------------------------------------


def test_two_tool_calls_in_one_turn_are_echoed_and_answered_with_their_ids(
    mistuned: Workload, context: AuditContext
) -> None:
    two = [
        openai_call("call_b", "profile_run", json.dumps({"config_id": "cfg-1"})),
        openai_call("call_c", "query_rocm_kb", json.dumps({"config_id": "cfg-1"})),
    ]
    outcome, server = run(
        [openai_reply(calls=[PARSE]), openai_reply(calls=two), DONE], mistuned, context
    )
    echoed = server.requests[2].body["messages"][-3]
    assert [c["id"] for c in echoed["tool_calls"]] == ["call_b", "call_c"]
    assert [m["tool_call_id"] for m in tool_messages(server.requests[2])] == ["call_b", "call_c"]
    assert ran(outcome) == [("parse_config", True), ("profile_run", True), ("query_rocm_kb", True)]


def test_misnested_arguments_are_unwrapped(mistuned: Workload, context: AuditContext) -> None:
    misnested = json.dumps({"name": "parse_config", "arguments": {"file_path": PATH}})
    outcome, _ = run(
        [openai_reply(calls=[openai_call("c1", "parse_config", misnested)]), DONE],
        mistuned,
        context,
    )
    assert ran(outcome) == [("parse_config", True)]


def test_double_encoded_arguments_are_decoded(mistuned: Workload, context: AuditContext) -> None:
    double = json.dumps(json.dumps({"file_path": PATH}))
    outcome, server = run(
        [openai_reply(calls=[openai_call("c1", "parse_config", double)]), DONE], mistuned, context
    )
    assert ran(outcome) == [("parse_config", True)]
    echoed = server.requests[1].body["messages"][-2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(echoed) == {"file_path": PATH}


def test_undecodable_arguments_get_an_error_the_model_can_act_on_and_nothing_runs(
    mistuned: Workload, context: AuditContext
) -> None:
    broken = openai_call("c1", "parse_config", '{"file_path": "workloads/w.go')
    outcome, server = run([openai_reply(calls=[broken]), DONE], mistuned, context)
    assert ran(outcome) == [("parse_config", False)]
    (message,) = tool_messages(server.requests[1])
    assert message["content"].startswith("ERROR: parse_config: arguments are not valid JSON")


def test_missing_call_ids_are_made_up_and_kept_consistent(
    mistuned: Workload, context: AuditContext
) -> None:
    no_id = openai_call(None, "parse_config", json.dumps({"file_path": PATH}))
    _, server = run([openai_reply(calls=[no_id]), DONE], mistuned, context)
    echoed = server.requests[1].body["messages"][-2]["tool_calls"][0]["id"]
    assert echoed
    assert tool_messages(server.requests[1])[0]["tool_call_id"] == echoed


def test_hermes_calls_in_text_are_recovered_and_think_is_never_shown_or_run(
    mistuned: Workload, context: AuditContext
) -> None:
    drafted = (
        '<tool_call>{"name": "compare_runs", "arguments": {"workload_name": "w", '
        '"before": "run-1", "after": "run-2"}}</tool_call>'
    )
    content = (
        f"<think>I could call {drafted} but first I must read it.</think>\n"
        f"Reading the workload.\n<tool_call>\n"
        f'{{"name": "parse_config", "arguments": {{"file_path": "{PATH}"}}}}\n'
        f"</tool_call>"
    )
    outcome, server = run([openai_reply(content), DONE], mistuned, context)
    assert ran(outcome) == [("parse_config", True)]
    thoughts = [e.data["text"] for e in outcome.events if e.type == "thought"]
    assert thoughts[0] == "Reading the workload."
    echoed = server.requests[1].body["messages"][-2]
    assert echoed["content"] == "Reading the workload."
    assert [c["function"]["name"] for c in echoed["tool_calls"]] == ["parse_config"]
    assert "<think>" not in server.requests[1].text


def test_native_calls_win_and_the_same_call_written_as_text_does_not_run_twice(
    mistuned: Workload, context: AuditContext
) -> None:
    written = (
        'Reading.\n<tool_call>{"name": "parse_config", "arguments": '
        f'{{"file_path": "{PATH}"}}}}</tool_call>'
    )
    outcome, _ = run([openai_reply(written, calls=[PARSE]), DONE], mistuned, context)
    assert ran(outcome) == [("parse_config", True)]
    assert [e.data["text"] for e in outcome.events if e.type == "thought"][0] == "Reading."


def test_compare_runs_left_inside_think_is_not_run_and_the_report_is_synthesised(
    mistuned: Workload, context: AuditContext
) -> None:
    def call(call_id: str, name: str, **arguments: Any) -> Reply:
        return openai_reply(calls=[openai_call(call_id, name, json.dumps(arguments))])

    thinking = (
        '<think>Now <tool_call>{"name": "compare_runs", "arguments": {"workload_name": '
        '"w", "before": "run-1", "after": "run-2", "patch": "patch-1"}}</tool_call>'
        "</think>The audit is complete."
    )
    script = [
        call("c1", "parse_config", file_path=PATH),
        call("c2", "propose_patch", config_id="cfg-1", rule_ids=["bf16-mixed-precision"]),
        call("c3", "benchmark", config_id="cfg-1"),
        call("c4", "benchmark", patch_id="patch-1"),
        openai_reply(thinking),
    ]
    outcome, _ = run(script, mistuned, context)
    assert "compare_runs" not in [name for name, _ in ran(outcome)]
    assert outcome.report is not None
    assert any("synthesised" in note for note in outcome.report.notes)
    assert outcome.report.speedup > 1


def test_a_tool_call_cut_off_at_max_tokens_is_not_run(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome, server = run(
        [openai_reply(calls=[PARSE], finish_reason="length"), DONE], mistuned, context
    )
    assert ran(outcome) == [("parse_config", False)]
    assert "cut off" in tool_messages(server.requests[1])[0]["content"]


def test_an_unknown_tool_gets_an_error_listing_the_six_tools(
    mistuned: Workload, context: AuditContext
) -> None:
    shell = openai_call("c1", "run_shell", json.dumps({"command": "rm -rf /"}))
    _, server = run([openai_reply(calls=[shell]), DONE], mistuned, context)
    (message,) = tool_messages(server.requests[1])
    assert message["content"].startswith("ERROR: unknown tool 'run_shell'")
    assert all(name in message["content"] for name in TOOL_NAMES)


# --- models that misbehave -------------------------------------------------------------------


def test_a_runaway_model_is_stopped_by_the_step_cap(
    mistuned: Workload, context: AuditContext
) -> None:
    ids = itertools.count(1)

    def forever(request: Request) -> Reply:
        return openai_reply(
            calls=[
                openai_call(f"call_{next(ids)}", "parse_config", json.dumps({"file_path": PATH}))
            ]
        )

    outcome, server = run(forever, mistuned, context)
    assert len(server.requests) == MAX_STEPS
    assert outcome.report is None


@pytest.mark.parametrize(
    "reply", [openai_reply(""), Reply({"choices": []})], ids=["empty content", "no choices"]
)
def test_an_empty_response_ends_the_audit_with_an_error_not_a_crash(
    reply: Reply, mistuned: Workload, context: AuditContext
) -> None:
    outcome, server = run([reply], mistuned, context)
    assert len(server.requests) == 1
    assert "without a report" in str(outcome.error)


# --- server failures -------------------------------------------------------------------------


def test_a_503_once_is_retried_with_backoff(
    mistuned: Workload, context: AuditContext, sleeps: Sleeps
) -> None:
    script = [openai_error(503, "overloaded"), openai_reply(calls=[PARSE]), DONE]
    outcome, server = run(script, mistuned, context, sleeps)
    assert len(sleeps.waits) == 1
    assert 0 < sleeps.waits[0] <= RetryPolicy().base_delay_s
    assert server.requests[0].text == server.requests[1].text
    assert ran(outcome) == [("parse_config", True)]


def test_a_429_once_is_retried_after_the_wait_the_server_asked_for(
    mistuned: Workload, context: AuditContext, sleeps: Sleeps
) -> None:
    script = [openai_error(429, "slow down", retry_after="7"), openai_reply(calls=[PARSE]), DONE]
    outcome, _ = run(script, mistuned, context, sleeps)
    assert sleeps.waits == [7.0]
    assert ran(outcome) == [("parse_config", True)]


def test_a_server_that_stays_overloaded_fails_after_the_retries_with_its_message(
    mistuned: Workload, context: AuditContext, sleeps: Sleeps
) -> None:
    outcome, server = run([openai_error(503, "model is loading")] * 3, mistuned, context, sleeps)
    assert len(server.requests) == 3
    assert len(sleeps.waits) == 2
    assert "after 2 retries: HTTP 503: model is loading" in str(outcome.error)


def test_an_auth_failure_is_not_retried_and_names_the_variable_to_check(
    mistuned: Workload, context: AuditContext, sleeps: Sleeps
) -> None:
    outcome, server = run([openai_error(401, "invalid api key")], mistuned, context, sleeps)
    assert len(server.requests) == 1
    assert sleeps.waits == []
    assert "HTTP 401" in str(outcome.error)
    assert "check GOBLIN_QWEN_API_KEY" in str(outcome.error)


# --- Hugging Face Inference Providers --------------------------------------------------------


@pytest.fixture
def hub_transport() -> Iterator[list[httpx2.Request]]:
    """The Hub and its router, faked at the transport, since their hosts are fixed.

    The model lookup maps the model to a ``together`` deployment; the router
    answers with one final reply.
    """
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.startswith("/api/models/"):
            return httpx2.Response(
                200,
                json={
                    "id": "Qwen/Qwen2.5-7B-Instruct",
                    "inferenceProviderMapping": {
                        "together": {
                            "providerId": "Qwen/Qwen2.5-7B-Instruct-Turbo",
                            "status": "live",
                            "task": "conversational",
                        }
                    },
                },
            )
        return httpx2.Response(200, json=openai_reply("Done.").body)

    transport = httpx2.MockTransport(handle)
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=transport))
    yield seen
    huggingface_hub.set_client_factory(default_client_factory)


def test_the_provider_setting_really_selects_the_provider(
    hub_transport: list[httpx2.Request],
    mistuned: Workload,
    context: AuditContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOBLIN_QWEN_PROVIDER", "together")
    outcome = audit(mistuned, replace(context, backend="qwen"))
    chat = [r for r in hub_transport if r.url.path.endswith("/chat/completions")]
    assert [str(r.url) for r in chat] == [
        "https://router.huggingface.co/together/v1/chat/completions"
    ]
    assert json.loads(chat[0].content)["model"] == "Qwen/Qwen2.5-7B-Instruct-Turbo"
    assert chat[0].headers["authorization"] == f"Bearer {HF_TOKEN}"
    assert outcome.usage.turns == 1


def test_without_a_token_or_a_base_url_the_error_names_hf_token(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    outcome = audit(mistuned, replace(context, backend="qwen"))
    assert [e.type for e in outcome.events] == ["error"]
    assert "set HF_TOKEN" in str(outcome.error)
