"""pytest hooks and fixtures: the only module that knows pytest's plugin API.

It wires options, collection, items, fixtures and reporting; everything else
lives in modules usable without pytest. Without ``--goblin`` it only registers
its options and fixtures: no workload file is collected and nothing heavy is
imported (pydantic, the knowledge base and the runners load on first use).
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_goblin.plugin import settings as settings_module
from pytest_goblin.plugin.settings import SETTINGS_KEY, GoblinSettings

if TYPE_CHECKING:
    from pytest_goblin.audit.cache import AuditCache
    from pytest_goblin.history import SavedRun
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.report.session_report import SessionReport
    from pytest_goblin.report.summary import RunInfo
    from pytest_goblin.runner.device_session import DeviceSession
    from pytest_goblin.schemas import Report, WorkloadResult
    from pytest_goblin.workload.read import Workload

KB_KEY = pytest.StashKey["KnowledgeBase"]()
CALIBRATIONS_KEY = pytest.StashKey["Calibrations"]()
SAVED_RUN_KEY = pytest.StashKey["SavedRun | None"]()
WORKLOAD_SUFFIXES = (".yaml", ".yml", ".json", ".py")


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_module.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The ``pytest_goblin_*`` extension hooks (see ``pytest_goblin.plugin.hookspecs``)."""
    from pytest_goblin.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """The hooks that spread xdist workers over GPUs, when xdist is installed: registered
    this early because xdist counts ``-n auto``'s workers before ``pytest_configure``.
    Without ``--goblin`` nothing is imported: pytest alone must not pay for the plugin."""
    if not early_config.known_args_namespace.goblin:
        return
    from pytest_goblin.plugin import xdist_gpus

    xdist_gpus.register(early_config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a ROCm or CUDA device; skipped without one")
    if not (config.option.goblin or config.option.goblin_rules):
        return
    settings = settings_of(config)
    if settings.show_rules:
        return
    _check_device(settings)
    _check_backend(settings)
    kb = load_kb(config)
    from pytest_goblin.audit.run import unknown_rule_ids

    bad = unknown_rule_ids(kb, settings.ignore)
    if bad:
        raise pytest.UsageError(f"{settings.source('ignore')}: unknown rule id {', '.join(bad)}")
    config.stash[SAVED_RUN_KEY] = _saved_run(settings)
    if settings.calibrate:
        from pytest_goblin.audit.calibrate import Calibrations
        from pytest_goblin.plugin.shared_floors import for_session

        config.stash[CALIBRATIONS_KEY] = Calibrations(shared=for_session(config))
    config.pluginmanager.register(GoblinSession(config, settings), "goblin-session")
    _register_builtin_reporters(config)


def _register_builtin_reporters(config: pytest.Config) -> None:
    """JSON, Markdown, HTML and history save, as ``pytest_goblin_report`` implementations."""
    from pytest_goblin.plugin.reporters import PLUGIN_NAME, BuiltinReporters

    config.pluginmanager.register(BuiltinReporters(), PLUGIN_NAME)


def _saved_run(settings: GoblinSettings) -> SavedRun | None:
    """The run ``--goblin-compare`` names, loaded before any item runs so items can fail on it."""
    if settings.compare is None:
        return None
    from pytest_goblin.history import HistoryError, select

    try:
        return select(settings.storage, settings.compare)
    except HistoryError as exc:
        raise pytest.UsageError(f"--goblin-compare: {exc}") from None


def _check_backend(settings: GoblinSettings) -> None:
    """An LLM backend asked for by name needs its SDK: say which extra installs it."""
    from pytest_goblin.agent.backends import BackendUnavailable, ensure_available

    try:
        ensure_available(settings.backend)
    except BackendUnavailable as exc:
        raise pytest.UsageError(f"{settings.source('backend')}: {exc}") from None


def _live_writer(config: pytest.Config) -> Callable[[str], None] | None:
    """Under ``-v``, a writer that shows lines under the running item, past output capture."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if config.get_verbosity() <= 0 or terminal is None or hasattr(config, "workerinput"):
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capture is None:
            terminal.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)

    return write


def _check_device(settings: GoblinSettings) -> None:
    from pytest_goblin.runner.devices import get_device

    try:
        get_device(settings.fake_device)
    except ValueError as exc:
        raise pytest.UsageError(f"{settings.source('fake_device')}: {exc}") from None


def settings_of(config: pytest.Config) -> GoblinSettings:
    """The session's settings, built on first use: without ``--goblin`` only a goblin
    fixture reads them, so a bad ``GOBLIN_*`` variable or ini value fails that fixture's
    tests, never a pytest run that does not use the plugin."""
    if SETTINGS_KEY not in config.stash:
        config.stash[SETTINGS_KEY] = settings_module.build(config)
    return config.stash[SETTINGS_KEY]


def load_kb(config: pytest.Config) -> KnowledgeBase:
    """The session's knowledge base: bundled rules plus --goblin-kb directories, loaded once."""
    if KB_KEY not in config.stash:
        from pytest_goblin.kb.loader import KnowledgeBaseError
        from pytest_goblin.kb.loader import load_kb as load
        from pytest_goblin.plugin.extensions import plugin_rules

        settings = settings_of(config)
        try:
            config.stash[KB_KEY] = load(settings.kb_dirs, plugin_rules(config))
        except KnowledgeBaseError as exc:
            raise pytest.UsageError(f"goblin knowledge base: {exc}") from None
    return config.stash[KB_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--goblin-rules``: print the knowledge base and exit, like ``--fixtures``."""
    if not config.option.goblin_rules:
        return None
    from pytest_goblin.report.terminal import rules_listing

    settings_of(config)
    try:
        kb = load_kb(config)
    except pytest.UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    print(rules_listing(kb, verbose=config.option.verbose > 0))
    return 0


class GoblinSession:
    """The hooks that only exist under ``--goblin``: collection and reporting."""

    def __init__(self, config: pytest.Config, settings: GoblinSettings) -> None:
        self.config = config
        self.settings = settings
        self.results: list[WorkloadResult] = []
        self.report: SessionReport | None = None
        given = config.args_source == pytest.Config.ArgsSource.ARGS
        self._explicit = [
            _real_path(settings.invocation_dir / arg.split("::", 1)[0])
            for arg in (config.args if given else [])
        ]
        self._collected: dict[Path, Path] = {}
        self._writes_events = settings.events_path is not None and not hasattr(
            config, "workerinput"
        )
        if self._writes_events:
            from pytest_goblin.events import start_log

            start_log(self._events_path())

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.File | None:
        if file_path.suffix not in WORKLOAD_SUFFIXES:
            return None
        matched = any(fnmatch.fnmatch(file_path.name, p) for p in self.settings.patterns)
        resolved = _real_path(file_path)
        named = resolved in self._explicit
        under = any(resolved.is_relative_to(arg) for arg in self._explicit if arg.is_dir())
        # a file reached again through a symlinked directory (or a loop of them) is one workload
        if not (matched or named or under) or self._collected.get(resolved, file_path) != file_path:
            return None
        from pytest_goblin.workload.read import may_hold_workload

        if not may_hold_workload(file_path, self.config.getini("python_files")):
            return None
        self._collected[resolved] = file_path
        return WorkloadFile.from_parent(parent, path=file_path, matched=matched, named=named)

    @pytest.hookimpl(wrapper=True, specname="pytest_collect_file")
    def pytest_collect_file_of_scripts(self, file_path: Path) -> Iterator[None]:
        """A training script named on the command line is ours alone: pytest's Python
        collector would import it as a test module, running its module scope."""
        collected = yield
        if file_path.suffix == ".py" and _real_path(file_path) in self._collected:
            return [node for node in collected if not isinstance(node, pytest.Module)]
        return collected

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "goblin", None)
        if data:
            from pytest_goblin.schemas import WorkloadResult

            self.results.append(WorkloadResult.model_validate(data))
        events = getattr(report, "goblin_events", None)
        if events and self._writes_events:
            from pytest_goblin.events import append_records

            append_records(self._events_path(), events)

    def _events_path(self) -> Path:
        assert self.settings.events_path is not None
        return self.settings.invocation_dir / self.settings.events_path

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        from pytest_goblin.audit.calibrate import describe_all, noise_floors
        from pytest_goblin.plugin.xdist_gpus import gpu_workers
        from pytest_goblin.report.terminal import advisories_text, cache_line, summary_table

        width = self.config.get_terminal_writer().fullwidth
        terminalreporter.section("goblin")
        terminalreporter.line(self._header())
        for line in describe_all(noise_floors(self._sorted())):
            terminalreporter.line(line)
        terminalreporter.line(self._agent_line())
        spread = gpu_workers(self.config)
        if spread is not None and spread.shared:
            terminalreporter.line(spread.summary_line())
        cached = cache_line(self._sorted(), events=self.settings.events_path is not None)
        if cached:
            terminalreporter.line(cached)
        terminalreporter.line("")
        for line in summary_table(self._sorted(), width).splitlines():
            terminalreporter.line(line)
        advice = advisories_text(self._sorted(), None if self.config.get_verbosity() > 0 else width)
        if advice:
            terminalreporter.line("")
            for line in advice.splitlines():
                terminalreporter.line(line)
        if self.settings.fix:
            from pytest_goblin.workload.fix import fix_summary

            fixed = fix_summary(self._sorted())
            if fixed:
                terminalreporter.line("")
                for line in fixed.splitlines():
                    terminalreporter.line(line)
        self._report_history_and_outputs(terminalreporter)

    def _report_history_and_outputs(self, terminalreporter: Any) -> None:
        """What the reporters wrote, the history comparison, the closing counts line, and
        the text a reporter meant for stdout."""
        from pytest_goblin import history
        from pytest_goblin.report.terminal import outcome_line

        lines = list(self.report.lines) if self.report else []
        saved = self.config.stash.get(SAVED_RUN_KEY, None)
        if saved is not None:
            lines.insert(0, history.summary_line(saved, self.results, self.settings.compare_fail))
        elif self.settings.compare is not None:
            lines.insert(
                0,
                "history: "
                + history.missing_text(
                    self.settings.storage, self.settings.compare, self.settings.compare_fail
                ),
            )
        for line in ["", *lines] if lines else []:
            terminalreporter.line(line)
        terminalreporter.line("")
        terminalreporter.line(outcome_line(self._sorted(), self._run_info()))
        for text in self.report.stdout if self.report else []:
            terminalreporter.line("")
            terminalreporter.write(text)

    def _run_info(self) -> RunInfo:
        from pytest_goblin.plugin.xdist_gpus import gpu_workers
        from pytest_goblin.report.summary import RunInfo

        saved = self.config.stash.get(SAVED_RUN_KEY, None)
        return RunInfo(
            device=self._device(),
            backend=self._backend(),
            threshold=self.settings.threshold,
            projected=self.settings.fake,
            compared_with=saved.describe() if saved else None,
            parallel=gpu_workers(self.config),
        )

    def _header(self) -> str:
        from pytest_goblin.report.terminal import header_line

        return header_line(
            self._device(), self._backend(), self.settings.threshold, self.settings.fake
        )

    def _device(self) -> Any:
        if not self.settings.fake:
            # measured: the device the workloads ran on, as their worker found it
            return next((r.device for r in self._sorted() if r.device is not None), None)
        from pytest_goblin.runner.devices import get_device

        return get_device(self.settings.fake_device).info()

    def _backend(self) -> str:
        from pytest_goblin.agent.backends import resolve_name

        return resolve_name(self.settings.backend, self.settings.base_url)

    def _agent_line(self) -> str:
        """Which backend drove the audits, with its model, and why it was chosen."""
        from pytest_goblin.agent.backends import describe, select

        selection = select(self.settings.backend, self.settings.base_url)
        return describe(selection, self.settings.model, self.settings.base_url)

    def _sorted(self) -> list[WorkloadResult]:
        return sorted(self.results, key=lambda r: r.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Hand every result to the ``pytest_goblin_report`` reporters, once, on the controller."""
        if hasattr(self.config, "workerinput"):
            return
        from pytest_goblin.report.session_report import SessionReport

        self.report = SessionReport(
            results=self._sorted(),
            run=self._run_info(),
            settings=self.settings,
            rootpath=self.config.rootpath,
            exitstatus=int(exitstatus),
        )
        self.config.hook.pytest_goblin_report(report=self.report, config=self.config)


def _real_path(path: Path) -> Path:
    """The path with symlinks resolved; a symlink loop stays as it is (``Path.resolve``
    raises on one)."""
    return Path(os.path.realpath(path))


class WorkloadFile(pytest.File):
    """One workload file: yields one item, which errors if the file cannot be read."""

    def __init__(self, *, matched: bool = False, named: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.matched = matched
        self.named = named

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_goblin.errors import NotAWorkload, WorkloadError
        from pytest_goblin.workload.read import (
            NOT_A_WORKLOAD,
            default_name,
            is_workload_data,
            load_data,
            parse_workload,
        )

        display = self._display_path()
        try:
            text, data = load_data(self.path, display)
        except WorkloadError as exc:
            if self.matched or self.named:
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
            workload = parse_workload(self.path, display, text, data, claimed)
        except (WorkloadError, NotAWorkload) as exc:
            yield WorkloadItem.broken(self, default_name(self.path), exc)
            return
        yield WorkloadItem.from_parent(
            self, name=workload.name, callobj=_run_workload, workload=workload
        )

    def _display_path(self) -> str:
        """The path as the user's shell sees it, so ``git apply`` works where pytest ran."""
        for base in (self.config.invocation_params.dir, self.config.rootpath):
            try:
                return self.path.relative_to(base).as_posix()
            except ValueError:
                continue
        return str(self.path)


def _audit_cache(config: pytest.Config) -> AuditCache | None:
    """The audit cache in pytest's cache directory; None without one (``-p no:cacheprovider``)
    or with ``--goblin-no-cache``."""
    store = getattr(config, "cache", None)
    if store is None or settings_of(config).no_cache:
        return None
    from pytest_goblin.audit.cache import AuditCache

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
        return settings_of(self.config)

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
        from pytest_goblin.errors import WorkloadError
        from pytest_goblin.verdict.result import from_error

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
        from pytest_goblin.audit.run import audit_workload, effective_threshold
        from pytest_goblin.errors import (
            AuditError,
            DeviceFault,
            ThresholdBelowNoise,
            UnsupportedConfig,
            WorkloadError,
        )
        from pytest_goblin.events import EventRecorder
        from pytest_goblin.plugin.extensions import backend_factory
        from pytest_goblin.verdict.gates import judge
        from pytest_goblin.verdict.result import from_error, from_report, skipped

        assert self.workload is not None
        workload = self.workload
        threshold = effective_threshold(workload, self.settings)
        writer = _live_writer(self.config)
        recorder = None
        if writer is not None or self.settings.events_path is not None:
            # events are redacted record by record: only pay for that when someone reads them
            recorder = EventRecorder(self.nodeid, writer)
            self.goblin_events = recorder.records
        try:
            outcome = audit_workload(
                workload,
                session,
                self.settings,
                load_kb(self.config),
                on_event=recorder,
                backend_factory=backend_factory(self.config),
                cache=_audit_cache(self.config),
                calibrations=self.config.stash.get(CALIBRATIONS_KEY, None),
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
        verdict = from_report(
            self.nodeid,
            workload,
            outcome.report,
            threshold,
            None if outcome.cached else outcome.usage,
            strict=self.settings.strict,
        )
        verdict.cached = outcome.cached
        verdict.noise_floor = outcome.noise_floor
        result, failure = judge(
            verdict,
            workload.settings,
            self.config.stash.get(SAVED_RUN_KEY, None),
            self.settings.compare_fail,
        )
        if self.settings.fix and verdict.outcome == "failed" and result.accepted is None:
            from pytest_goblin.workload.fix import write_fix

            result = write_fix(workload, result)
        self.goblin_result = result
        if failure is not None:
            raise WorkloadFailed(failure)
        if result.accepted is not None:
            from pytest_goblin.verdict.known_gaps import xfail_reason

            pytest.xfail(xfail_reason(result, result.accepted))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"goblin workload: {self.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        from pytest_goblin.errors import GoblinError

        if isinstance(excinfo.value, (GoblinError, WorkloadFailed)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class WorkloadFailed(AssertionError):
    """A patch beats the workload by more than the threshold; the message says how."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the workload's result to its report, so reporters (and xdist) see it."""
    report = yield
    if not isinstance(item, WorkloadItem):
        return report
    if report.when != "call" and report.failed and call.excinfo is not None:
        from pytest_goblin.errors import GoblinError

        if isinstance(call.excinfo.value, GoblinError):
            # a file that cannot be read errors in setup, where pytest would print the
            # traceback of the plugin reading it: the message alone says what to fix
            report.longrepr = str(call.excinfo.value)
    if report.skipped and isinstance(report.longrepr, tuple):
        # pytest places a skip where pytest.skip was called, inside this plugin; -rs and
        # JUnit should name the workload file the reason is about (from its first line)
        report.longrepr = (str(item.path), 1, report.longrepr[2])
    result = item.goblin_result
    if result is None and report.when == "setup" and report.failed and call.excinfo:
        from pytest_goblin.verdict.result import from_error

        result = from_error(
            item.nodeid,
            item.display_path,
            item.name,
            str(call.excinfo.value),
            item.settings.threshold,
        )
    if result is not None and (report.when == "call" or report.failed):
        from pytest_goblin.report.junit import properties

        report.goblin = result.model_dump(mode="json")
        item.user_properties.extend(properties(result))
        item.goblin_result = None
    if report.when == "call" and item.goblin_events and item.settings.events_path is not None:
        report.goblin_events = item.goblin_events
        item.goblin_events = []
    return report


@pytest.fixture(scope="session")
def goblin_device(pytestconfig: pytest.Config) -> Iterator[DeviceSession]:
    """The session's device: one per session, shared by every workload and test.

    Simulated with --goblin-fake; otherwise the --goblin-device it measures on,
    whose worker processes end with the session.
    """
    settings = settings_of(pytestconfig)
    _check_device(settings)
    from pytest_goblin.plugin.extensions import device_session
    from pytest_goblin.runner.device_session import MeasureOptions

    measure = (
        None
        if settings.fake
        else MeasureOptions(
            device=settings.device,
            timeout_s=settings.timeout_s,
            steps=settings.steps,
            warmup=settings.warmup,
            layers=settings.layers,
        )
    )
    session = device_session(pytestconfig, settings, measure)
    yield session
    session.close()


@pytest.fixture
def goblin_audit(
    goblin_device: DeviceSession, pytestconfig: pytest.Config
) -> Callable[..., Report]:
    """Audit a workload file from a Python test and get its Report.

    ``goblin_audit(path, ignore=())`` raises AuditError when the audit cannot
    complete and WorkloadError when the file cannot be read, and skips the test
    when the device cannot run the workload.
    """
    from pytest_goblin.audit.run import audit_workload
    from pytest_goblin.errors import AuditError, UnsupportedConfig
    from pytest_goblin.plugin.extensions import backend_factory
    from pytest_goblin.workload.read import load_workload

    settings = settings_of(pytestconfig)

    def run(path: str | Path, ignore: tuple[str, ...] = ()) -> Report:
        workload = load_workload(Path(path), str(path))
        try:
            outcome = audit_workload(
                workload,
                goblin_device,
                settings,
                load_kb(pytestconfig),
                ignore,
                backend_factory=backend_factory(pytestconfig),
                calibrations=pytestconfig.stash.get(CALIBRATIONS_KEY, None),
            )
        except UnsupportedConfig as exc:
            pytest.skip(str(exc))
        if outcome.report is None:
            raise AuditError(f"{path}: audit failed: {outcome.error}")
        return outcome.report

    return run
