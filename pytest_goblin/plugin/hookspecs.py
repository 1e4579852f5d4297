"""The hooks pytest-goblin calls, for plugins and ``conftest.py`` files to implement.

Registered by ``pytest_addhooks`` in the plugin, so pytest validates their
implementations like its own hooks: an implementation may take any subset of
the arguments, by name. Nothing here is imported unless a hook is called.

- ``pytest_goblin_rules``: contribute knowledge-base rules from code.
- ``pytest_goblin_report``: see the session's results once, at the end
  (dashboards, chat messages); the built-in JSON, Markdown, HTML and history
  outputs are implementations of it too.
- ``pytest_goblin_make_backend``: drive audits with another LLM or policy.
- ``pytest_goblin_make_runner``: run benchmarks on something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_goblin.agent.backends import Backend
    from pytest_goblin.kb.schema import Rule
    from pytest_goblin.plugin.settings import GoblinSettings
    from pytest_goblin.report.session_report import SessionReport
    from pytest_goblin.runner.device_session import DeviceRunner


@pytest.hookspec
def pytest_goblin_rules(config: pytest.Config) -> Sequence[Rule | Mapping[str, Any]] | None:
    """Return rules to add to the session's knowledge base.

    Each is a ``pytest_goblin.kb.schema.Rule`` or a mapping validated exactly
    like a rule in a YAML file. They join as user rules, as ``--goblin-kb``
    rules do: a rule whose id is a built-in one replaces it (and
    ``--goblin-rules`` says so); the same id twice among user rules (files or
    hooks) is a usage error naming both sources, and so is an invalid rule.
    Called once per pytest process, when the knowledge base is first loaded.
    """


@pytest.hookspec
def pytest_goblin_report(report: SessionReport, config: pytest.Config) -> None:
    """See the session's results once, after the last workload, on the controller.

    ``report`` is a ``pytest_goblin.report.session_report.SessionReport``: every
    workload's ``WorkloadResult`` (also those from xdist workers), the run's
    device, backend, threshold and whether numbers are projected, the
    settings and pytest's exit status. Append to ``report.lines`` what the
    terminal's goblin section should say you did ("posted to …"). Called even
    when no workload was collected; never on an xdist worker. The built-in
    outputs (``--goblin-json``, ``--goblin-md``, ``--goblin-html``,
    ``--goblin-save``) run first.
    """


@pytest.hookspec(firstresult=True)
def pytest_goblin_make_backend(
    name: str,
    system_prompt: str,
    model: str | None,
    base_url: str | None,
    config: pytest.Config,
) -> Backend | None:
    """Return the audit driver for backend ``name``, or None to leave it to others.

    ``name`` is the backend the session asked for with ``auto`` resolved
    (``planner``, ``claude``, ``qwen``, or any other name given to
    ``--goblin-backend``, which pytest-goblin accepts once a plugin implements
    this hook). The object must speak the ``pytest_goblin.agent.backends.Backend``
    protocol. Called once per audit, before the built-in backends; the first
    non-None result wins.
    """


@pytest.hookspec(firstresult=True)
def pytest_goblin_make_runner(
    device: str | None, settings: GoblinSettings, config: pytest.Config
) -> DeviceRunner | None:
    """Return the runner for ``device``, or None for the built-in one.

    ``device`` is a workload's ``goblin.device`` (None: the session's default
    device); ``settings`` says whether the session is fake (``settings.fake``)
    and which device it measures on. The object must speak the
    ``pytest_goblin.runner.device_session.DeviceRunner`` protocol (``info``,
    ``projector``, ``unsupported``, ``run``). Called once per device per
    pytest process, when the ``goblin_device`` session first needs it; the
    runner's ``close()``, if it has one, is called when the session ends. A
    ``device_id`` attribute, if it has one, names the physical device (the same
    in every process): ``--goblin-calibrate`` then shares the device's noise floor
    between xdist workers. The first non-None result wins.
    """
