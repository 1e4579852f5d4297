"""The extension hooks as a plugin author meets them: rules, reporters, backends, runners."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import paths
from helpers.workloads import MISTUNED_YAML, TUNED_YAML

REPORT_PLUGIN = paths.TESTS / "helpers" / "goblin_report_plugin.py"
RECEIVED = "received.json"
"""Where the report plugin writes what it received."""

WORKLOADS = {"w/bad.goblin.yaml": MISTUNED_YAML, "w/good.goblin.yaml": TUNED_YAML}
NODEIDS = ["w/bad.goblin.yaml::llama-mistuned", "w/good.goblin.yaml::llama-tuned"]

RULE = {
    "id": "team-scratch-on-nvme",
    "category": "env",
    "kind": "advisory",
    "platforms": ["rocm-instinct"],
    "when": {"precision": "fp32"},
    "advice": "Put the scratch directory on the node's NVMe.",
    "symptom": "slow checkpoint writes",
    "expected_impact": "faster checkpoint writes",
    "citation": "https://example.com/team/nvme",
    "examples": {"matches": [{"precision": "fp32"}], "not_matches": [{"precision": "bf16"}]},
}

RULE_PLUGIN = f"""
RULE = {RULE!r}

def pytest_goblin_rules(config):
    return [RULE]
"""


@pytest.fixture(autouse=True)
def workloads(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "GOBLIN_AGENT_BACKEND",
        "GOBLIN_FAKE",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
        "GOBLIN_QWEN_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    for relpath, text in WORKLOADS.items():
        path = pytester.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def received(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads((pytester.path / RECEIVED).read_text())
    return calls


# --- pytest_goblin_report --------------------------------------------------------------------


def test_a_reporter_plugin_receives_every_workload_once(pytester: pytest.Pytester) -> None:
    run_goblin(pytester, "-p", "helpers.goblin_report_plugin", "w").assert_outcomes(
        failed=1, passed=1
    )
    (call,) = received(pytester)
    assert call["outcomes"] == {NODEIDS[0]: "failed", NODEIDS[1]: "passed"}
    assert (
        call["device"],
        call["backend"],
        call["threshold"],
        call["projected"],
        call["exitstatus"],
    ) == ("AMD Instinct MI300X", "planner", 0.10, True, 1)


def test_under_xdist_the_reporter_runs_once_on_the_controller_with_every_workload(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(REPORT_PLUGIN.read_text())  # workers load a conftest wherever they run
    run_goblin(pytester, "-p", "xdist", "-n", "2", "w")
    (call,) = received(pytester)
    assert sorted(call["outcomes"]) == NODEIDS
    assert call["on_worker"] is False


def test_a_reporters_lines_close_the_goblin_section(pytester: pytest.Pytester) -> None:
    result = run_goblin(pytester, "-p", "helpers.goblin_report_plugin", "w")
    result.stdout.fnmatch_lines(["dashboard: posted 2 workloads", "", "goblin: 1 failed, *"])


def test_the_built_in_outputs_are_written_before_a_custom_reporter_runs(
    pytester: pytest.Pytester,
) -> None:
    run_goblin(pytester, "-p", "helpers.goblin_report_plugin", "--goblin-json", "out.json", "w")
    (call,) = received(pytester)
    assert call["lines_before"] == [f"JSON report: {pytester.path / 'out.json'}"]


def test_the_built_in_reporters_are_a_plugin_that_can_be_turned_off(
    pytester: pytest.Pytester,
) -> None:
    run_goblin(pytester, "-p", "no:goblin-reporters", "--goblin-json", "out.json", "w")
    assert not (pytester.path / "out.json").exists()


# --- pytest_goblin_rules ---------------------------------------------------------------------


def test_plugin_rules_join_the_knowledge_base_and_apply(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RULE_PLUGIN)
    run_goblin(pytester, "w/bad.goblin.yaml", "--goblin-json", "out.json")
    (workload,) = json.loads((pytester.path / "out.json").read_text())["workloads"]
    assert "team-scratch-on-nvme" in [advisory["id"] for advisory in workload["advisories"]]


def test_goblin_rules_lists_a_plugin_rule_with_the_file_that_contributes_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RULE_PLUGIN)
    result = pytester.runpytest("--goblin-rules", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "team-scratch-on-nvme (user)*advisory*rocm-instinct*",
            f"user rules from {pytester.path / 'conftest.py'}: team-scratch-on-nvme",
        ]
    )


def test_a_plugin_rule_with_a_built_in_id_replaces_the_built_in(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RULE_PLUGIN.replace("team-scratch-on-nvme", "numa-balancing-off"))
    result = pytester.runpytest("--goblin-rules", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["user rule numa-balancing-off replaces the built-in rule"])


def test_an_invalid_plugin_rule_is_a_usage_error_naming_the_file_the_rule_and_the_field(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RULE_PLUGIN.replace("'kind': 'advisory'", "'kind': 'advise'"))
    result = run_goblin(pytester, "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*goblin knowledge base: {pytester.path / 'conftest.py'} (pytest_goblin_rules of plugin "
            "*): rule 'team-scratch-on-nvme' (#1): kind: *"
        ]
    )


def test_a_plugin_rule_with_the_id_of_a_rule_pack_rule_is_a_usage_error_naming_both(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RULE_PLUGIN)
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules/team.yaml").write_text(json.dumps([RULE]))
    result = run_goblin(pytester, "--goblin-kb", "rules", "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*duplicate rule id 'team-scratch-on-nvme' in rules/team.yaml and "
            f"{pytester.path / 'conftest.py'}"
        ]
    )


# --- pytest_goblin_make_backend --------------------------------------------------------------

BACKEND_PLUGIN = """
from pathlib import Path

