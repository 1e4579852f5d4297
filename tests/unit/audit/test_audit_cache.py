"""The audit cache: an unchanged projected audit is reused from pytest's cache directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.dict_store import DictStore
from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin.audit.cache import AuditCache
from pytest_goblin.audit.run import audit_workload
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.runner.device_session import DeviceSession, SimulatedDevice
from pytest_goblin.schemas import RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

pytestmark = pytest.mark.usefixtures("planner_only")

TEAM_RULE = """\
- id: team-bigger-batch
  category: memory
  platforms: [all]
  when: {batch_size: {lt: 8}}
  set: {batch_size: 8}
  symptom: device memory left unused
  expected_impact: fuller micro-batches
  citation: https://example.com/team-notes
  examples:
    matches: [{batch_size: 2}]
    not_matches: [{batch_size: 8}]
"""


@pytest.fixture
def planner_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "GOBLIN_THRESHOLD",
        "GOBLIN_AGENT_BACKEND",
        "GOBLIN_FAKE",
        "GOBLIN_FAKE_DEVICE",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
        "GOBLIN_QWEN_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the simulated device's runs: a reused audit runs nothing."""
    calls: list[int] = []
    real = SimulatedDevice.run

    def counted(self: SimulatedDevice, config: WorkloadConfig, steps: int) -> RunMetrics:
        calls.append(steps)
        return real(self, config, steps)

    monkeypatch.setattr(SimulatedDevice, "run", counted)
    return calls


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "workloads").mkdir()
    (pytester.path / "workloads" / "w.goblin.yaml").write_text(MISTUNED_YAML)
    return pytester


def audit(pytester: pytest.Pytester, *args: str) -> dict[str, Any]:
    """Run the gate with a JSON report; the report's one workload."""
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-json", "out.json", *args, "workloads")
    (workload,) = json.loads((pytester.path / "out.json").read_text())["workloads"]
    return dict(workload)


def entries(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".pytest_cache" / "v" / "goblin" / "audit").iterdir())


def test_a_second_run_reuses_the_audit_without_running_anything(
    project: pytest.Pytester, runs: list[int]
) -> None:
    first = audit(project)
    assert runs and first["cached"] is False
    runs.clear()
    second = audit(project)
    assert runs == []
    assert second["cached"] is True
    assert second["outcome"] == first["outcome"] == "failed"
    assert second["speedup"] == first["speedup"]
    assert second["patch"] == first["patch"]


