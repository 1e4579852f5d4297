"""Auditing one workload with the session's device, rules and settings.

Shared by the workload items and the ``goblin_audit`` fixture, so that a
Python test sees exactly what the gate sees.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from pytest_goblin.agent.loop import AuditOutcome, audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.timebudget import TimeBudget
from pytest_goblin.errors import UnsupportedConfig, WorkloadError
from pytest_goblin.schemas import AuditEvent, NoiseFloor, Patch, Report, SearchCandidate
from pytest_goblin.workload.read import Workload

if TYPE_CHECKING:
    from pytest_goblin.agent.backends import BackendFactory
    from pytest_goblin.agent.backends.breaker import BackendBreaker
    from pytest_goblin.audit.cache import AuditCache
    from pytest_goblin.audit.calibrate import Calibrations
    from pytest_goblin.audit.confirm import Confirmation, SamplingPolicy
    from pytest_goblin.audit.fallback import Candidate
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.runner.device_session import DeviceRunner, DeviceSession
    from pytest_goblin.runner.protocol import Runner


MEASURED_CANDIDATES = 3
"""How many of the search's best candidates a measured audit benchmarks when the user
set --goblin-time-budget (a promise of time for measuring); without it, the best one.
The analytic model ranks candidates well between kinds of change, less well between
close ones (micro-batch 4 or 8), which only a measurement settles."""


class AuditSettings(Protocol):
    """What an audit reads of the session's settings: the plugin's resolved
    ``--goblin-*`` options satisfy it, and so does any object an embedding tool builds,
    so the audit does not depend on the plugin layer above it."""

    @property
    def threshold(self) -> float: ...
    @property
    def max_repeats(self) -> int: ...
    @property
    def time_budget_s(self) -> float | None: ...
    @property
    def strict(self) -> bool: ...
    @property
    def loss_tolerance(self) -> float: ...
    @property
    def attribution(self) -> bool: ...
    @property
    def fake(self) -> bool: ...
    @property
    def steps(self) -> int | None: ...
    @property
    def ignore(self) -> frozenset[str]: ...
    @property
    def backend(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def backend_timeout_s(self) -> float: ...


def unknown_rule_ids(kb: KnowledgeBase, ids: Iterable[str]) -> list[str]:
    """Each id the knowledge base does not have, with a suggestion where one is close."""
    known = [rule.id for rule in kb.rules]
    problems = []
    for rule_id in ids:
        if rule_id not in known:
            close = difflib.get_close_matches(rule_id, known, n=1)
            problems.append(f"{rule_id!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return problems


def effective_threshold(workload: Workload, settings: AuditSettings) -> float:
    """The workload's own ``goblin.threshold`` wins over the session's, like a marker."""
    return workload.settings.threshold or settings.threshold


def audit_workload(
    workload: Workload,
    session: DeviceSession,
    settings: AuditSettings,
    kb: KnowledgeBase,
    extra_ignore: Iterable[str] = (),
    on_event: Callable[[AuditEvent], None] | None = None,
    backend_factory: BackendFactory | None = None,
    cache: AuditCache | None = None,
    calibrations: Calibrations | None = None,
    clock: Callable[[], float] = time.monotonic,
    breaker: BackendBreaker | None = None,
) -> AuditOutcome:
    """Run the audit loop for one workload on its device; ``on_event`` sees events live.

    ``backend_factory`` (the plugins' make-backend hook) is asked for the
    backend before the built-in ones. With ``calibrations``
    (``--goblin-calibrate``), the device's noise floor is measured on first use
    and a threshold below it raises ThresholdBelowNoise before the audit runs.

    Raises UnsupportedConfig, before anything runs, when the device cannot run
    the workload as written (the item is skipped with the reason). With a
    ``cache``, a projected audit whose inputs did not change since an earlier
    run is not run again: its Report is reused (``AuditOutcome.cached``).
    The verdict's sampling and ``--goblin-attribution``'s measuring share one
    ``--goblin-time-budget`` on ``clock`` (``pytest_goblin.audit.timebudget``).
    ``breaker``: the session's count of workloads its LLM backend failed in a row.
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
    floor = None
    if calibrations is not None:
        floor = _noise_floor(calibrations, runner, workload, settings)
    budget = TimeBudget(settings.time_budget_s, clock)
    outcome = _audit(
        workload,
        runner,
        settings,
        kb,
        extra_ignore,
        on_event,
        backend_factory,
        cache,
        budget,
        breaker,
    )
    if settings.attribution and outcome.report is not None:
        from pytest_goblin.audit.attribution import with_attribution

        outcome.report = with_attribution(
            outcome.report, workload.config, runner, kb, settings.loss_tolerance, budget
        )
    outcome.noise_floor = floor
    return outcome


def _noise_floor(
    calibrations: Calibrations, runner: DeviceRunner, workload: Workload, settings: AuditSettings
) -> NoiseFloor:
    """The device's noise floor (measured with this workload's baseline on first use);
    ThresholdBelowNoise when the workload's threshold is below it.

    The built-in runners name their physical device (``device_id``), under which xdist
    workers share one floor; a plugin's runner without one is calibrated per process,
    by its model and the workload's ``goblin.device``."""
    from pytest_goblin.agent.backends.planner import BENCHMARK_STEPS
    from pytest_goblin.audit.calibrate import calibrate, refusal
    from pytest_goblin.errors import AuditError, RunFailed, ThresholdBelowNoise

    info = runner.info
    device_id: str | None = getattr(runner, "device_id", None)
    key = device_id or f"{info.kind}:{info.name}:{workload.settings.device or ''}"
    try:
        floor = calibrations.floor(
            key,
            lambda: calibrate(
                runner,
                workload.config,
                settings.steps or BENCHMARK_STEPS,
                workload.name,
                info.name,
                device_id=device_id,
            ),
            physical=device_id is not None,
        )
    except RunFailed as exc:
        raise AuditError(
            f"{workload.source.display_path}: --goblin-calibrate could not run "
            f"the baseline against itself: {exc}"
        ) from None
    source = (
        "the workload's goblin.threshold"
        if workload.settings.threshold
        else "--goblin-threshold / goblin_threshold"
    )
    problem = refusal(floor, effective_threshold(workload, settings), source)
    if problem:
        raise ThresholdBelowNoise(f"{workload.source.display_path}: {problem}", floor)
    return floor


def _audit(
    workload: Workload,
    runner: DeviceRunner,
    settings: AuditSettings,
    kb: KnowledgeBase,
    extra_ignore: Iterable[str],
    on_event: Callable[[AuditEvent], None] | None,
    backend_factory: BackendFactory | None,
    cache: AuditCache | None,
    budget: TimeBudget,
    breaker: BackendBreaker | None = None,
) -> AuditOutcome:
    """The audit itself, then the paired confirmation of a measured report, which starts
    the workload's time ``budget``."""
    context = AuditContext(
        runner=runner,
        projector=runner.projector,
        kb=kb,
        backend=settings.backend,
        ignore=settings.ignore | frozenset(workload.settings.ignore) | frozenset(extra_ignore),
        model=settings.model,
        base_url=settings.base_url,
        backend_factory=backend_factory,
        backend_timeout_s=settings.backend_timeout_s,
        breaker=breaker,
        measure_candidates=MEASURED_CANDIDATES
        if not settings.fake and settings.time_budget_s is not None
        else 1,
    )
    if not settings.fake:
        outcome = audit(workload, context, on_event=on_event)
        if outcome.report is not None:
            outcome.report = confirm_report(
                outcome.report, runner, workload, settings, kb, budget, on_event
            )
        return outcome
    if cache is None:
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
    return cache.key(
        workload,
        context.kb,
        context.runner.info,
        backend,
        resolve_model(backend, context.model),
        context.base_url,
        context.ignore,
    )


def confirm_report(
    report: Report,
    runner: Runner,
    workload: Workload,
    settings: AuditSettings,
    kb: KnowledgeBase | None = None,
    budget: TimeBudget | None = None,
    on_event: Callable[[AuditEvent], None] | None = None,
) -> Report:
    """Settle a measured report's speedup by paired, alternating rounds.

    The agent's two benchmarks are the first round; more rounds run until the
    interval clears the bar either way, or ``--goblin-max-repeats`` / the time
    budget runs out. A patched arm that fails to train (non-finite loss, out of
    memory) is rejected; with the ``kb`` its rules came from, the patch minus
    one rule at a time is tried (``pytest_goblin.audit.fallback``) and the first
    that trains correctly is confirmed instead. Without one, the report stands
    and the verdict passes with the reason. The rounds, fallbacks included, spend the
    workload's ``budget`` (``--goblin-time-budget``; started here if it has not been).
    ``on_event`` is told, as a ``progress`` event, which round is being measured.
    """
    if report.projected or report.patch is None or not report.patch.changes:
        return report
    from pytest_goblin.audit.confirm import SamplingPolicy, confirm
    from pytest_goblin.errors import RunFailed

    policy = SamplingPolicy(
        threshold=effective_threshold(workload, settings),
        max_rounds=settings.max_repeats,
        time_budget_s=settings.time_budget_s,
        loss_tolerance=settings.loss_tolerance,
        strict=settings.strict,
    )
    steps = report.before.steps
    if budget is None:
        budget = TimeBudget(settings.time_budget_s)
    budget.start()
    result: Confirmation | None = None
    try:
        result = confirm(
            runner,
            workload.config,
            report.patch.new_config,
            steps,
            policy,
            clock=budget.clock,
            first_round=(report.before, report.after),
            started=budget.started,
            on_round=_round_announcer(on_event, "verdict"),
        )
    except RunFailed as exc:  # OutOfMemory included
        problem: str | None = f"a repeat of the patched run failed: {exc}"
    else:
        problem = result.rejected
    patch, fallback = report.patch, None
    if problem is not None and kb is not None:
        found = _fall_back(report, runner, workload, policy, kb, problem, budget, on_event)
        if found is not None:
            patch, result = found[0].patch, found[1]
            fallback = (
                f"the whole patch was rejected ({problem}); without "
                f"{found[0].dropped} it trains correctly, and that is what was measured"
            )
    if result is None or (result.rejected and fallback is None):
        return report.model_copy(update={"rejected": problem})
    return _with_estimate(report, patch, result, fallback)


def _fall_back(
    report: Report,
    runner: Runner,
    workload: Workload,
    policy: SamplingPolicy,
    kb: KnowledgeBase,
    problem: str,
    budget: TimeBudget,
    on_event: Callable[[AuditEvent], None] | None = None,
) -> tuple[Candidate, Confirmation] | None:
    """The first one-rule-smaller patch whose screening run passes the loss check and
    whose paired confirmation is not rejected either, with that confirmation."""
    from pytest_goblin.audit.confirm import confirm, loss_problem
    from pytest_goblin.audit.fallback import candidates
    from pytest_goblin.errors import RunFailed, UnsupportedConfig

    assert report.patch is not None
    steps = report.before.steps
    for candidate in candidates(workload, report.patch, problem, kb):
        config = candidate.patch.new_config
        try:
            screen = runner.run(config, steps)
            if loss_problem(report.before, screen, policy.loss_tolerance):
                continue
            result = confirm(
                runner,
                workload.config,
                config,
                steps,
                policy,
                clock=budget.clock,
                started=budget.started,
                on_round=_round_announcer(on_event, f"verdict without {candidate.dropped}"),
            )
        except (RunFailed, UnsupportedConfig):  # OutOfMemory included
            continue
        if result.rejected is None:
            return candidate, result
    return None


def _round_announcer(
    on_event: Callable[[AuditEvent], None] | None, what: str
) -> Callable[[int, int], None] | None:
    """A ``confirm`` round callback that tells ``on_event`` which round runs: a measured
    verdict's rounds take a while after the agent has finished, and ``-v`` says so."""
    if on_event is None:
        return None
    emit = on_event

    def announce(k: int, n: int) -> None:
        text = f"{what}: measuring round {k} of at most {n} (a baseline and a patched run)"
        emit(AuditEvent(type="progress", data={"text": text}))

    return announce


def _with_estimate(
    report: Report, patch: Patch, result: Confirmation, fallback: str | None
) -> Report:
    """The report with the paired estimate's numbers in place of the agent's first pair;
    the chosen search candidate carries the confirmed speedup (a fallback's smaller
    patch becomes the chosen one)."""
    estimate = result.estimate
    assert estimate is not None
    confirmed = SearchCandidate(
        changes=patch.changes,
        speedup=round(estimate.speedup, 4),
        projected=False,
        peak_memory_gb=round(result.patched_runs[-1].hbm_peak_gb, 2)
        if result.patched_runs
        else None,
        chosen=True,
    )
    candidates = [
        c.model_copy(update={"chosen": False})
        for c in report.candidates
        if not (c.chosen and fallback is None)
    ]
    candidates = sorted([*candidates, confirmed], key=lambda c: -(c.speedup or 0.0))
    before = report.before.model_copy(
        update={
            "samples": result.baseline_samples,
            "tokens_per_sec": statistics.median(result.baseline_samples),
        }
    )
    after = report.after.model_copy(
        update={
            "samples": result.patched_samples,
            "tokens_per_sec": statistics.median(result.patched_samples),
            "losses": result.patched_runs[-1].losses,
        }
    )
    return report.model_copy(
        update={
            "before": before,
            "after": after,
            "patch": patch,
            "speedup": round(estimate.speedup, 4),
            "speedup_ci": (round(estimate.ci[0], 4), round(estimate.ci[1], 4)),
            "n_repeats": result.rounds,
            "cv_baseline": round(estimate.cv_baseline, 4),
            "cv_patched": round(estimate.cv_patched, 4),
            "rejected": result.rejected,
            "measurement": result.reason,
            "fallback": fallback,
            "notes": [*report.notes, fallback] if fallback else report.notes,
            "candidates": candidates if report.candidates else [],
        }
    )
