"""Nothing lost: a long run's findings survive whatever goes wrong around them (issue 18,
cases 5-9).

An output that cannot be written is reported at the end with its path and reason, after
the summary, while every other output is still written, and the exit status is pytest's
internal-error status. ``--goblin-fix`` never overwrites what it must not and says what
it skipped; one absurd number ends one item, not the session; report paths that are
symlinks are written through and device nodes are never replaced; a corrupt saved run
is refused instead of putting NaN into a report; run numbers are never shared.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin import history
from pytest_goblin.schemas import PatchSummary, WorkloadResult
from pytest_goblin.workload.fix import NOT_WRITTEN, fix_summary

GATE = ("-p", "no:cacheprovider", "--goblin", "--goblin-fake")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A failing and a passing workload: both must reach every output that can be written."""
    (pytester.path / "w").mkdir()
    (pytester.path / "w" / "mistuned.goblin.yaml").write_text(MISTUNED_YAML)
    (pytester.path / "w" / "tuned.goblin.yaml").write_text(TUNED_YAML)
    return pytester


def all_outputs(*extra: str) -> tuple[str, ...]:
    """Every report option, each at its usual place unless ``extra`` overrides it."""
    return (
        "--goblin-json=out/report.json",
        "--goblin-md=out/summary.md",
        "--goblin-html=out/report.html",
        "--goblin-events=out/events.jsonl",
        "--goblin-save=main",
        *extra,
    )


def assert_findings_kept(result: pytest.RunResult, unwritten: str, reason: str) -> None:
    """The summary is there, the unwritable output is named last with its reason, and the
    exit status says an internal problem occurred."""
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    output = result.stdout.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(
        [
            "*= FAILURES =*",
            "*= goblin =*",
            "llama-mistuned * FAILED*",
            "goblin: 1 failed, 1 passed, *",
            f"goblin: could not write {unwritten}: {reason}",
            "goblin: the run's results are above; the exit status is pytest's internal-error "
            "status (3)",
        ]
    )


def written(pytester: pytest.Pytester, *names: str) -> list[str]:
    return [name for name in names if (pytester.path / name).is_file()]


OTHERS = ("out/report.json", "out/summary.md", "out/report.html", "out/events.jsonl")


def test_a_json_report_path_that_is_a_directory_loses_nothing_else(
    project: pytest.Pytester,
) -> None:
    (project.path / "out" / "report.json").mkdir(parents=True)
    result = project.runpytest(*GATE, *all_outputs(), "w")
    where = project.path / "out" / "report.json"
    assert_findings_kept(result, f"JSON report {where}", "a directory; refusing to replace it")
    assert written(project, *OTHERS) == list(OTHERS[1:])
    assert len(history.list_runs(project.path / ".goblin")) == 1


