"""A tool's refusal names each bad field, so a model can fix its call (issue 18, case 19).

``compare_runs`` given a benchmark result passed back whole (the tool's answer, not its
metrics) used to answer "1 invalid value(s): Field required", naming no field.
"""

from __future__ import annotations

from pytest_goblin.agent import tools
from pytest_goblin.agent.state import AuditContext, AuditState
from pytest_goblin.workload.read import Workload


def test_a_whole_benchmark_result_is_refused_naming_the_missing_fields(
    mistuned: Workload, context: AuditContext
) -> None:
    state = AuditState(context=context, workload=mistuned)
    parsed = tools.call(state, "parse_config", {"file_path": mistuned.source.display_path})
    assert parsed.ok
    config_id = parsed.result["config_id"]
    benchmark = tools.call(state, "benchmark", {"config_id": config_id})
    assert benchmark.ok
    whole = {"metrics_id": benchmark.result["metrics_id"], "note": "the whole answer"}
    refused = tools.call(
        state,
        "compare_runs",
        {"workload_name": "w", "before": whole, "after": benchmark.result["metrics_id"]},
    )
    assert not refused.ok and refused.error is not None
    assert "invalid value(s) in RunMetrics" in refused.error
    assert "tokens_per_sec: Field required" in refused.error
