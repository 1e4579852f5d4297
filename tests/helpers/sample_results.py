"""WorkloadResults for report tests, made by really auditing the conftest workloads."""

from __future__ import annotations

from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.report.summary import RunInfo
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.verdict import result as results
from pytest_goblin.workload.read import Workload

THRESHOLD = 0.10


def audited(workload: Workload, context: AuditContext) -> WorkloadResult:
    """The result the plugin would build for this workload on the context's device."""
    outcome = audit(workload, context)
    assert outcome.report is not None
    nodeid = f"{workload.source.display_path}::{workload.name}"
    return results.from_report(nodeid, workload, outcome.report, THRESHOLD)


def errored(name: str = "bad") -> WorkloadResult:
    path = f"workloads/{name}.goblin.yaml"
    return results.from_error(f"{path}::{name}", path, name, f"{path}: file is empty", THRESHOLD)


def run_info(result: WorkloadResult, compared_with: str | None = None) -> RunInfo:
    return RunInfo(
        device=result.device,
        backend="planner",
        threshold=THRESHOLD,
        projected=bool(result.projected),
        compared_with=compared_with,
    )
