"""The LLM backends as a user meets them: pytest runs against loopback model servers."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import paths
from helpers.llm_servers import LLM_VARIABLES, LLMServer, PlannerModel, anthropic_error

EXAMPLE_PROJECT = paths.EXAMPLE_PROJECT
API_KEY = "test-anthropic-key-4d2e91"
TUNED = "workloads/llama3-8b-lora-tuned.goblin.yaml"


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def example(pytester: pytest.Pytester) -> Path:
    """The bundled example project (settings, rules, workloads), copied into the test directory."""
    shutil.copytree(
        EXAMPLE_PROJECT, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*")
    )
    return pytester.path / "workloads"


@pytest.fixture
def claude_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """A model server in Anthropic's format that plays the canonical trajectory."""
    with LLMServer(PlannerModel()) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        yield server


@pytest.fixture
def qwen_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """An OpenAI-compatible server (as vLLM is) that plays the canonical trajectory."""
    with LLMServer(PlannerModel()) as server:
        monkeypatch.setenv("GOBLIN_QWEN_BASE_URL", f"{server.url}/v1")
        yield server


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def verdicts(pytester: pytest.Pytester, backend: str) -> dict[str, tuple[Any, ...]]:
    """Each workload's outcome, speedup and rules, from the JSON report of one run."""
    report = pytester.path / f"{backend}.json"
    run_goblin(pytester, "--goblin-backend", backend, "--goblin-json", str(report), "workloads")
    document = json.loads(report.read_text())
    assert document["backend"] == backend
    return {
        w["name"]: (w["outcome"], w["speedup"], [r["id"] for r in w["rules"]])
        for w in document["workloads"]
    }


# --- done when: the LLM backends reach the planner's verdicts ------------------------------


def test_claude_against_an_anthropic_format_server_reaches_the_planners_verdicts(
    pytester: pytest.Pytester, example: Path, claude_server: LLMServer
) -> None:
    planner = verdicts(pytester, "planner")
    claude = verdicts(pytester, "claude")
    assert claude == planner
    assert {outcome for outcome, _, _ in claude.values()} == {"failed", "passed"}
    assert claude_server.requests


def test_qwen_against_an_openai_format_server_reaches_the_planners_verdicts(
    pytester: pytest.Pytester, example: Path, qwen_server: LLMServer
) -> None:
    planner = verdicts(pytester, "planner")
    qwen = verdicts(pytester, "qwen")
    assert qwen == planner
    assert {outcome for outcome, _, _ in qwen.values()} == {"failed", "passed"}
    assert all(r.path == "/v1/chat/completions" for r in qwen_server.requests)