def test_a_reused_audit_is_marked_in_the_summary(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    project.runpytest("--goblin", "--goblin-fake", "workloads")
    result = project.runpytest("--goblin", "--goblin-fake", "workloads")
    result.stdout.fnmatch_lines(
        [
            "cache: 1 of 1 audits reused from an earlier run with the same inputs "
            "(--goblin-no-cache audits afresh)",
            "llama-mistuned *cached*",
        ]
    )


def test_the_verdict_is_decided_again_from_the_reused_report(project: pytest.Pytester) -> None:
    assert audit(project)["outcome"] == "failed"
    relaxed = audit(project, "--goblin-threshold", "9")
    assert relaxed["cached"] is True
    assert relaxed["outcome"] == "passed"


def test_a_changed_workload_is_audited_afresh(project: pytest.Pytester, runs: list[int]) -> None:
    audit(project)
    runs.clear()
    (project.path / "workloads" / "w.goblin.yaml").write_text(TUNED_YAML)
    fresh = audit(project)
    assert runs
    assert fresh["cached"] is False
    assert fresh["outcome"] == "passed"


def test_a_changed_knowledge_base_audits_afresh(project: pytest.Pytester, runs: list[int]) -> None:
    (project.path / "rules").mkdir()
    pack = project.path / "rules" / "team.yaml"
    pack.write_text(TEAM_RULE)
    audit(project, "--goblin-kb", "rules")
    runs.clear()
    pack.write_text(TEAM_RULE.replace("fuller micro-batches", "fuller micro-batches, fewer steps"))
    fresh = audit(project, "--goblin-kb", "rules")
    assert runs
    assert fresh["cached"] is False


def test_goblin_no_cache_audits_afresh(project: pytest.Pytester, runs: list[int]) -> None:
    audit(project)
    runs.clear()
    fresh = audit(project, "--goblin-no-cache")
    assert runs
    assert fresh["cached"] is False


def test_without_the_cacheprovider_plugin_every_run_audits(
    project: pytest.Pytester, runs: list[int]
) -> None:
    audit(project, "-p", "no:cacheprovider")
    runs.clear()
    again = audit(project, "-p", "no:cacheprovider")
    assert runs
    assert again["cached"] is False


@pytest.mark.parametrize(
    "content",
    [
        "{not json at all",
        json.dumps({"version": 1, "report": {"speedup": "fast"}}),
        json.dumps({"version": 99, "report": {}}),
        json.dumps(["a", "list"]),
    ],
)
def test_a_corrupt_entry_is_ignored_and_replaced(
    project: pytest.Pytester, runs: list[int], content: str
) -> None:
    audit(project)
    (entry,) = entries(project)
    entry.write_text(content)
    runs.clear()
    fresh = audit(project)
    assert runs
    assert fresh["cached"] is False
    assert fresh["outcome"] == "failed"
    assert json.loads(entry.read_text())["version"] == 2


def test_an_edited_entry_is_not_trusted(project: pytest.Pytester, runs: list[int]) -> None:
    """A failing audit's cached numbers edited into a pass are a miss: the gate re-audits
    and fails again (issue 18, case 4)."""
    assert audit(project)["outcome"] == "failed"
    (entry,) = entries(project)
    data = json.loads(entry.read_text())
    report = data["report"]
    report["speedup"] = 1.0
    report["speedup_ci"] = [0.99, 1.01] if report.get("speedup_ci") else None
    report["patch"] = None
    entry.write_text(json.dumps(data))
    runs.clear()
    fresh = audit(project)
    assert runs
    assert fresh["cached"] is False
    assert fresh["outcome"] == "failed"


def test_an_entry_copied_under_another_key_is_not_trusted(
    mistuned: Workload, kb: KnowledgeBase
) -> None:
    """The digest binds the report to its key: a report saved for one set of inputs
    does not stand in for another."""
    store = DictStore()
    fake = GoblinSettings(enabled=True, fake=True, backend="planner")
    audit_workload(mistuned, DeviceSession("mi300x"), fake, kb, cache=AuditCache(store))
    ((key, entry),) = store.data.items()
    cache = AuditCache(store)
    assert cache.load(key) is not None
    store.data["goblin/audit/other"] = entry
    assert cache.load("goblin/audit/other") is None


def test_measured_audits_are_never_cached(mistuned: Workload, kb: KnowledgeBase) -> None:
    store = DictStore()
    measured = GoblinSettings(enabled=True, fake=False, backend="planner")
    outcome = audit_workload(
        mistuned, DeviceSession("mi300x"), measured, kb, cache=AuditCache(store)
    )
    assert outcome.report is not None and not outcome.cached
    assert store.data == {}


def test_a_plugin_backend_or_runner_is_part_of_the_key(
    mistuned: Workload, kb: KnowledgeBase
) -> None:
    store = DictStore()
    fake = GoblinSettings(enabled=True, fake=True, backend="planner")
    session = DeviceSession("mi300x")
    audit_workload(mistuned, session, fake, kb, cache=AuditCache(store))
    again = audit_workload(mistuned, session, fake, kb, cache=AuditCache(store))
    other = audit_workload(
        mistuned, session, fake, kb, cache=AuditCache(store, extensions=["acme_backend"])
    )
    assert again.cached
    assert not other.cached
    assert len(store.data) == 2
