"""Secrets in a workload never leave it: not in a report, a log, the terminal or an LLM request.

One run with every output switched on (JSON, Markdown, HTML, JUnit, saved history,
the event log, ``-v`` live lines, the audit cache) and the claude backend talking to
a loopback server; then every file the run wrote and every request body the server
received is searched for the secrets the workload holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.llm_servers import LLM_VARIABLES, LLMServer, PlannerModel

TOKEN = "hf_GoblinLeakCanary7f3a9c2e51d84b06"
"""Token-shaped (a Hugging Face token), so recognisable wherever it appears."""
WANDB_KEY = "wandb-canary-4f1e9a7c2b"
"""Not token-shaped: only its secret-looking name gives it away."""
CANARIES = (TOKEN, WANDB_KEY, "GoblinLeakCanary", "wandb-canary")

LEAKY_WORKLOAD = f"""\
name: leaky
model: llama-3-8b
finetune: lora
lora_rank: 16
batch_size: 2
seq_len: 2048
# pushed to the hub with {TOKEN}; WANDB_API_KEY={WANDB_KEY}
precision: fp32
attention_impl: eager
# HF_TOKEN: {TOKEN}
optimizer: adamw_torch
dataloader_workers: 0
env_vars:
  HF_TOKEN: {TOKEN}
  WANDB_API_KEY: {WANDB_KEY}
  PYTORCH_TUNABLEOP_ENABLED: "1"
extras:
  push_note: "uploaded with {TOKEN}"
  wandb_api_key: {WANDB_KEY}
"""


@pytest.fixture
def claude_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with LLMServer(PlannerModel()) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-anthropic-key-4d2e91")
        yield server


@pytest.fixture
def leaky_run(pytester: pytest.Pytester, claude_server: LLMServer) -> pytest.RunResult:
    workload = pytester.path / "workloads" / "leaky.goblin.yaml"
    workload.parent.mkdir()
    workload.write_text(LEAKY_WORKLOAD)
    return pytester.runpytest(
        "--goblin",
        "--goblin-fake",
        "--goblin-backend",
        "claude",
        "-v",
        "-rA",
        "--goblin-json",
        "out/report.json",
        "--goblin-md",
        "out/summary.md",
        "--goblin-html",
        "out/report.html",
        "--junitxml",
        "out/junit.xml",
        "--goblin-events",
        "out/events.jsonl",
        "--goblin-save=leak",
        "workloads",
    )


def written_files(root: Path) -> dict[str, str]:
    """Every file under ``root`` except the workload itself, as text."""
    return {
        str(path.relative_to(root)): path.read_text(encoding="utf-8", errors="replace")
        for path in root.rglob("*")
        if path.is_file() and path.name != "leaky.goblin.yaml"
    }


def leaks(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


def test_the_run_audits_the_workload_and_writes_every_output(
    pytester: pytest.Pytester, leaky_run: pytest.RunResult, claude_server: LLMServer
) -> None:
    leaky_run.assert_outcomes(failed=1)
    files = written_files(pytester.path)
    for output in (
        "out/report.json",
        "out/summary.md",
        "out/report.html",
        "out/junit.xml",
        "out/events.jsonl",
    ):
        assert output in files
    assert any(name.startswith(".goblin/runs/") for name in files)
    assert any(name.startswith(".pytest_cache/v/goblin/audit/") for name in files)
    assert claude_server.requests
    assert "precision: fp32 -> bf16" in leaky_run.stdout.str()


def test_no_secret_reaches_a_report_log_history_or_cache_file(
    pytester: pytest.Pytester, leaky_run: pytest.RunResult
) -> None:
    found = {name: leaks(text) for name, text in written_files(pytester.path).items()}
    assert {name: canaries for name, canaries in found.items() if canaries} == {}


def test_no_secret_reaches_the_terminal(leaky_run: pytest.RunResult) -> None:
    assert leaks(leaky_run.stdout.str() + leaky_run.stderr.str()) == []


def test_no_secret_reaches_an_llm_request(
    leaky_run: pytest.RunResult, claude_server: LLMServer
) -> None:
    assert [leaks(request.text) for request in claude_server.requests if leaks(request.text)] == []


def test_the_diff_keeps_the_commented_lines_with_their_secrets_hidden(
    pytester: pytest.Pytester, leaky_run: pytest.RunResult
) -> None:
    diff = (pytester.path / "out" / "summary.md").read_text()
    assert " # pushed to the hub with <redacted:hf_token>; WANDB_API_KEY=<redacted>" in diff
    assert " # HF_TOKEN: <redacted>" in diff