from pytest_goblin.agent.backends.planner import PlannerBackend


class Scripted(PlannerBackend):
    name = "scripted"

    def add_user_message(self, text):
        Path("audited.txt").open("a").write(text + "\\n")
        super().add_user_message(text)


def pytest_goblin_make_backend(name, system_prompt):
    return Scripted(system_prompt) if name == "scripted" else None
"""


def test_a_backend_plugin_drives_the_audits_under_its_own_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BACKEND_PLUGIN)
    result = run_goblin(pytester, "--goblin-backend", "scripted", "--goblin-json", "out.json", "w")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*backend: scripted*", "agent: scripted; requested"])
    assert json.loads((pytester.path / "out.json").read_text())["backend"] == "scripted"
    assert len((pytester.path / "audited.txt").read_text().splitlines()) == 2


def test_a_backend_plugin_leaves_the_names_it_does_not_know_to_the_built_in_backends(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BACKEND_PLUGIN)
    run_goblin(pytester, "--goblin-backend", "planner", "w").assert_outcomes(failed=1, passed=1)
    assert not (pytester.path / "audited.txt").exists()


def test_an_unknown_backend_name_without_a_backend_plugin_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    result = run_goblin(pytester, "--goblin-backend", "scripted", "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--goblin-backend: backend 'scripted' is not one of auto, "
            "planner, claude, qwen (and no plugin implements "
            "pytest_goblin_make_backend)"
        ]
    )


# --- pytest_goblin_make_runner ---------------------------------------------------------------

RUNNER_PLUGIN = """
from pathlib import Path

from pytest_goblin.runner.device_session import SimulatedDevice


class Rig:
    '''The team's rig: numbers from the analytic MI300X model, reported as measured.'''

    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Test Rig"})

    def unsupported(self, config):
        return None

    def run(self, config, steps):
        return self.projector.run(config, steps).model_copy(update={"projected": False})

    def close(self):
        Path("rig-closed.txt").write_text("closed")


def pytest_goblin_make_runner(device, settings):
    return Rig() if device is None and not settings.fake else None
"""


def test_a_runner_plugin_measures_the_workloads_and_is_closed_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RUNNER_PLUGIN)
    result = pytester.runpytest(
        "--goblin", "-p", "no:cacheprovider", "--goblin-json", "out.json", "w"
    )
    result.assert_outcomes(failed=1, passed=1)
    document = json.loads((pytester.path / "out.json").read_text())
    assert (document["device"]["name"], document["projected"]) == ("Test Rig", False)
    assert {w["device"]["name"] for w in document["workloads"]} == {"Test Rig"}
    result.stdout.fnmatch_lines(
        ["goblin: 1 failed, 1 passed, 0 inconclusive, 0 errors (measured on Test Rig)"]
    )
    assert (pytester.path / "rig-closed.txt").read_text() == "closed"


def test_a_runner_plugin_that_returns_none_leaves_the_device_to_the_built_in_runners(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RUNNER_PLUGIN)
    result = run_goblin(pytester, "w")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*(projected on AMD Instinct MI300X (simulated))"])
    assert not (pytester.path / "rig-closed.txt").exists()
