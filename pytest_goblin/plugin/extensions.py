"""What plugins contribute through the hooks of ``hookspecs``, in the form the session uses.

``plugin.py`` only wires hooks, and the agent and runner packages know nothing
of pytest; this module sits between: a plugin's rules become validated
(rule, source file) pairs for the knowledge-base loader, the backend hook
becomes a plain factory the audit context carries, and the runner hook is
asked by the session's device before the built-in runners.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_goblin.agent.backends import Backend, BackendFactory
from pytest_goblin.kb.loader import validate_rule
from pytest_goblin.kb.schema import Rule
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.runner.device_session import DeviceRunner, DeviceSession, MeasureOptions
from pytest_goblin.schemas import WorkloadSettings


def plugin_rules(config: pytest.Config) -> list[tuple[Rule, Path]]:
    """Every rule the ``pytest_goblin_rules`` implementations return, with where each came from.

    Each implementation is called on its own, so that a bad or duplicate rule
    is reported with the file that defines the hook.
    """
    found: list[tuple[Rule, Path]] = []
    for impl in reversed(config.hook.pytest_goblin_rules.get_hookimpls()):
        source = _source(impl)
        label = f"{source} (pytest_goblin_rules of plugin {impl.plugin_name!r})"
        kwargs = {"config": config}
        # what hookspecs.pytest_goblin_rules declares (pluggy types a hook's result as object)
        contributed = cast(
            "Sequence[Rule | Mapping[str, Any]] | None",
            impl.function(**{name: kwargs[name] for name in impl.argnames}),
        )
        found += [
            (validate_rule(raw, label, index), source)
            for index, raw in enumerate(contributed or (), start=1)
        ]
    return found


def _source(impl: Any) -> Path:
    """The file that defines a hook implementation (its plugin's name when there is none)."""
    try:
        return Path(inspect.getsourcefile(impl.function) or impl.plugin_name)
    except TypeError:
        return Path(impl.plugin_name)


def backend_factory(config: pytest.Config) -> BackendFactory:
    """The ``pytest_goblin_make_backend`` hook as the plain factory an AuditContext carries."""

    def make(
        name: str, system_prompt: str, model: str | None, base_url: str | None
    ) -> Backend | None:
        backend: Backend | None = config.hook.pytest_goblin_make_backend(
            name=name, system_prompt=system_prompt, model=model, base_url=base_url, config=config
        )
        return backend

    return make


class PluggableDeviceSession(DeviceSession):
    """The session's devices, asking ``make_runner`` first for each device name.

    A runner a plugin returns serves every workload on that device (None: the
    session's default); where it returns None the built-in runners do.
    """

    def __init__(
        self,
        fake_device: str,
        measure: MeasureOptions | None,
        make_runner: Callable[[str | None], DeviceRunner | None],
        calibrations: Path | None = None,
    ) -> None:
        super().__init__(fake_device, measure, calibrations)
        self._make_runner = make_runner
        self._plugged: dict[str | None, DeviceRunner | None] = {}

    def runner_for(
        self, device: str | None = None, settings: WorkloadSettings | None = None
    ) -> DeviceRunner:
        if device not in self._plugged:
            self._plugged[device] = self._make_runner(device)
        return self._plugged[device] or super().runner_for(device, settings)

    def close(self) -> None:
        """Close the plugins' runners that can be closed, then the built-in workers."""
        plugged = [runner for runner in self._plugged.values() if runner is not None]
        self._plugged.clear()
        for runner in plugged:
            close = getattr(runner, "close", None)
            if callable(close):
                close()
        super().close()


def device_session(
    config: pytest.Config, settings: GoblinSettings, measure: MeasureOptions | None
) -> PluggableDeviceSession:
    """The ``goblin_device`` session, with the ``pytest_goblin_make_runner`` hook asked first."""

    def make_runner(device: str | None) -> DeviceRunner | None:
        runner: DeviceRunner | None = config.hook.pytest_goblin_make_runner(
            device=device, settings=settings, config=config
        )
        return runner

    return PluggableDeviceSession(settings.fake_device, measure, make_runner, settings.storage)
