"""pytest-goblin: performance regression tests for fine-tuning workloads.

The types a hook implementation or a script meets are importable from here
(``from pytest_goblin import WorkloadResult``); each is loaded on first access
(PEP 562), so that importing the plugin stays as light as pytest needs it to be.
The functions for scripts and notebooks are in :mod:`pytest_goblin.api`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # the same names, for type checkers (redundant aliases re-export them)
    from pytest_goblin.agent.backends import Backend as Backend
    from pytest_goblin.errors import GoblinError as GoblinError
    from pytest_goblin.errors import OutOfMemory as OutOfMemory
    from pytest_goblin.errors import RunFailed as RunFailed
    from pytest_goblin.errors import UnsupportedConfig as UnsupportedConfig
    from pytest_goblin.errors import WorkloadError as WorkloadError
    from pytest_goblin.kb.loader import KnowledgeBase as KnowledgeBase
    from pytest_goblin.kb.loader import MatchResult as MatchResult
    from pytest_goblin.kb.schema import Rule as Rule
    from pytest_goblin.plugin.settings import GoblinSettings as GoblinSettings
    from pytest_goblin.report.session_report import SessionReport as SessionReport
    from pytest_goblin.runner.device_session import DeviceRunner as DeviceRunner
    from pytest_goblin.runner.protocol import Runner as Runner
    from pytest_goblin.schemas import DeviceInfo as DeviceInfo
    from pytest_goblin.schemas import Report as Report
    from pytest_goblin.schemas import RunMetrics as RunMetrics
    from pytest_goblin.schemas import WorkloadConfig as WorkloadConfig
    from pytest_goblin.schemas import WorkloadResult as WorkloadResult
    from pytest_goblin.schemas import WorkloadSettings as WorkloadSettings
    from pytest_goblin.workload.read import Workload as Workload

_EXPORTS = {
    # the hooks' arguments and results (pytest_goblin.plugin.hookspecs)
    "Rule": "pytest_goblin.kb.schema",
    "SessionReport": "pytest_goblin.report.session_report",
    "Backend": "pytest_goblin.agent.backends",
    "DeviceRunner": "pytest_goblin.runner.device_session",
    "Runner": "pytest_goblin.runner.protocol",
    "GoblinSettings": "pytest_goblin.plugin.settings",
    # what they carry
    "WorkloadResult": "pytest_goblin.schemas",
    "WorkloadConfig": "pytest_goblin.schemas",
    "WorkloadSettings": "pytest_goblin.schemas",
    "RunMetrics": "pytest_goblin.schemas",
    "DeviceInfo": "pytest_goblin.schemas",
    "Report": "pytest_goblin.schemas",
    "Workload": "pytest_goblin.workload.read",
    "KnowledgeBase": "pytest_goblin.kb.loader",
    "MatchResult": "pytest_goblin.kb.loader",
    # the errors to catch
    "GoblinError": "pytest_goblin.errors",
    "WorkloadError": "pytest_goblin.errors",
    "RunFailed": "pytest_goblin.errors",
    "OutOfMemory": "pytest_goblin.errors",
    "UnsupportedConfig": "pytest_goblin.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Load an exported type from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_goblin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
