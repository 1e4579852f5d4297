"""``-v`` says what is running, not only what ran (issue 18, cases 17 and 18).

A benchmark's call is shown before it runs (measured, it can take minutes), and the
agent's report is labelled as its estimate: in measured mode the verdict's own paired
rounds follow and may move the number, and each of them is announced ("round k of at
most n") before it is measured. Before each request to an LLM backend a ``waiting``
line says whose reply the audit waits for and for how long at most.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pytest_goblin.agent.backends import AgentTurn
from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.confirm import SamplingPolicy, confirm
from pytest_goblin.audit.run import confirm_report
from pytest_goblin.events import live_line
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.schemas import AuditEvent, RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

BASELINE = WorkloadConfig(model="qwen2.5-0.5b", precision="bf16", dataloader_workers=0)
PATCHED = BASELINE.model_copy(update={"dataloader_workers": 4})


def test_a_benchmark_is_announced_before_it_runs(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[AuditEvent] = []
    announced: list[bool] = []
    device = SimulatedDevice("mi300x")
    real = SimulatedDevice.run

    def run(self: SimulatedDevice, config: WorkloadConfig, steps: int) -> RunMetrics:
        last = seen[-1] if seen else None
        announced.append(
            last is not None and last.type == "tool_call" and last.data["name"] == "benchmark"
        )
        return real(self, config, steps)

    monkeypatch.setattr(SimulatedDevice, "run", run)
    audit(mistuned, replace(context, runner=device), on_event=seen.append)
    benchmarks = [e for e in seen if e.type == "tool_call" and e.data["name"] == "benchmark"]
    assert len(benchmarks) == 2
    assert announced.count(True) == 2


def test_the_agents_report_is_labelled_as_its_estimate() -> None:
    line = live_line("final_report", {"report": {"summary_line": "Tokens/s 1.49x"}})
    assert line == "    agent's estimate: Tokens/s 1.49x"


class LoggingRunner:
    """Measured-looking runs, the patched config twice as fast; each run is logged."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.log.append("run")
        tps = 200.0 if config.dataloader_workers else 100.0
        return RunMetrics(
            steps=steps,
            tokens_per_sec=tps,
            step_time_s=1.0,
            tokens_per_step=4096,
            hbm_peak_gb=1.0,
            mfu_pct=10.0,
            projected=False,
            runner_kind="torch",
            device="cpu",
            samples=[tps * f for f in (0.99, 1.0, 1.01)],
            losses=[2.0, 1.9, 1.8],
        )


def test_each_measured_round_is_announced_before_its_two_runs() -> None:
    log: list[str] = []
    result = confirm(
        LoggingRunner(log),
        BASELINE,
        PATCHED,
        10,
        SamplingPolicy(threshold=0.10, min_rounds=4, max_rounds=6),
        on_round=lambda k, n: log.append(f"round {k} of {n}"),
    )
    assert result.rounds == 4  # clear after the minimum
    rounds = [f"round {k} of 6" for k in range(1, 5)]
    # the two untimed warm-up runs, then each round's announcement and its pair
    assert log == ["run", "run"] + [entry for r in rounds for entry in (r, "run", "run")]


def test_the_verdicts_rounds_reach_the_audits_events(
    measured_context: AuditContext, mistuned: Workload
) -> None:
    outcome = audit(mistuned, measured_context)
    assert outcome.report is not None
    seen: list[AuditEvent] = []
    confirm_report(
        outcome.report,
        measured_context.runner,
        mistuned,
        GoblinSettings(max_repeats=2),
        on_event=seen.append,
    )
    assert [(e.type, e.data["text"]) for e in seen] == [
        ("progress", f"verdict: measuring round {k} of at most 2 (a baseline and a patched run)")
        for k in (1, 2)
    ]
    assert live_line("progress", seen[0].data) == (
        "    verdict: measuring round 1 of at most 2 (a baseline and a patched run)"
    )


class SilentModel:
    """An LLM backend that ends the audit at its first turn."""

    name = "qwen"
    model = "Qwen/Qwen2.5-72B-Instruct"

    def add_user_message(self, text: str) -> None:
        pass

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        return AgentTurn(text_blocks=["nothing to say"])

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        pass


def test_a_request_to_an_llm_backend_says_it_is_waiting_and_for_how_long(
    mistuned: Workload, context: AuditContext
) -> None:
    seen: list[AuditEvent] = []
    timed = replace(context, backend="qwen", backend_timeout_s=30.0)
    audit(mistuned, timed, backend=SilentModel(), on_event=seen.append)
    assert seen[0].type == "waiting"
    assert live_line("waiting", seen[0].data) == (
        "    waiting for the qwen backend's reply (model Qwen/Qwen2.5-72B-Instruct; "
        "up to 30 s a try, --goblin-backend-timeout)"
    )
    assert seen[1].type == "thought"


def test_the_planner_waits_for_nothing(mistuned: Workload, context: AuditContext) -> None:
    seen: list[AuditEvent] = []
    audit(mistuned, context, on_event=seen.append)
    assert "waiting" not in {e.type for e in seen}
