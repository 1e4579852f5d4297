"""The provider-agnostic agent loop for one audit.

``run_audit`` is an async generator of AuditEvents in the order a reader
should see them: ``thought``, ``tool_call``, ``tool_result``, and finally
``final_report`` or ``error``. The loop talks to a Backend and to the tool
registry; it knows no provider.

The final report is the last successful ``compare_runs``. When the driver
never got there, a report is synthesised from what the audit produced (tier 1:
a baseline and a patched benchmark; tier 2: a baseline benchmark and a patch,
with both sides projected by the analytic model and labelled so — a measured
number is never compared with a projected one). Otherwise the audit ends with
an ``error`` event.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from pytest_goblin.agent import tools
from pytest_goblin.agent.backends import (
    Backend,
    BackendError,
    TokenUsage,
    ToolCall,
    make_backend,
)
from pytest_goblin.agent.prompts import SYSTEM_PROMPT
from pytest_goblin.agent.state import AuditContext, AuditState
from pytest_goblin.errors import GoblinError
from pytest_goblin.redact import environment_secrets, redact_known, redacted_json
from pytest_goblin.schemas import AuditEvent, AuditUsage, NoiseFloor, Report, ToolResult
from pytest_goblin.workload.read import Workload

MAX_STEPS = 18
"""Cap on backend turns. The planner's trajectory takes ten: parse, profile, two
query/patch rounds, one turn proposing the search's candidates together, baseline,
the best candidate, compare_runs and a closing turn; measuring the best three in
measured mode, or replacing a candidate whose benchmark failed, adds a turn each.
The rest is room for a model to recover from a refused call without running out
before compare_runs."""


@dataclass
class _Meter:
    """Turns and tokens the audit's backend used; the cost is unknown once any turn's is."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0

    def add(self, usage: TokenUsage) -> None:
        self.turns += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        if self.cost_usd is not None and usage.cost_usd is not None:
            self.cost_usd += usage.cost_usd
        else:
            self.cost_usd = None

    def dump(self) -> dict[str, Any]:
        cost = None if self.cost_usd is None else round(self.cost_usd, 6)
        return AuditUsage(
            turns=self.turns,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=cost,
        ).model_dump()


async def run_audit(
    workload: Workload, context: AuditContext, backend: Backend | None = None
) -> AsyncIterator[AuditEvent]:
    """Audit one workload and yield its events as they happen.

    The closing ``final_report`` or ``error`` event carries the audit's
    ``usage`` (backend turns, tokens, estimated cost).
    """
    async for event in _run_audit(workload, context, backend, []):
        yield event


async def _run_audit(
    workload: Workload, context: AuditContext, backend: Backend | None, final: list[Report]
) -> AsyncIterator[AuditEvent]:
    """``run_audit``, also handing the report of the ``final_report`` event to ``final``
    as the object it was dumped from (``audit`` needs the object, not its JSON)."""
    meter = _Meter()
    secrets = environment_secrets()
    breaker = context.breaker
    refused = breaker.refusal(context.backend, context.base_url) if breaker else None
    if refused is not None:
        yield _error(refused, meter, secrets)
        return
    try:
        backend = backend or make_backend(
            context.backend,
            system_prompt=SYSTEM_PROMPT,
            model=context.model,
            base_url=context.base_url,
            plugins=context.backend_factory,
            timeout_s=context.backend_timeout_s,
        )
    except Exception as exc:
        yield _error(_describe(exc), meter, secrets)
        return
    state = AuditState(context=context, workload=workload)
    backend.add_user_message(f"Audit this fine-tuning workload: {workload.source.display_path}")
    failure = None
    try:
        async for event in _drive(backend, state, meter, secrets, final):
            yield event
    except BackendError as exc:
        failure = _error(_describe(exc), meter, secrets)
        yield failure
    except Exception as exc:
        yield _error(_describe(exc), meter, secrets)
    if breaker is not None:
        breaker.record(
            context.backend, context.base_url, failure.data["message"] if failure else None
        )