def test_the_base_url_option_points_qwen_at_the_server(
    pytester: pytest.Pytester, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planner = run_goblin(pytester, "--goblin-backend", "planner", TUNED)
    with LLMServer(PlannerModel()) as server:
        result = run_goblin(
            pytester,
            "--goblin-backend",
            "qwen",
            "--goblin-base-url",
            f"{server.url}/v1",
            "--goblin-model",
            "served-qwen",
            TUNED,
        )
    assert result.parseoutcomes() == planner.parseoutcomes()
    assert server.requests
    assert {r.body["model"] for r in server.requests} == {"served-qwen"}


def test_the_model_comes_from_the_ini_unless_the_environment_names_one(
    pytester: pytest.Pytester,
    example: Path,
    qwen_server: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ini = pytester.path / "pytest.ini"
    ini.write_text(ini.read_text() + "goblin_model = model-from-ini\n")
    run_goblin(pytester, "--goblin-backend", "qwen", TUNED)
    from_ini = {r.body["model"] for r in qwen_server.requests}
    monkeypatch.setenv("GOBLIN_QWEN_MODEL", "model-from-env")
    count = len(qwen_server.requests)
    run_goblin(pytester, "--goblin-backend", "qwen", TUNED)
    assert from_ini == {"model-from-ini"}
    assert {r.body["model"] for r in qwen_server.requests[count:]} == {"model-from-env"}


# --- the summary -----------------------------------------------------------------------------


def test_the_header_says_which_backend_drove_the_audits_and_why(
    pytester: pytest.Pytester, example: Path, claude_server: LLMServer
) -> None:
    result = run_goblin(pytester, TUNED)
    result.stdout.fnmatch_lines(
        [
            "*= goblin =*",
            "device: * | backend: claude | *",
            "agent: claude (model claude-sonnet-5-5); auto: ANTHROPIC_API_KEY is set",
        ]
    )


def test_the_summary_shows_turns_tokens_and_estimated_cost_per_audit(
    pytester: pytest.Pytester,
    example: Path,
    claude_server: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOBLIN_LLM_PRICE", "3,15")
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that the table keeps every column
    result = run_goblin(pytester, TUNED)
    result.stdout.fnmatch_lines(
        [
            "workload*verdict*agent*rules",
            "llama3-8b-lora-tuned*passed*turns, * in/* out tok, ~$*",
        ]
    )


def test_the_planner_reports_turns_and_no_tokens(
    pytester: pytest.Pytester, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that the table keeps every column
    result = run_goblin(pytester, TUNED, "--goblin-json", "out.json")
    result.stdout.fnmatch_lines(["llama3-8b-lora-tuned*passed*turns*"])
    (workload,) = json.loads((pytester.path / "out.json").read_text())["workloads"]
    assert workload["usage"]["turns"] > 0
    assert workload["usage"]["input_tokens"] == workload["usage"]["output_tokens"] == 0


# --- events ----------------------------------------------------------------------------------


def test_goblin_events_writes_every_audits_events_as_json_lines_with_the_node_id(
    pytester: pytest.Pytester, example: Path, claude_server: LLMServer
) -> None:
    result = run_goblin(pytester, "--goblin-events", "logs/events.jsonl", "workloads")
    outcomes = result.parseoutcomes()
    text = (pytester.path / "logs" / "events.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    nodeids = {r["nodeid"] for r in records}
    assert len(nodeids) == outcomes["passed"] + outcomes["failed"]
    assert all(n.startswith("workloads/") and "::" in n for n in nodeids)
    for nodeid in nodeids:
        mine = [r for r in records if r["nodeid"] == nodeid]
        assert [r["seq"] for r in mine] == list(range(len(mine)))
        assert mine[-1]["type"] == "final_report"
        assert mine[-1]["data"]["usage"]["turns"] > 0
        assert {"thought", "tool_call", "tool_result"} <= {r["type"] for r in mine}
    assert API_KEY not in text


def test_goblin_events_collects_the_events_of_xdist_workers(
    pytester: pytest.Pytester, example: Path
) -> None:
    result = run_goblin(
        pytester,
        "-p",
        "xdist",
        "-n",
        "2",
        "--goblin-events",
        "events.jsonl",
        TUNED,
        "workloads/llama3-8b-lora-tutorial.goblin.yaml",
    )
    result.assert_outcomes(passed=1, failed=1)
    records = [
        json.loads(line) for line in (pytester.path / "events.jsonl").read_text().splitlines()
    ]
    assert len({r["nodeid"] for r in records}) == 2
    assert [r["type"] for r in records].count("final_report") == 2


def test_verbose_streams_thoughts_and_tool_calls_under_the_item(
    pytester: pytest.Pytester, example: Path, claude_server: LLMServer
) -> None:
    result = run_goblin(pytester, "-v", TUNED)
    result.stdout.fnmatch_lines(
        [
            "workloads/llama3-8b-lora-tuned.goblin.yaml::llama3-8b-lora-tuned *",
            "    thought: Reading the workload file.",
            '    -> parse_config {"file_path": "workloads/llama3-8b-lora-tuned.goblin.yaml"}',
            "    <- parse_config: ok (config_id cfg-1)",
            "    -> compare_runs *",
            "    agent's estimate: Tokens/s*",
            "*::llama3-8b-lora-tuned PASSED*",
        ]
    )


def test_without_verbose_nothing_is_streamed(
    pytester: pytest.Pytester, example: Path, claude_server: LLMServer
) -> None:
    result = run_goblin(pytester, TUNED)
    result.stdout.no_fnmatch_line("*thought:*")


# --- failures --------------------------------------------------------------------------------


def test_an_auth_failure_is_an_item_error_naming_the_variable_without_the_key(
    pytester: pytest.Pytester, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusal = anthropic_error(401, "authentication_error", "invalid x-api-key")
    with LLMServer(lambda request: refusal) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        result = run_goblin(pytester, "--goblin-backend", "claude", TUNED)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*audit failed: claude: *HTTP 401*check ANTHROPIC_API_KEY*",
            "llama3-8b-lora-tuned*ERROR*",
        ]
    )
    assert API_KEY not in result.stdout.str()


@pytest.mark.parametrize(("backend", "sdk"), [("claude", "anthropic"), ("qwen", "huggingface_hub")])
def test_a_backend_whose_sdk_is_missing_is_a_usage_error_naming_the_extra(
    backend: str,
    sdk: str,
    pytester: pytest.Pytester,
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, sdk, None)
    result = run_goblin(pytester, "--goblin-backend", backend, "workloads")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*pip install 'pytest-goblin[[]{backend}[]]'*"])
