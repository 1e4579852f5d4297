"""What one audit knows: its context (device, rules, settings) and what tools produced.

Tools keep their outputs here under short ids (``cfg-1``, ``run-2``, ``patch-1``)
so that a model can pass an id instead of copying a whole object back: the
model is never the data bus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytest_goblin.schemas import DeviceInfo, Patch, Report, RunMetrics, WorkloadConfig

if TYPE_CHECKING:
    from pytest_goblin.agent.backends import BackendFactory
    from pytest_goblin.kb.loader import KnowledgeBase, MatchResult
    from pytest_goblin.workload import Workload


class Runner(Protocol):
    """Anything that turns a config into RunMetrics on one device."""

    info: DeviceInfo

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics: ...


@dataclass(frozen=True)
class AuditContext:
    """Everything an audit needs from the session, fixed for its whole run."""

    runner: Runner
    projector: Runner
    kb: KnowledgeBase
    backend: str = "auto"
    ignore: frozenset[str] = frozenset()
    model: str | None = None
    base_url: str | None = None
    backend_factory: BackendFactory | None = None
    """Asked for the backend before the built-in ones (the make-backend plugin hook)."""

    @property
    def platform(self) -> str:
        return self.runner.info.platform


@dataclass
class AuditState:
    context: AuditContext
    workload: Workload | None = None
    configs: dict[str, WorkloadConfig] = field(default_factory=dict)
    metrics: dict[str, RunMetrics] = field(default_factory=dict)
    patches: dict[str, Patch] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)
    patch_of_config: dict[str, str] = field(default_factory=dict)
    config_of_patch: dict[str, str] = field(default_factory=dict)
    config_of_run: dict[str, WorkloadConfig] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    _matches: dict[str, MatchResult] = field(default_factory=dict)

    def match(self, config: WorkloadConfig) -> MatchResult:
        """The knowledge base's match for a config on this device, computed once per config."""
        key = config.model_dump_json()
        if key not in self._matches:
            self._matches[key] = self.context.kb.match(
                config, self.context.platform, ignore=self.context.ignore
            )
        return self._matches[key]

    def store(self, table: dict[str, Any], prefix: str, value: Any) -> str:
        key = f"{prefix}-{len(table) + 1}"
        table[key] = value
        return key

    @property
    def root_config_id(self) -> str | None:
        """The config parse_config read from the audited file, if any."""
        return next(iter(self.configs), None)
