"""Where a relative path lands: from the ini file, relative to the ini file (as pytest
resolves its own ``paths`` values); from the command line, relative to where pytest runs.

Every test keeps the ini file in the project's root and runs pytest from a
subdirectory of it, the case in which the two rules differ.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import paths
from helpers.workloads import TUNED_YAML

EXAMPLE_RULES = paths.EXAMPLE_PROJECT / "rules" / "team.yaml"


@pytest.fixture
def sub(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A subdirectory of the project, holding one workload, where pytest runs."""
    directory = pytester.mkdir("sub")
    (directory / "w.goblin.yaml").write_text(TUNED_YAML)
    monkeypatch.chdir(directory)
    return directory


def write_ini(pytester: pytest.Pytester, text: str) -> None:
    (pytester.path / "pytest.ini").write_text(f"[pytest]\n{text}\n")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def test_goblin_json_is_relative_to_the_ini_file(pytester: pytest.Pytester, sub: Path) -> None:
    write_ini(pytester, "goblin_json = reports/goblin.json")
    run(pytester).assert_outcomes(passed=1)
    report = json.loads((pytester.path / "reports/goblin.json").read_text())
    assert [w["name"] for w in report["workloads"]] == ["llama-tuned"]
    assert not (sub / "reports").exists()


def test_goblin_json_on_the_command_line_is_relative_to_where_pytest_runs(
    pytester: pytest.Pytester,
    sub: Path,
) -> None:
    write_ini(pytester, "goblin_json = reports/goblin.json")
    run(pytester, "--goblin-json=here.json").assert_outcomes(passed=1)
    assert (sub / "here.json").is_file()
    assert not (pytester.path / "reports").exists()


def test_goblin_md_is_relative_to_the_ini_file(pytester: pytest.Pytester, sub: Path) -> None:
    write_ini(pytester, "goblin_md = reports/summary.md")
    result = run(pytester)
    summary = pytester.path / "reports/summary.md"
    assert summary.read_text().startswith("## pytest-goblin: 1 passed")
    result.stdout.fnmatch_lines([f"Markdown summary: {summary}"])


def test_goblin_md_dash_in_the_ini_file_still_means_stdout(
    pytester: pytest.Pytester, sub: Path
) -> None:
    write_ini(pytester, "goblin_md = -")
    result = run(pytester)
    result.stdout.fnmatch_lines(["## pytest-goblin: 1 passed"])
    assert not (pytester.path / "-").exists() and not (sub / "-").exists()


def test_goblin_html_is_relative_to_the_ini_file(pytester: pytest.Pytester, sub: Path) -> None:
    write_ini(pytester, "goblin_html = reports/goblin.html")
    result = run(pytester)
    page = pytester.path / "reports/goblin.html"
    assert page.read_text().startswith("<!DOCTYPE html>")
    result.stdout.fnmatch_lines([f"HTML report: {page}"])


def test_goblin_kb_is_relative_to_the_ini_file(pytester: pytest.Pytester, sub: Path) -> None:
    (pytester.path / "rules").mkdir()
    shutil.copy(EXAMPLE_RULES, pytester.path / "rules" / "team.yaml")
    write_ini(pytester, "goblin_kb = rules")
    result = pytester.runpytest("--goblin-rules")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*team-hf-home-on-local-disk*"])


def test_goblin_storage_is_relative_to_the_ini_file_not_to_a_rootdir_set_elsewhere(
    pytester: pytest.Pytester,
    sub: Path,
) -> None:
    write_ini(pytester, "goblin_storage = perf-history")
    run(pytester, "--goblin-save=main", f"--rootdir={sub}").assert_outcomes(passed=1)
    assert (pytester.path / "perf-history/runs/0001_main.json").is_file()
    assert not (sub / "perf-history").exists()


def test_saved_runs_default_to_dot_goblin_in_the_rootdir(
    pytester: pytest.Pytester, sub: Path
) -> None:
    write_ini(pytester, "goblin_fake = true")
    run(pytester, "--goblin-save=main").assert_outcomes(passed=1)
    assert (pytester.path / ".goblin/runs/0001_main.json").is_file()
    assert not (sub / ".goblin").exists()