def _describe(exc: Exception) -> str:
    """A GoblinError's message is complete; anything else is named by its type."""
    return str(exc) if isinstance(exc, GoblinError) else f"{type(exc).__name__}: {exc}"


def _error(message: str, meter: _Meter, secrets: tuple[str, ...]) -> AuditEvent:
    return AuditEvent(
        type="error",
        data={
            "message": redact_known(message, secrets),
            "usage": meter.dump(),
        },
    )


async def _drive(
    backend: Backend,
    state: AuditState,
    meter: _Meter,
    secrets: tuple[str, ...],
    final: list[Report],
) -> AsyncIterator[AuditEvent]:
    """The turns of one audit; ``secrets`` (the environment's, read once per audit) never
    reach the backend."""
    schemas = tools.tool_schemas()
    results: list[dict[str, Any]] = []
    waiting = _waiting_text(backend, state.context)
    for _ in range(MAX_STEPS):
        if waiting is not None:
            yield AuditEvent(type="waiting", data={"text": waiting})
        turn = await backend.next_turn(schemas)
        meter.add(turn.usage)
        for text in turn.text_blocks:
            if text:
                yield AuditEvent(type="thought", data={"text": text})
        for call in turn.tool_calls:
            # the call is shown before it runs: a benchmark takes a while, and `-v` should
            # say what is running, not what ran
            yield AuditEvent(
                type="tool_call", data={"id": call.id, "name": call.name, "input": call.input}
            )
            yield _execute(backend, state, call, results, secrets)
        if turn.stop_reason == "end_turn" or not turn.tool_calls:
            break
    compared = _last_compare(results)
    report = state.reports[compared["report_id"]] if compared else _synthesise(state)
    if report is not None:
        # compare_runs returned the report dumped: its JSON form is that result
        dumped = (
            {key: value for key, value in compared.items() if key != "report_id"}
            if compared
            else report.model_dump(mode="json")
        )
        final.append(report)
        yield AuditEvent(type="final_report", data={"report": dumped, "usage": meter.dump()})
        return
    failures = [r["error"] for r in results if not r["ok"]]
    message = (
        failures[-1]
        if failures
        else "audit ended without a report (no compare_runs, and not enough benchmarks "
        "and patches to synthesise one)"
    )
    yield _error(message, meter, secrets)


def _waiting_text(backend: Backend, context: AuditContext) -> str | None:
    """What an LLM request waits for, said before each one: an endpoint that accepts the
    connection and never answers would otherwise look like a hang. The planner answers
    at once, so it waits for nothing."""
    if backend.name == "planner":
        return None
    model = getattr(backend, "model", "")
    limit = context.backend_timeout_s
    details = [f"model {model}"] if model else []
    if limit is not None:
        details.append(f"up to {limit:g} s a try, --goblin-backend-timeout")
    return f"waiting for the {backend.name} backend's reply" + (
        f" ({'; '.join(details)})" if details else ""
    )


def _execute(
    backend: Backend,
    state: AuditState,
    call: ToolCall,
    results: list[dict[str, Any]],
    secrets: tuple[str, ...],
) -> AuditEvent:
    result = (
        ToolResult(ok=False, error=f"{call.name or 'tool call'}: {call.error}")
        if call.error
        else tools.call(state, call.name, call.input)
    )
    entry = {
        "id": call.id,
        "name": call.name,
        "ok": result.ok,
        "result": result.result,
        "error": result.error,
    }
    results.append(entry)
    # a backend that runs in this process and sends nothing anywhere (the planner) reads
    # results as data: redaction guards what leaves the process, and what such a backend
    # writes (its thoughts and calls) is redacted where it is recorded, like every event
    takes_data = getattr(backend, "add_tool_data", None)
    if result.ok and takes_data is not None:
        takes_data(call.id, call.name, result.result)
    elif result.ok:
        backend.add_tool_result(call.id, call.name, redacted_json(result.result, secrets), False)
    else:
        backend.add_tool_result(
            call.id, call.name, redact_known(result.error or "failed", secrets), True
        )
    return AuditEvent(type="tool_result", data=entry)