def test_an_unwritable_report_directory_loses_nothing_else(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("a file where a directory should be")
    result = project.runpytest(*GATE, *all_outputs("--goblin-html=blocker/report.html"), "w")
    where = project.path / "blocker" / "report.html"
    assert_findings_kept(result, f"HTML report {where}", "Not a directory")
    assert written(project, *OTHERS) == ["out/report.json", "out/summary.md", "out/events.jsonl"]


def test_a_full_disk_loses_no_finding(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No space left: every file fails, the terminal still has every finding."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = project.runpytest(*GATE, "--goblin-json=out/report.json", "w")
    where = project.path / "out" / "report.json"
    assert_findings_kept(result, f"JSON report {where}", "No space left on device")
    assert list((project.path / "out").iterdir()) == []  # no temporary file left behind


def test_unwritable_history_storage_loses_nothing_else(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("")
    project.makeini("[pytest]\ngoblin_storage = blocker/store\n")
    result = project.runpytest(*GATE, *all_outputs(), "w")
    where = project.path / "blocker" / "store" / "runs"
    assert_findings_kept(result, f"saved run under {where}", "Not a directory")
    assert written(project, *OTHERS) == list(OTHERS)


def test_an_unwritable_event_log_loses_nothing_else(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("")
    result = project.runpytest(*GATE, *all_outputs("--goblin-events=blocker/e.jsonl"), "w")
    where = project.path / "blocker" / "e.jsonl"
    assert_findings_kept(result, f"event log {where}", "File exists")
    assert written(project, *OTHERS) == list(OTHERS[:3])


def test_a_lone_surrogate_in_a_workload_is_its_item_error_and_every_report_is_written(
    project: pytest.Pytester,
) -> None:
    """``"\\udfff"`` in a JSON workload's extras ended the session in a traceback."""
    data = {**yaml.safe_load(MISTUNED_YAML), "name": "odd", "extras": {"note": "\udfff"}}
    (project.path / "w" / "odd.goblin.json").write_text(json.dumps(data))
    result = project.runpytest(*GATE, *all_outputs(), "w")
    result.assert_outcomes(failed=1, passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["w/odd.goblin.json: field 'extras.note': holds a lone surrogate escape *"]
    )
    report = json.loads((project.path / "out" / "report.json").read_text(encoding="utf-8"))
    assert len(report["workloads"]) == 3
    assert written(project, *OTHERS) == list(OTHERS)


def test_a_failing_custom_reporter_leaves_the_built_in_outputs(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        def pytest_goblin_report(report, config):
            raise RuntimeError("dashboard down")
        """
    )
    result = project.runpytest(*GATE, *all_outputs(), "w")
    assert_findings_kept(
        result, "a pytest_goblin_report reporter failed", "RuntimeError: dashboard down"
    )
    assert written(project, *OTHERS) == list(OTHERS)


# --- case 6: --goblin-fix -------------------------------------------------------------


def fixing(pytester: pytest.Pytester) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest(*GATE, "--goblin-fix", "--goblin-json=out.json", "w")
    report = json.loads((pytester.path / "out.json").read_text())
    return result, {w["name"]: w for w in report["workloads"]}


def test_fix_leaves_a_read_only_file_alone_and_says_so(project: pytest.Pytester) -> None:
    path = project.path / "w" / "mistuned.goblin.yaml"
    path.chmod(0o444)
    result, workloads = fixing(project)
    result.assert_outcomes(failed=1, passed=1)
    assert path.read_text() == MISTUNED_YAML
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert workloads["llama-mistuned"]["fixed"] is False
    result.stdout.fnmatch_lines(
        [
            "--goblin-fix did not write 1 patch(es):",
            "  w/mistuned.goblin.yaml: w/mistuned.goblin.yaml is read-only (mode 0444)",
        ]
    )


def test_fix_that_cannot_write_keeps_the_item_in_every_report(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory the user may not write to (simulated: the tests may run as root)."""
    from pytest_goblin.workload import fix

    def denied(path: Path, text: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(fix, "write_text", denied)
    result, workloads = fixing(project)
    result.assert_outcomes(failed=1, passed=1)
    assert workloads["llama-mistuned"]["outcome"] == "failed"
    assert workloads["llama-mistuned"]["fixed"] is False
    result.stdout.fnmatch_lines(
        ["llama-mistuned * FAILED*", "  w/mistuned.goblin.yaml: cannot write *: Permission denied"]
    )
    assert "PermissionError" not in result.stdout.str()


EDITING_RIG = """
from pathlib import Path

from pytest_goblin.runner.device_session import SimulatedDevice


class EditingRig:
    '''Numbers from the analytic model, reported as measured; its first run edits the
    workload file, as a person saving the file during a long audit would.'''

    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Rig"})
        self.edited = False

    def unsupported(self, config):
        return None

    def run(self, config, steps):
        if not self.edited:
            path = Path("w/mistuned.goblin.yaml")
            path.write_text(path.read_text() + "# edited during the audit\\n")
            self.edited = True
        return self.projector.run(config, steps).model_copy(update={"projected": False})

    def close(self):
        pass


def pytest_goblin_make_runner(device, settings):
    return EditingRig() if device is None and not settings.fake else None
"""


def test_fix_says_in_the_terminal_when_a_file_changed_since_its_audit(
    project: pytest.Pytester,
) -> None:
    """The skipped patch used to be mentioned only in the JSON report."""
    project.makeconftest(EDITING_RIG)
    result = project.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-fix", "--goblin-max-repeats=2", "w"
    )
    result.assert_outcomes(failed=1, passed=1)
    text = (project.path / "w" / "mistuned.goblin.yaml").read_text()
    assert text == MISTUNED_YAML + "# edited during the audit\n"
    result.stdout.fnmatch_lines(
        [
            "--goblin-fix did not write 1 patch(es):",
            "  w/mistuned.goblin.yaml: w/mistuned.goblin.yaml changed since it was audited",
        ]
    )


def test_fix_summary_names_the_patches_it_did_not_write() -> None:
    result = WorkloadResult(
        nodeid="w.yaml::w",
        path="w.yaml",
        name="w",
        outcome="failed",
        threshold=0.1,
        patch=PatchSummary(changes=[], diff=""),
        notes=[NOT_WRITTEN + "w.yaml changed since it was audited"],
    )
    assert fix_summary([result]) == (
        "--goblin-fix did not write 1 patch(es):\n  w.yaml: w.yaml changed since it was audited"
    )


# --- case 7: one absurd number ends one item -----------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_number_of_thousands_of_digits_ends_its_item_not_the_session(
    project: pytest.Pytester, suffix: str
) -> None:
    digits = "9" * 5000
    text = (
        f"model: llama-3-8b\nbatch_size: {digits}\n"
        if suffix == ".yaml"
        else f'{{"model": "llama-3-8b", "batch_size": {digits}}}'
    )
    (project.path / "w" / f"huge.goblin{suffix}").write_text(text)
    result = project.runpytest(*GATE, "w")
    result.assert_outcomes(failed=1, passed=1, errors=1)
    assert "Interrupted" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [f"w/huge.goblin{suffix}: a number with more than 4300 digits; no workload setting *"]
    )


# --- case 8: report paths as a careful tool treats them --------------------------------


def test_a_report_path_that_is_a_symlink_is_written_through(project: pytest.Pytester) -> None:
    (project.path / "reports").mkdir()
    (project.path / "reports" / "real.json").write_text("old")
    (project.path / "link.json").symlink_to("reports/real.json")
    project.runpytest(*GATE, "--goblin-json=link.json", "w")
    assert (project.path / "link.json").is_symlink()
    report = json.loads((project.path / "reports" / "real.json").read_text())
    assert len(report["workloads"]) == 2


def test_a_device_node_is_never_replaced(project: pytest.Pytester) -> None:
    """``--goblin-json=/dev/full`` as root once replaced the device with a regular file."""
    before = os.stat("/dev/full")
    assert stat.S_ISCHR(before.st_mode)
    result = project.runpytest(*GATE, "--goblin-json=/dev/full", "w")
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert_findings_kept(
        result, "JSON report /dev/full", "not a regular file; refusing to replace it"
    )


# --- case 9: saved runs ---------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -5, "NaN", "Infinity", "-Infinity"])
def test_a_saved_run_with_impossible_numbers_is_refused(
    tmp_path: Path, passed_result: WorkloadResult, value: object
) -> None:
    path = history.save(tmp_path, "main", [passed_result], None)
    text = path.read_text()
    number = json.dumps(passed_result.baseline.tokens_per_sec if passed_result.baseline else 0)
    corrupt = text.replace(f'"tokens_per_sec": {number}', f'"tokens_per_sec": {value}', 1)
    assert corrupt != text
    path.write_text(corrupt)
    with pytest.raises(history.HistoryError, match=r"0001_main\.json: saved run is corrupt"):
        history.load_run(path)


def test_a_corrupt_saved_run_never_puts_nan_into_the_json_report(
    project: pytest.Pytester,
) -> None:
    project.runpytest(*GATE, "--goblin-save=main", "w")
    (saved,) = history.list_runs(project.path / ".goblin")
    data = json.loads(saved.path.read_text())
    for entry in data["workloads"].values():
        entry["baseline"]["tokens_per_sec"] = float("nan")
    saved.path.write_text(json.dumps(data))
    result = project.runpytest(*GATE, "--goblin-compare=main", "--goblin-json=out.json", "w")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --goblin-compare: *0001_main.json: saved run is corrupt*"])
    assert not (project.path / "out.json").exists()


def test_sessions_saving_at_once_under_different_names_never_share_a_number(
    tmp_path: Path, passed_result: WorkloadResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second session listed the runs before the first one's file appeared."""
    first = history.save(tmp_path, "main", [passed_result], None)
    monkeypatch.setattr(history, "list_runs", lambda storage: [])
    second = history.save(tmp_path, "feature", [passed_result], None)
    assert (first.name, second.name) == ("0001_main.json", "0002_feature.json")


@pytest.fixture
def passed_result(pytester: pytest.Pytester) -> WorkloadResult:
    """A real result with numbers, from a projected run of the tuned workload."""
    (pytester.path / "t.goblin.yaml").write_text(TUNED_YAML)
    pytester.runpytest(*GATE, "--goblin-json=r.json", "t.goblin.yaml")
    (data,) = json.loads((pytester.path / "r.json").read_text())["workloads"]
    return WorkloadResult.model_validate(data)


def test_an_unforeseen_exception_in_an_audit_still_reaches_every_report(
    project: pytest.Pytester,
) -> None:
    """A plugin's runner hook with a bug stands for any unforeseen exception."""
    project.makeconftest(
        """
        def pytest_goblin_make_runner(device, settings, config):
            raise RuntimeError("a bug")
        """
    )
    result = project.runpytest(*GATE, "--goblin-json=out.json", "w")
    result.assert_outcomes(failed=2)
    report = json.loads((project.path / "out.json").read_text())
    errors = {w["path"]: w["error"] for w in report["workloads"]}
    assert errors == {
        path: f"{path}: internal error: RuntimeError: a bug"
        for path in ("w/mistuned.goblin.yaml", "w/tuned.goblin.yaml")
    }
