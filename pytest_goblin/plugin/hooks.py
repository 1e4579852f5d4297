"""pytest hooks and fixtures: the plugin's entry point (``pytest11: goblin``).

Hooks only. The session object that exists under ``--goblin`` is in
:mod:`pytest_goblin.plugin.session`, the collection nodes in
:mod:`pytest_goblin.plugin.items`, what is kept on pytest's config in
:mod:`pytest_goblin.plugin.config`. Without ``--goblin`` this module only registers the
options and fixtures: no workload file is collected and nothing heavy is imported
(pydantic, the knowledge base and the runners load on first use), which is why the
imports below sit inside the hooks that need them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_goblin.plugin import config as config_state
from pytest_goblin.plugin import settings as settings_module

if TYPE_CHECKING:
    from pytest_goblin.runner.device_session import DeviceSession
    from pytest_goblin.schemas import Report


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
    settings = config_state.settings_of(config)
    if settings.show_rules:
        return
    config_state.check_device(settings)
    config_state.check_backend(settings)
    kb = config_state.load_kb(config)
    from pytest_goblin.audit.run import unknown_rule_ids

    bad = unknown_rule_ids(kb, settings.ignore)
    if bad:
        raise pytest.UsageError(f"{settings.source('ignore')}: unknown rule id {', '.join(bad)}")
    config.stash[config_state.SAVED_RUN_KEY] = config_state.saved_run(settings)
    if settings.calibrate:
        from pytest_goblin.audit.calibrate import Calibrations
        from pytest_goblin.plugin.shared_floors import for_session

        config.stash[config_state.CALIBRATIONS_KEY] = Calibrations(shared=for_session(config))
    from pytest_goblin.plugin.session import GoblinSession

    config.pluginmanager.register(GoblinSession(config, settings), "goblin-session")
    _register_builtin_reporters(config)


def _register_builtin_reporters(config: pytest.Config) -> None:
    """JSON, Markdown, HTML and history save, as ``pytest_goblin_report`` implementations."""
    from pytest_goblin.plugin.reporters import PLUGIN_NAME, BuiltinReporters

    config.pluginmanager.register(BuiltinReporters(), PLUGIN_NAME)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--goblin-rules``: print the knowledge base and exit, like ``--fixtures``."""
    if not config.option.goblin_rules:
        return None
    from pytest_goblin.report.terminal import rules_listing

    config_state.settings_of(config)
    try:
        kb = config_state.load_kb(config)
    except pytest.UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    print(rules_listing(kb, verbose=config.option.verbose > 0, width=_terminal_width()))
    return 0


def _terminal_width() -> int:
    """The terminal's width as pytest's own terminal writer takes it (``COLUMNS``, then
    the terminal, 80 when there is none or it is under 40 columns): the terminal reporter
    is not set up yet when ``--goblin-rules`` prints."""
    width = shutil.get_terminal_size(fallback=(80, 24)).columns
    return width if width >= 40 else 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the workload's result to its report, so reporters (and xdist) see it."""
    report = yield
    items = sys.modules.get("pytest_goblin.plugin.items")
    if items is None or not isinstance(item, items.WorkloadItem):
        return report  # no workload was collected: the items module was never imported
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
    settings = config_state.settings_of(pytestconfig)
    config_state.check_device(settings)
    from pytest_goblin.plugin.extensions import device_session
    from pytest_goblin.runner.device_session import MeasureOptions
    from pytest_goblin.runner.engines import resolve_engine

    measure = (
        None
        if settings.fake
        else MeasureOptions(
            device=settings.device,
            timeout_s=settings.timeout_s,
            steps=settings.steps,
            warmup=settings.warmup,
            layers=settings.layers,
            engine=resolve_engine(settings.engine),
            max_world_size=settings.max_world_size,
            # ranks auto's hf engine cannot launch here (FSDP on the CPU): the native engine's
            rank_engine="native" if settings.engine == "auto" else None,
        )
    )
    session = device_session(pytestconfig, settings, measure)
    session.on_wait = config_state.notice_writer(pytestconfig)
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

    settings = config_state.settings_of(pytestconfig)

    def run(path: str | Path, ignore: tuple[str, ...] = ()) -> Report:
        workload = load_workload(Path(path), str(path))
        try:
            outcome = audit_workload(
                workload,
                goblin_device,
                settings,
                config_state.load_kb(pytestconfig),
                ignore,
                backend_factory=backend_factory(pytestconfig),
                calibrations=pytestconfig.stash.get(config_state.CALIBRATIONS_KEY, None),
            )
        except UnsupportedConfig as exc:
            pytest.skip(str(exc))
        if outcome.report is None:
            raise AuditError(f"{path}: audit failed: {outcome.error}")
        return outcome.report

    return run
