"""What the plugin keeps on pytest's config: settings, knowledge base, saved run, floors.

Everything here is built on first use, so a pytest run without ``--goblin`` pays for
nothing it does not use (and a bad ``GOBLIN_*`` value fails only the goblin fixtures'
tests, never a plain run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from pytest_goblin.plugin import settings as settings_module
from pytest_goblin.plugin.settings import SETTINGS_KEY, GoblinSettings

if TYPE_CHECKING:
    from pytest_goblin.agent.backends.breaker import BackendBreaker
    from pytest_goblin.audit.calibrate import Calibrations  # noqa: F401 (CALIBRATIONS_KEY's type)
    from pytest_goblin.history import SavedRun
    from pytest_goblin.kb.loader import KnowledgeBase

KB_KEY = pytest.StashKey["KnowledgeBase"]()
CALIBRATIONS_KEY = pytest.StashKey["Calibrations"]()
SAVED_RUN_KEY = pytest.StashKey["SavedRun | None"]()
BREAKER_KEY = pytest.StashKey["BackendBreaker"]()


def breaker(config: pytest.Config) -> BackendBreaker:
    """The session's count of workloads its LLM backend failed in a row (one per process:
    each xdist worker counts its own)."""
    from pytest_goblin.agent.backends.breaker import BackendBreaker

    if BREAKER_KEY not in config.stash:
        config.stash[BREAKER_KEY] = BackendBreaker()
    return config.stash[BREAKER_KEY]


def check_backend(settings: GoblinSettings) -> None:
    """An LLM backend asked for by name needs its SDK: say which extra installs it."""
    from pytest_goblin.agent.backends import BackendUnavailable, ensure_available

    try:
        ensure_available(settings.backend)
    except BackendUnavailable as exc:
        raise pytest.UsageError(f"{settings.source('backend')}: {exc}") from None


def live_writer(config: pytest.Config) -> Callable[[str], None] | None:
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


def notice_writer(config: pytest.Config) -> Callable[[str], None] | None:
    """A writer for what the user must see at any verbosity while a test runs (waiting for
    a device another process holds): the line goes past output capture to the terminal."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or hasattr(config, "workerinput"):
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capture is None:
            terminal.write_line(f"goblin: {line}")
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(f"goblin: {line}")

    return write


def check_device(settings: GoblinSettings) -> None:
    """A fake device must be a catalogue entry or a calibration saved under the storage.
    A catalogue name is checked against the catalogue alone: the analytic model, which
    reading saved calibrations imports, is not needed to collect."""
    from pytest_goblin.catalogue.devices import get_device

    try:
        get_device(settings.fake_device)
        return
    except ValueError:
        pass
    from pytest_goblin.runner.self_calibration import projection_target

    try:
        projection_target(settings.fake_device, settings.storage)
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


def saved_run(settings: GoblinSettings) -> SavedRun | None:
    """The run ``--goblin-compare`` names, loaded before any item runs so items can fail on it."""
    if settings.compare is None:
        return None
    from pytest_goblin.history import HistoryError, select

    try:
        return select(settings.storage, settings.compare)
    except HistoryError as exc:
        raise pytest.UsageError(f"--goblin-compare: {exc}") from None
