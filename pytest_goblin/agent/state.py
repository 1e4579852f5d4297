"""What one audit knows: its context (device, rules, settings) and what tools produced.

Tools keep their outputs here under short ids (``cfg-1``, ``run-2``, ``patch-1``)
so that a model can pass an id instead of copying a whole object back: the
model is never the data bus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_goblin.runner.protocol import Runner
from pytest_goblin.schemas import DeviceInfo, Patch, Report, RunMetrics, WorkloadConfig

if TYPE_CHECKING:
    from pytest_goblin.agent.backends import BackendFactory
    from pytest_goblin.agent.backends.breaker import BackendBreaker
    from pytest_goblin.kb.facts import AuditFacts
    from pytest_goblin.kb.loader import KnowledgeBase, MatchResult
    from pytest_goblin.workload.read import Workload


_RELEASE = re.compile(r"\d+(?:\.\d+)*")
"""The release part of a version string: ``2.5.1+rocm6.2`` → 2.5.1, ``6.2.41133-dd7f95766``
(torch.version.hip) → 6.2.41133."""


def known_versions(info: DeviceInfo) -> dict[str, str]:
    """The versions a rule's ``requires`` is checked against: torch, rocm and cuda where
    the device reports them, and an NVIDIA GPU's compute capability (``sm_90`` → 9.0).
    What the device does not report stays unknown, which no rule holds against it."""
    versions = {}
    for component, raw in (
        ("torch", info.torch_version),
        ("rocm", info.rocm_version),
        ("cuda", info.cuda_version),
    ):
        release = _RELEASE.match(raw or "")
        if release:
            versions[component] = release.group(0)
    if info.arch and info.arch.startswith("sm_") and info.arch[3:].isdigit():
        digits = info.arch[3:]
        versions["compute_capability"] = f"{digits[:-1]}.{digits[-1]}"
    return versions


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
    backend_timeout_s: float | None = None
    """Each LLM request's connect-and-read limit (``--goblin-backend-timeout``)."""
    breaker: BackendBreaker | None = None
    """The session's count of workloads the backend failed in a row: past its limit, an
    audit is not sent and fails at once with the same message."""
    measure_candidates: int = 1
    """How many of the search's best candidates the audit benchmarks: more than one only
    in measured mode with room in ``--goblin-time-budget``, where the analytic model's
    ranking may be wrong and a measurement is worth its time."""

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
    profile: RunMetrics | None = None
    """The audited config's profile run: its peak memory and waste buckets are facts."""
    projections: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    """Each proposed patch's projected speedup and predicted peak memory (GB): the
    search's ranking."""
    _matches: dict[str, MatchResult] = field(default_factory=dict)
    _facts: AuditFacts | None = None
    _projected: dict[str, RunMetrics] = field(default_factory=dict)
    _searches: dict[tuple[tuple[str, ...], int], list[tuple[Any, float]]] = field(
        default_factory=dict
    )

    def project(self, config: WorkloadConfig) -> RunMetrics:
        """The projector's one-step run of ``config``. An analytic projector's is made once
        per config in an audit: the search prices every candidate against the same
        baseline. A projector without a catalogue device may measure, and runs each time."""
        if getattr(self.context.projector, "spec", None) is None:
            return self.context.projector.run(config, 1)
        key = config.model_dump_json()
        if key not in self._projected:
            self._projected[key] = self.context.projector.run(config, 1)
        return self._projected[key]

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        """The session device's run of ``config`` for ``steps`` steps. When that device is
        the analytic projector itself (``--goblin-fake``), its runs of one config differ in
        nothing but the step count, so the audit's projection of the config is reused."""
        runner = self.context.runner
        if steps < 1 or runner is not self.context.projector:
            return runner.run(config, steps)
        if getattr(runner, "spec", None) is None:
            return runner.run(config, steps)
        return self.project(config).model_copy(update={"steps": steps})

    def search(self, queries: list[str], top_k: int) -> list[tuple[Any, float]]:
        """The knowledge base's text search, once per query in an audit (each patch round
        asks with the profile's symptoms again)."""
        from pytest_goblin.kb.search import search

        key = (tuple(queries), top_k)
        if key not in self._searches:
            self._searches[key] = search(self.context.kb, queries, top_k=top_k)
        return self._searches[key]

    def match(self, config: WorkloadConfig) -> MatchResult:
        """The knowledge base's match for a config on this device, computed once per config
        (and again once the profile changes the facts)."""
        key = config.model_dump_json()
        if key not in self._matches:
            self._matches[key] = self.context.kb.match(
                config,
                self.context.platform,
                ignore=self.context.ignore,
                versions=known_versions(self.context.runner.info),
                facts=self.facts,
            )
        return self._matches[key]

    def set_profile(self, metrics: RunMetrics) -> None:
        """Record the audited config's profile: rules now see its memory and buckets."""
        self.profile = metrics
        self._facts = None
        self._matches.clear()

    @property
    def facts(self) -> AuditFacts:
        """What rules see of the device and the profile, and the fit guard's memory model.

        Before a profile exists the memory model is the analytic projection unscaled;
        after, it is scaled by the profile's peak (``pytest_goblin.kb.facts``)."""
        if self._facts is None:
            from pytest_goblin.kb.facts import audit_facts

            info = self.context.runner.info
            spec = getattr(self.context.projector, "spec", None)
            root = self.configs.get(self.root_config_id or "")
            self._facts = audit_facts(
                device_name=spec.name if spec is not None else info.name,
                platform=info.platform,
                memory_gb=info.memory_gb,
                baseline=root if root is not None else WorkloadConfig(),
                profile=self.profile,
                peak_model=self.projected_peak,
            )
        return self._facts

    def projected_peak(self, config: WorkloadConfig) -> float:
        """The analytic model's peak memory of ``config`` on this device, GB, fit or not."""
        from pytest_goblin.errors import OutOfMemory
        from pytest_goblin.runner.analytic import AnalyticModel

        spec = getattr(self.context.projector, "spec", None)
        if spec is not None:
            return AnalyticModel(spec).memory(config).total_gb
        try:
            return self.context.projector.run(config, 1).hbm_peak_gb
        except OutOfMemory as exc:
            if exc.memory is None:  # a projector that measures: no estimate to read
                raise
            return exc.memory.total_gb

    def store(self, table: dict[str, Any], prefix: str, value: Any) -> str:
        key = f"{prefix}-{len(table) + 1}"
        table[key] = value
        return key

    @property
    def root_config_id(self) -> str | None:
        """The config parse_config read from the audited file, if any."""
        return next(iter(self.configs), None)
