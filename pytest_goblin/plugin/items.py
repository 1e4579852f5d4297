"""The collection nodes: a workload file and its one item.

A ``WorkloadItem`` runs its workload's audit with the session's device
(``goblin_device``) and carries the outcome that :mod:`pytest_goblin.verdict.outcome`
settles out to pytest: a failure, an xfail, a skip or an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.audit.cache import AuditCache
from pytest_goblin.audit.fit import Fit, fitted_workload, unfit_message, unfit_result
from pytest_goblin.audit.run import audit_workload, effective_threshold
from pytest_goblin.errors import (
    AuditError,
    DeviceFault,
    GoblinError,
    NotAWorkload,
    ThresholdBelowNoise,
    UnsupportedConfig,
    WorkloadError,
)
from pytest_goblin.events import EventRecorder
from pytest_goblin.plugin import config as config_state
from pytest_goblin.plugin.extensions import backend_factory
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.printable import printable
from pytest_goblin.redact import redact_text
from pytest_goblin.report.terminal import failure_message
from pytest_goblin.runner import worker_env
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.schemas import AuditUsage, Report, WorkloadResult
from pytest_goblin.verdict.outcome import settle
from pytest_goblin.verdict.result import from_error, skipped
from pytest_goblin.workload.fix import write_fix
from pytest_goblin.workload.read import (
    NOT_A_WORKLOAD,
    Workload,
    default_name,
    is_workload_data,
    load_data,
    looks_like_workload,
    parse_workload,
)


class WorkloadFile(pytest.File):
    """One workload file: yields one item, which errors if the file cannot be read."""

    def __init__(self, *, matched: bool = False, named: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.matched = matched
        self.named = named
        self._relative: str | None = None

    @classmethod
    def from_parent(  # type: ignore[override]
        cls, parent: pytest.Collector, *, path: Path, **kwargs: Any
    ) -> WorkloadFile:
        """The file's node, with an id that shows its path escaped: pytest prints the id
        (``-v``, the short summary, JUnit's names), and a newline or ``ESC[2J`` in a file
        name must not break or drive those lines."""
        node: WorkloadFile = super().from_parent(parent, path=path, **kwargs)
        shown = printable(node.nodeid)
        if shown == node.nodeid:
            return node
        return super().from_parent(parent, path=path, nodeid=shown, **kwargs)

    def collect(self) -> Iterator[pytest.Item]:

        display = self._display_path()
        try:
            text, data = load_data(self.path, display)
        except WorkloadError as exc:
            if self.matched or self.named or looks_like_workload(self.path):
                yield WorkloadItem.broken(self, default_name(self.path), exc)
            return
        claimed = self.matched or self.named
        if not is_workload_data(data, claimed):
            if self.named:
                raise self.CollectError(f"{display}: {NOT_A_WORKLOAD}")
            if self.matched:
                yield WorkloadItem.broken(
                    self, default_name(self.path), WorkloadError(display, NOT_A_WORKLOAD)
                )
            return
        try:
            workload = parse_workload(self.path, self._relative_path(), text, data, claimed)
        except (WorkloadError, NotAWorkload) as exc:
            yield WorkloadItem.broken(self, default_name(self.path), exc)
            return
        yield WorkloadItem.from_parent(
            self, name=workload.name, callobj=_run_workload, workload=workload
        )

    def _display_path(self) -> str:
        """The path as the reports show it: relative to where pytest ran, escaped."""
        return printable(self._relative_path())

    def _relative_path(self) -> str:
        """The path as the user's shell sees it, so ``git apply`` works where pytest ran.

        Worked out once per file: collection and every report of the item ask."""
        if self._relative is None:
            self._relative = str(self.path)
            for base in (self.config.invocation_params.dir, self.config.rootpath):
                try:
                    self._relative = self.path.relative_to(base).as_posix()
                    break
                except ValueError:
                    continue
        return self._relative


def _audit_cache(config: pytest.Config) -> AuditCache | None:
    """The audit cache in pytest's cache directory; None without one (``-p no:cacheprovider``)
    or with ``--goblin-no-cache``."""
    store = getattr(config, "cache", None)
    if store is None or config_state.settings_of(config).no_cache:
        return None

    hooks = [
        getattr(config.hook, name, None)
        for name in ("pytest_goblin_make_backend", "pytest_goblin_make_runner")
    ]
    extensions = {
        impl.plugin_name for hook in hooks if hook is not None for impl in hook.get_hookimpls()
    }
    return AuditCache(store, extensions)


def _run_workload(goblin_device: DeviceSession, request: pytest.FixtureRequest) -> None:
    """The test body of a workload item; the device comes through the fixture."""
    request.node.audit(goblin_device)


def _raise_load_error(request: pytest.FixtureRequest) -> None:
    request.node.raise_load_error()


class WorkloadItem(pytest.Function):
    """A workload as a test: passes, fails (a patch wins), errors or skips."""

    def __init__(
        self,
        *,
        workload: Workload | None = None,
        load_error: Exception | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workload = workload
        self.load_error = load_error
        self.goblin_result: WorkloadResult | None = None
        self.goblin_events: list[dict[str, Any]] = []

    @classmethod
    def broken(cls, parent: WorkloadFile, name: str, error: Exception) -> WorkloadItem:
        return cls.from_parent(parent, name=name, callobj=_raise_load_error, load_error=error)

    @property
    def settings(self) -> GoblinSettings:
        return config_state.settings_of(self.config)

    @property
    def display_path(self) -> str:
        """The file's path as the reports show it, whether or not it could be read:
        relative to where pytest ran, as ``Workload.source.display_path`` is."""
        assert isinstance(self.parent, WorkloadFile)
        return self.parent._display_path()

    def setup(self) -> None:
        if self.load_error is not None:
            self.raise_load_error()
        super().setup()

    def raise_load_error(self) -> None:

        assert self.load_error is not None
        detected = self.load_error.format if isinstance(self.load_error, WorkloadError) else None
        self.goblin_result = from_error(
            self.nodeid,
            self.display_path,
            self.name,
            str(self.load_error),
            self.settings.threshold,
            detected_format=detected,
        )
        raise self.load_error

    def audit(self, session: DeviceSession) -> None:

        assert self.workload is not None
        workload = self.workload
        threshold = effective_threshold(workload, self.settings)
        writer = config_state.live_writer(self.config)
        recorder = None
        if writer is not None or self.settings.events_path is not None:
            # events are redacted record by record: only pay for that when someone reads them
            recorder = EventRecorder(self.nodeid, writer)
            self.goblin_events = recorder.records
        if not self.settings.fake:
            self._check_worker_env(workload, threshold)
        fitting = None
        try:
            if self.settings.fake:  # a config that does not fit is audited as it would fit
                fitting, workload = fitted_workload(
                    workload, session.runner_for(workload.settings.device, workload.settings)
                )
            outcome = audit_workload(
                workload,
                session,
                self.settings,
                config_state.load_kb(self.config),
                on_event=recorder,
                backend_factory=backend_factory(self.config),
                cache=_audit_cache(self.config),
                calibrations=self.config.stash.get(config_state.CALIBRATIONS_KEY, None),
                breaker=config_state.breaker(self.config),
            )
        except UnsupportedConfig as exc:
            self.goblin_result = skipped(self.nodeid, workload, str(exc), threshold, exc.device)
            pytest.skip(str(exc))
        except (WorkloadError, DeviceFault, AuditError, ThresholdBelowNoise) as exc:
            self.goblin_result = from_error(
                self.nodeid,
                workload.source.display_path,
                workload.name,
                str(exc),
                threshold,
                workload,
            )
            if isinstance(exc, ThresholdBelowNoise):
                self.goblin_result.noise_floor = exc.floor
            raise
        except Exception as exc:  # unforeseen: the item must still reach every report
            self.goblin_result = from_error(
                self.nodeid,
                workload.source.display_path,
                workload.name,
                redact_text(
                    f"{workload.source.display_path}: internal error: {type(exc).__name__}: {exc}"
                ),
                threshold,
                workload,
            )
            raise
        if outcome.report is None:
            message = f"{workload.source.display_path}: audit failed: {outcome.error}"
            self.goblin_result = from_error(
                self.nodeid,
                workload.source.display_path,
                workload.name,
                message,
                threshold,
                workload,
                session.info,
                outcome.usage,
            )
            raise AuditError(message)
        if fitting is not None:
            self._fail_unfit(fitting, outcome.report, threshold, outcome.usage)
        settled = settle(
            self.nodeid,
            workload,
            outcome,
            outcome.report,
            threshold,
            strict=self.settings.strict,
            saved=self.config.stash.get(config_state.SAVED_RUN_KEY, None),
            compare_fail=self.settings.compare_fail,
        )
        result = settled.result
        if self.settings.fix and settled.patch_wins and result.accepted is None:
            result = write_fix(workload, result)
        self.goblin_result = result
        if settled.failure is not None:
            raise WorkloadFailed(failure_message(settled.result, settled.failure))
        if settled.xfail is not None:
            pytest.xfail(settled.xfail)

    def _fail_unfit(
        self, fitting: Fit, report: Report, threshold: float, usage: AuditUsage | None
    ) -> None:
        """Fail a workload that does not fit its device, with the patch that makes it fit."""
        assert self.workload is not None
        result = unfit_result(self.nodeid, self.workload, fitting, report, threshold, usage)
        if self.settings.fix:
            result = write_fix(self.workload, result)
        self.goblin_result = result
        raise WorkloadFailed(unfit_message(result, fitting))

    def _check_worker_env(self, workload: Workload, threshold: float) -> None:
        """Refuse, before any device work, env_vars that would make the measured worker
        load code (``PYTHONPATH``, ``LD_PRELOAD`` …) or that no environment can carry."""
        refused = worker_env.check(workload.config.env_vars)
        if refused is None:
            return
        name, reason = refused
        error = WorkloadError(workload.source.display_path, reason, field=f"env_vars.{name}")
        self.goblin_result = from_error(
            self.nodeid,
            workload.source.display_path,
            workload.name,
            str(error),
            threshold,
            workload,
        )
        raise error

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # the location pytest prints (``-vv``) shows the path as the node id does
        return Path(printable(str(self.path))), None, f"goblin workload: {self.name}"

    # the signature of pytest.Function.repr_failure, which drops Node's ``style`` the same way
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]

        if isinstance(excinfo.value, (GoblinError, WorkloadFailed)):
            text = str(excinfo.value)
            errored = self.goblin_result is not None and self.goblin_result.outcome == "error"
            if errored and self.load_error is None:
                # raised while the test ran, so pytest says FAILED: say what it is
                return f"{AUDIT_ERROR_HEADER}\n{text}"
            return text
        return super().repr_failure(excinfo)


AUDIT_ERROR_HEADER = (
    "goblin: ERROR, not a finding: the audit could not complete (pytest counts it as failed)"
)
"""The first line of an audit error's failure text: pytest reports any exception raised
while a test runs as FAILED, where the goblin summary says ERROR."""


class WorkloadFailed(AssertionError):
    """A patch beats the workload by more than the threshold; the message says how."""
