"""Turning an audit outcome into the WorkloadResult every report is made from."""

from __future__ import annotations

from pytest_goblin.schemas import (
    AuditUsage,
    DeviceInfo,
    PatchSummary,
    Report,
    RuleRef,
    WorkloadResult,
)
from pytest_goblin.verdict.rule import decide
from pytest_goblin.workload.read import Workload


def from_report(
    nodeid: str,
    workload: Workload,
    report: Report,
    threshold: float,
    usage: AuditUsage | None = None,
    strict: bool = False,
) -> WorkloadResult:
    verdict = decide(report, threshold, strict)
    patch = report.patch if report.patch and report.patch.changes else None
    return WorkloadResult(
        nodeid=nodeid,
        path=workload.source.display_path,
        name=workload.name,
        format=workload.source.format,
        outcome=verdict.outcome,
        reason=verdict.reason,
        threshold=threshold,
        device=report.device,
        config=workload.config.model_dump(mode="json"),
        baseline=report.before,
        patched=report.after,
        speedup=report.speedup,
        speedup_ci=report.speedup_ci,
        projected=report.projected,
        rules=[RuleRef(id=r.rule_id, citation=r.citation) for r in patch.rationale]
        if patch
        else [],
        patch=PatchSummary(changes=patch.changes, diff=patch.diff) if patch else None,
        skipped_rules=report.patch.skipped if report.patch else [],
        notes=report.notes,
        advisories=report.advisories,
        waived=report.waived,
        usage=usage,
        inconclusive=verdict.inconclusive,
        n_repeats=report.n_repeats,
        cv_baseline=report.cv_baseline,
        cv_patched=report.cv_patched,
        verdict_reason=verdict.reason,
        measurement=report.measurement,
        fallback=report.fallback,
        attribution=report.attribution,
        candidates=report.candidates,
    )


def from_error(
    nodeid: str,
    path: str,
    name: str,
    message: str,
    threshold: float,
    workload: Workload | None = None,
    device: DeviceInfo | None = None,
    usage: AuditUsage | None = None,
    detected_format: str | None = None,
) -> WorkloadResult:
    """An errored item's result. ``detected_format``: the format of a file that was
    recognised but could not be read (a ``workload`` says its own)."""
    return WorkloadResult(
        nodeid=nodeid,
        path=path,
        name=name,
        format=workload.source.format if workload else detected_format,
        outcome="error",
        reason="the audit could not be completed",
        threshold=threshold,
        device=device,
        config=workload.config.model_dump(mode="json") if workload else None,
        error=message,
        usage=usage,
    )


def skipped(
    nodeid: str,
    workload: Workload,
    reason: str,
    threshold: float,
    device: DeviceInfo | None = None,
) -> WorkloadResult:
    return WorkloadResult(
        nodeid=nodeid,
        path=workload.source.display_path,
        name=workload.name,
        format=workload.source.format,
        outcome="skipped",
        reason=reason,
        threshold=threshold,
        device=device,
        config=workload.config.model_dump(mode="json"),
    )
