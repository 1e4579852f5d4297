"""Auditing one workload with the session's device, rules and settings.

Shared by the workload items and the ``goblin_audit`` fixture, so that a
Python test sees exactly what the gate sees.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pytest_goblin.agent.loop import AuditOutcome, audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.errors import UnsupportedConfig, WorkloadError
from pytest_goblin.schemas import AuditEvent
from pytest_goblin.workload import Workload

if TYPE_CHECKING:
    from pytest_goblin.agent.backends import BackendFactory
    from pytest_goblin.cache import AuditCache
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.runner.session import DeviceSession
    from pytest_goblin.settings import GoblinSettings


def unknown_rule_ids(kb: KnowledgeBase, ids: Iterable[str]) -> list[str]:
    """Each id the knowledge base does not have, with a suggestion where one is close."""
    known = [rule.id for rule in kb.rules]
    problems = []
    for rule_id in ids:
        if rule_id not in known:
            close = difflib.get_close_matches(rule_id, known, n=1)
            problems.append(f"{rule_id!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return problems


def effective_threshold(workload: Workload, settings: GoblinSettings) -> float:
    """The workload's own ``goblin.threshold`` wins over the session's, like a marker."""
    return workload.settings.threshold or settings.threshold


def audit_workload(
    workload: Workload,
    session: DeviceSession,
    settings: GoblinSettings,
    kb: KnowledgeBase,
    extra_ignore: Iterable[str] = (),
    on_event: Callable[[AuditEvent], None] | None = None,
    backend_factory: BackendFactory | None = None,
    cache: AuditCache | None = None,
) -> AuditOutcome:
    """Run the audit loop for one workload on its device; ``on_event`` sees events live.

    ``backend_factory`` (the plugins' make-backend hook) is asked for the
    backend before the built-in ones.

    Raises UnsupportedConfig, before anything runs, when the device cannot run
    the workload as written (the item is skipped with the reason). With a
    ``cache``, a projected audit whose inputs did not change since an earlier
    run is not run again: its Report is reused (``AuditOutcome.cached``).
    """
    path = workload.source.display_path
    bad = unknown_rule_ids(kb, workload.settings.ignore)
    if bad:
        raise WorkloadError(path, f"unknown rule id {', '.join(bad)}", field="goblin.ignore")
    try:
        runner = session.runner_for(workload.settings.device, workload.settings)
    except ValueError as exc:
        raise WorkloadError(path, str(exc), field="goblin.device") from None
    reason = runner.unsupported(workload.config)
    if reason:
        raise UnsupportedConfig(reason, runner.info)
    context = AuditContext(
        runner=runner,
        projector=runner.projector,
        kb=kb,
        backend=settings.backend,
        ignore=settings.ignore | frozenset(workload.settings.ignore) | frozenset(extra_ignore),
        model=settings.model,
        base_url=settings.base_url,
        backend_factory=backend_factory,
    )
    if cache is None or not settings.fake:
        return audit(workload, context, on_event=on_event)
    key = _cache_key(cache, workload, context)
    report = cache.load(key)
    if report is not None:
        return AuditOutcome(report, None, cached=True)
    outcome = audit(workload, context, on_event=on_event)
    if outcome.report is not None:
        cache.save(key, outcome.report)
    return outcome


def _cache_key(cache: AuditCache, workload: Workload, context: AuditContext) -> str:
    """The audit cache's key: everything a projected audit's outcome depends on."""
    from pytest_goblin.agent.backends import resolve_model, resolve_name

    backend = resolve_name(context.backend, context.base_url)
    return cache.key(workload, context.kb, context.runner.info, backend,
                     resolve_model(backend, context.model), context.base_url, context.ignore)