def _last_compare(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The result of the audit's last successful compare_runs, if any."""
    for entry in reversed(results):
        if entry["name"] == "compare_runs" and entry["ok"]:
            result: dict[str, Any] = entry["result"]
            return result
    return None


def _synthesise(state: AuditState) -> Report | None:
    """Build the report the driver did not ask for, from what the audit holds."""
    root = state.root_config_id
    if root is None or not state.patches:
        return None
    original = state.configs[root]
    baseline = [k for k, cfg in state.config_of_run.items() if cfg == original]
    name = state.workload.name if state.workload else "workload"
    for patch_id in reversed(state.patches):
        patched = [
            k for k, cfg in state.config_of_run.items() if cfg == state.patches[patch_id].new_config
        ]
        if baseline and patched:
            args = tools.CompareRunsArgs(
                workload_name=name,
                before=baseline[0],
                after=patched[-1],
                patch=patch_id,
                notes=["report synthesised: the audit did not call compare_runs"],
            )
            return _compare(state, args)
    patch_id = next(reversed(state.patches))
    patch = state.patches[patch_id]
    if baseline:
        projector = state.context.projector
        before = projector.run(original, 50)
        after = projector.run(patch.new_config, 50)
        state.metrics["projected-baseline"] = before
        state.metrics["projected-patched"] = after
        args = tools.CompareRunsArgs(
            workload_name=name,
            before="projected-baseline",
            after="projected-patched",
            patch=patch_id,
            notes=[
                "report synthesised from one benchmark: both sides projected by the "
                "analytic model, the measured baseline is not compared"
            ],
        )
        return _compare(state, args)
    return None


def _compare(state: AuditState, args: tools.CompareRunsArgs) -> Report | None:
    result = tools.call(state, "compare_runs", args.model_dump())
    return state.reports[result.result["report_id"]] if result.ok else None


@dataclass
class AuditOutcome:
    """A finished audit: the report, or the error, and every event on the way.

    ``cached`` means the report was reused from an earlier run's identical audit
    (``pytest_goblin.audit.cache``): nothing ran, so there are no events or usage.
    ``noise_floor`` is the device's A/A noise floor under ``--goblin-calibrate``.
    """

    report: Report | None = field(repr=False)
    error: str | None
    events: list[AuditEvent] = field(default_factory=list, repr=False)
    usage: AuditUsage = field(default_factory=AuditUsage)
    cached: bool = False
    noise_floor: NoiseFloor | None = None


def audit(
    workload: Workload,
    context: AuditContext,
    backend: Backend | None = None,
    on_event: Callable[[AuditEvent], None] | None = None,
) -> AuditOutcome:
    """Run ``run_audit`` to completion (for callers without an event loop).

    ``on_event`` sees each event as it happens (live output, event logs).
    """

    async def collect() -> AuditOutcome:
        events = []
        final: list[Report] = []
        async for event in _run_audit(workload, context, backend, final):
            events.append(event)
            if on_event is not None:
                on_event(event)
        last = events[-1] if events else None
        usage = AuditUsage.model_validate(last.data.get("usage", {})) if last else AuditUsage()
        if last is not None and last.type == "final_report":
            return AuditOutcome(final[-1], None, events, usage)
        message = last.data.get("message", "no events") if last else "no events"
        return AuditOutcome(None, message, events, usage)

    with _ctrl_c_raises_where_it_lands():
        return asyncio.run(collect())


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _ctrl_c_raises_where_it_lands() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt at once, as in any synchronous test.

    ``asyncio.run`` otherwise installs a SIGINT handler that only cancels the
    task at its next ``await``; a tool blocked on a measured run has none until
    the run ends. asyncio keeps out only when the handler is not Python's
    default, so this is the default's behaviour under another name.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
