"""Shared fixtures: an audit context on a simulated MI300X, workload files on disk, and
the results of auditing them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.sample_results import audited
from helpers.workloads import MISTUNED_YAML, TUNED_YAML, MeasuredDevice, WorkloadFactory
from pytest_goblin.agent.state import AuditContext, AuditState
from pytest_goblin.kb.loader import KnowledgeBase, load_kb
from pytest_goblin.runner.device_session import SimulatedDevice
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.workload.read import Workload, load_workload


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_kb()


@pytest.fixture(scope="session")
def device() -> SimulatedDevice:
    return SimulatedDevice("mi300x")


@pytest.fixture
def context(device: SimulatedDevice, kb: KnowledgeBase) -> AuditContext:
    return AuditContext(runner=device, projector=device, kb=kb, backend="planner")


@pytest.fixture
def workload(tmp_path: Path) -> WorkloadFactory:
    """Write YAML (or JSON, by file name) into tmp_path and load it as a workload.

    The display path is relative (``workloads/<name>``), as the plugin shows it.
    """

    def make(text: str = MISTUNED_YAML, filename: str = "w.goblin.yaml") -> Workload:
        path = tmp_path / "workloads" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return load_workload(path, display=f"workloads/{filename}")

    return make


@pytest.fixture
def mistuned(workload: WorkloadFactory) -> Workload:
    return workload(MISTUNED_YAML)


@pytest.fixture
def tuned(workload: WorkloadFactory) -> Workload:
    return workload(TUNED_YAML, filename="tuned.goblin.yaml")


@pytest.fixture
def state(context: AuditContext, mistuned: Workload) -> AuditState:
    """An audit of the mistuned workload before any tool ran."""
    return AuditState(context=context, workload=mistuned)


@pytest.fixture
def measured_context(device: SimulatedDevice, kb: KnowledgeBase) -> AuditContext:
    """Benchmarks count as measured; the simulated device is only the projector."""
    return AuditContext(runner=MeasuredDevice(), projector=device, kb=kb, backend="planner")


@pytest.fixture
def failed(mistuned: Workload, context: AuditContext) -> WorkloadResult:
    """The mistuned workload's result: a patch beats it (outcome failed)."""
    return audited(mistuned, context)


@pytest.fixture
def passed(tuned: Workload, context: AuditContext) -> WorkloadResult:
    """The tuned workload's result: nothing beats it (outcome passed)."""
    return audited(tuned, context)


OUTSIDE_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "HF_TOKEN",
    "GITHUB_STEP_SUMMARY",
    "CI",
    "BUILD_NUMBER",
)
"""Variables besides ``GOBLIN_*`` that change what the plugin or pytest does: ``CI`` and
``BUILD_NUMBER`` make pytest print short-summary messages whole (uncut), and
``GITHUB_STEP_SUMMARY`` makes the Markdown report append to the CI job's page."""


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every pytester run it makes, sees the same environment whatever
    machine runs it: no ``GOBLIN_*`` setting, API key or CI marker of the caller's, and
    an 80-column terminal (the short summary cuts each failure's message to the terminal
    width, so a wide terminal would show text an 80-column one cuts off)."""
    for var in [name for name in os.environ if name.startswith("GOBLIN_")]:
        monkeypatch.delenv(var)
    for var in OUTSIDE_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
