"""Specification of the audit loop: event order, trajectories, synthesised reports, faults."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import pytest

from pytest_goblin.agent import loop
from pytest_goblin.agent.backends import AgentTurn, ToolCall
from pytest_goblin.agent.backends.planner import PlannerBackend
from pytest_goblin.agent.loop import MAX_STEPS, audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.schemas import AuditEvent, Report
from pytest_goblin.workload.read import Workload


class ScriptedBackend:
    """A Backend that replays fixed turns, then ends; it records what the loop sends back."""

    name = "scripted"

    def __init__(self, turns: list[AgentTurn]) -> None:
        self._turns = list(turns)
        self.turns_taken = 0
        self.user_messages: list[str] = []
        self.tool_results: list[tuple[str, str, str, bool]] = []

    def add_user_message(self, text: str) -> None:
        self.user_messages.append(text)

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        self.turns_taken += 1
        if not self._turns:
            return AgentTurn(text_blocks=["Done."], stop_reason="end_turn")
        return self._turns.pop(0)

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        self.tool_results.append((tool_call_id, name, content, is_error))


class LoopingBackend(ScriptedBackend):
    """Calls parse_config again on every turn, forever."""

    def __init__(self, file_path: str) -> None:
        super().__init__([])
        self._file_path = file_path

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        self.turns_taken += 1
        call = ToolCall(
            id=f"t{self.turns_taken}", name="parse_config", input={"file_path": self._file_path}
        )
        return AgentTurn(tool_calls=[call], stop_reason="tool_use")


class ExplodingBackend(ScriptedBackend):
    """Raises on its second turn, after one good tool call."""

    def __init__(self, file_path: str) -> None:
        super().__init__([tool_turn("t1", "parse_config", file_path=file_path)])

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        if self.turns_taken >= 1:
            raise RuntimeError("provider went away")
        return await super().next_turn(tool_schemas)


def tool_turn(call_id: str, name: str, **args: Any) -> AgentTurn:
    return AgentTurn(
        text_blocks=[f"calling {name}"],
        tool_calls=[ToolCall(id=call_id, name=name, input=args)],
        stop_reason="tool_use",
    )


def tool_names(events: list[AuditEvent]) -> list[str]:
    return [e.data["name"] for e in events if e.type == "tool_call"]


def errors(events: list[AuditEvent]) -> list[AuditEvent]:
    return [e for e in events if e.type == "error"]


PATCH_RULES = ["bf16-mixed-precision", "flash-attention"]


def parse_and_patch(path: str) -> list[AgentTurn]:
    return [
        tool_turn("t1", "parse_config", file_path=path),
        tool_turn("t2", "propose_patch", config_id="cfg-1", rule_ids=PATCH_RULES),
    ]


# --- the planner through the loop -------------------------------------------------------


def test_events_start_with_a_thought_and_end_with_the_final_report(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome = audit(mistuned, context)
    assert outcome.events[0].type == "thought"
    assert outcome.events[-1].type == "final_report"
    assert [e.type for e in outcome.events].count("final_report") == 1
    assert not errors(outcome.events)


def test_every_tool_call_is_followed_by_its_tool_result_with_the_same_id(
    mistuned: Workload, context: AuditContext
) -> None:
    events = audit(mistuned, context).events
    calls = [i for i, e in enumerate(events) if e.type == "tool_call"]
    assert calls
    for i in calls:
        assert events[i + 1].type == "tool_result"
        assert events[i + 1].data["id"] == events[i].data["id"]
        assert events[i + 1].data["name"] == events[i].data["name"]
    assert len({events[i].data["id"] for i in calls}) == len(calls)


def test_planner_trajectory_on_a_mistuned_workload(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome = audit(mistuned, context)
    assert tool_names(outcome.events) == [
        "parse_config",
        "profile_run",
        "query_rocm_kb",
        "propose_patch",
        "query_rocm_kb",
        "benchmark",
        "benchmark",
        "compare_runs",
    ]
    assert all(e.data["ok"] for e in outcome.events if e.type == "tool_result")


def test_planner_benchmarks_the_baseline_by_config_id_and_the_patch_by_patch_id(
    mistuned: Workload, context: AuditContext
) -> None:
    events = audit(mistuned, context).events
    benchmarks = [
        e.data["input"] for e in events if e.type == "tool_call" and e.data["name"] == "benchmark"
    ]
    assert benchmarks[0]["config_id"] == "cfg-1"
    assert benchmarks[1]["patch_id"] == "patch-1"


def test_mistuned_workload_reports_a_patch_that_wins(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome = audit(mistuned, context)
    assert outcome.error is None and outcome.report is not None
    assert outcome.report.patch is not None
    fields = {change.field for change in outcome.report.patch.changes}
    assert {"precision", "attention_impl"} <= fields
    assert outcome.report.speedup > 1.1
    assert outcome.report.projected is True


def test_planner_trajectory_on_a_tuned_workload(tuned: Workload, context: AuditContext) -> None:
    outcome = audit(tuned, context)
    assert tool_names(outcome.events) == [
        "parse_config",
        "profile_run",
        "query_rocm_kb",
        "benchmark",
        "compare_runs",
    ]
    assert outcome.report is not None
    assert outcome.report.patch is None
    assert outcome.report.speedup == 1.0


class TextOnlyPlanner(PlannerBackend):
    """The planner as a backend without ``add_tool_data``: it reads every result as the
    JSON text an LLM backend is sent."""

    def __getattribute__(self, name: str) -> Any:
        if name == "add_tool_data":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_the_planner_reading_results_as_data_audits_as_it_does_reading_their_json_text(
    mistuned: Workload, context: AuditContext
) -> None:
    as_data = audit(mistuned, context)
    as_text = audit(mistuned, context, TextOnlyPlanner())
    assert not hasattr(TextOnlyPlanner(), "add_tool_data")
    assert [(e.type, e.data) for e in as_text.events] == [(e.type, e.data) for e in as_data.events]
    assert as_text.report is not None and as_data.report is not None
    assert as_text.report.model_dump_json() == as_data.report.model_dump_json()


def test_the_outcomes_report_is_the_one_the_final_event_carries_as_json(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome = audit(mistuned, context)
    final = outcome.events[-1]
    assert final.type == "final_report" and outcome.report is not None
    assert outcome.report.model_dump(mode="json") == final.data["report"]
    assert Report.model_validate(final.data["report"]) == outcome.report


def test_audit_sends_the_workload_display_path_to_the_backend(
    mistuned: Workload, context: AuditContext
) -> None:
    backend = ScriptedBackend([])
    audit(mistuned, context, backend)
    assert backend.user_messages == ["Audit this fine-tuning workload: workloads/w.goblin.yaml"]


def test_tool_results_go_back_to_the_backend_with_their_call_ids(
    mistuned: Workload, context: AuditContext
) -> None:
    backend = ScriptedBackend(
        [
            tool_turn("t1", "parse_config", file_path="workloads/w.goblin.yaml"),
            tool_turn("t2", "benchmark", config_id="cfg-404"),
        ]
    )
    audit(mistuned, context, backend)
    assert [(r[0], r[1], r[3]) for r in backend.tool_results] == [
        ("t1", "parse_config", False),
        ("t2", "benchmark", True),
    ]
    assert "cfg-404" in backend.tool_results[1][2]


def test_tool_call_events_carry_the_arguments_as_the_backend_sent_them(
    mistuned: Workload, context: AuditContext
) -> None:
    backend = ScriptedBackend(
        [
            tool_turn("t1", "parse_config", file_path=mistuned.source.display_path),
            tool_turn("t2", "benchmark", config={"config_id": "cfg-1", "steps": 20}),
        ]
    )
    events = audit(mistuned, context, backend).events
    (sent,) = [
        e.data["input"] for e in events if e.type == "tool_call" and e.data["name"] == "benchmark"
    ]
    assert sent == {"config": {"config_id": "cfg-1", "steps": 20}}


# --- reports synthesised when compare_runs never came -----------------------------------


def test_two_benchmarks_and_a_patch_without_compare_give_a_synthesised_report_of_those_runs(
    mistuned: Workload, context: AuditContext
) -> None:
    path = mistuned.source.display_path
    backend = ScriptedBackend(
        [
            *parse_and_patch(path),
            tool_turn("t3", "benchmark", config_id="cfg-1", steps=20),
            tool_turn("t4", "benchmark", patch_id="patch-1", steps=20),
        ]
    )
    outcome = audit(mistuned, context, backend)
    assert "compare_runs" not in tool_names(outcome.events)
    assert outcome.events[-1].type == "final_report"
    report = outcome.report
    assert report is not None
    assert report.before.steps == 20 and report.after.steps == 20
    assert report.patch is not None and report.patch.rule_ids == PATCH_RULES
    assert report.speedup > 1.0
    assert any("synthesised" in note and "compare_runs" in note for note in report.notes)


def test_a_patch_and_only_the_baseline_benchmark_give_a_projected_report(
    mistuned: Workload, measured_context: AuditContext
) -> None:
    path = mistuned.source.display_path
    backend = ScriptedBackend(
        [
            *parse_and_patch(path),
            tool_turn("t3", "benchmark", config_id="cfg-1"),
        ]
    )
    outcome = audit(mistuned, measured_context, backend)
    report = outcome.report
    assert report is not None, outcome.error
    assert report.projected is True
    assert report.before.projected and report.after.projected
    assert any("both sides projected" in note for note in report.notes)


def test_only_parsing_ends_in_an_error_event(mistuned: Workload, context: AuditContext) -> None:
    backend = ScriptedBackend(
        [
            tool_turn("t1", "parse_config", file_path=mistuned.source.display_path),
        ]
    )
    outcome = audit(mistuned, context, backend)
    assert outcome.report is None
    assert outcome.events[-1].type == "error"
    assert len(errors(outcome.events)) == 1
    assert "without a report" in outcome.error


def test_the_error_event_carries_the_last_tool_failure(
    mistuned: Workload, context: AuditContext
) -> None:
    backend = ScriptedBackend([tool_turn("t1", "parse_config", file_path="/etc/passwd")])
    outcome = audit(mistuned, context, backend)
    assert outcome.events[-1].type == "error"
    assert "may only read its own workload file" in outcome.error


def test_max_steps_caps_the_turns_of_a_backend_that_never_stops(
    mistuned: Workload, context: AuditContext
) -> None:
    backend = LoopingBackend(mistuned.source.display_path)
    outcome = audit(mistuned, context, backend)
    assert backend.turns_taken == MAX_STEPS
    assert tool_names(outcome.events) == ["parse_config"] * MAX_STEPS
    assert outcome.events[-1].type == "error"


def test_an_exception_in_the_backend_becomes_a_single_error_event(
    mistuned: Workload, context: AuditContext
) -> None:
    outcome = audit(mistuned, context, ExplodingBackend(mistuned.source.display_path))
    # a backend other than the planner is waited for before each of its two turns
    assert [e.type for e in outcome.events] == [
        "waiting",
        "thought",
        "tool_call",
        "tool_result",
        "waiting",
        "error",
    ]
    assert outcome.error == "RuntimeError: provider went away"


def test_an_unavailable_backend_becomes_an_error_event_naming_the_planner(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    outcome = audit(mistuned, replace(context, backend="claude"))
    assert [e.type for e in outcome.events] == ["error"]
    assert "claude" in outcome.error
    assert "planner" in outcome.error


def test_make_backend_failure_of_any_kind_is_reported_not_raised(
    mistuned: Workload, context: AuditContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(requested: str, system_prompt: str, **options: Any) -> Any:
        raise ImportError("no module named 'anthropic'; use --goblin-backend planner")

    monkeypatch.setattr(loop, "make_backend", broken)
    outcome = audit(mistuned, context)
    assert [e.type for e in outcome.events] == ["error"]
    assert "planner" in outcome.error
