"""``-v`` says what is running, not only what ran (issue 18, case 17).

A benchmark's call is shown before it runs (measured, it can take minutes), and the
agent's report is labelled as its estimate: in measured mode the verdict's own paired
rounds follow and may move the number.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.events import live_line
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.schemas import AuditEvent, RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload


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
