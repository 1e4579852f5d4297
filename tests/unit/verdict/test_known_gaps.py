"""Specification of known gaps: ``goblin: accept:`` turns a winning patch into an xfail."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from helpers.sample_results import run_info
from helpers.workloads import MISTUNED_YAML, TUNED_YAML, WorkloadFactory
from pytest_goblin.report import markdown
from pytest_goblin.report.junit import properties
from pytest_goblin.report.terminal import failure_message
from pytest_goblin.schemas import Acceptance, WorkloadResult, WorkloadSettings
from pytest_goblin.verdict import gates
from pytest_goblin.verdict import known_gaps as accept

REASON = "fp32 until the numerics study ends"


def judge(
    result: WorkloadResult, settings: WorkloadSettings, *rest: Any
) -> tuple[WorkloadResult, str | None]:
    """``gates.judge`` with the failure rendered as pytest shows it."""
    judged, failure = gates.judge(result, settings, *rest)
    return judged, None if failure is None else failure_message(judged, failure)


def accepting(until: str = "2999-12-31", max_speedup: float = 20.0) -> str:
    return (
        f"goblin:\n  accept: {{until: {until}, reason: {REASON!r}, max_speedup: {max_speedup}}}\n"
    )


def write(pytester: pytest.Pytester, text: str, name: str = "w/a.goblin.yaml") -> None:
    path = pytester.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "w", *args)


def acceptance(until: date = date(2999, 12, 31), max_speedup: float = 20.0) -> Acceptance:
    return Acceptance(until=until, reason=REASON, max_speedup=max_speedup)


# --- as a user meets it ------------------------------------------------------------------


def test_an_accepted_gap_makes_the_item_xfail_with_the_reason(pytester: pytest.Pytester) -> None:
    write(pytester, MISTUNED_YAML + accepting())
    result = run_goblin(pytester, "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(
        [
            f"XFAIL w/a.goblin.yaml::llama-mistuned - {REASON} "
            "(accepted until 2999-12-31; patch *×, accepted up to 20.00×)"
        ]
    )


def test_the_json_report_keeps_outcome_failed_and_adds_the_acceptance(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, MISTUNED_YAML + accepting())
    run_goblin(pytester, "--goblin-json", "out.json")
    (workload,) = json.loads((pytester.path / "out.json").read_text())["workloads"]
    assert workload["outcome"] == "failed"
    assert workload["accepted"] == {"until": "2999-12-31", "reason": REASON, "max_speedup": 20.0}


def test_the_item_fails_again_after_the_date_naming_the_file_and_field(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, MISTUNED_YAML + accepting(until="2000-01-31"))
    result = run_goblin(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "w/a.goblin.yaml: field 'goblin.accept.until': the acceptance expired on 2000-01-31 "
            f"and the gap still stands (accepted because: {REASON})",
            "",
            "llama-mistuned: a patched config is *× faster*",
        ]
    )


def test_the_item_fails_again_when_the_gap_grows_beyond_max_speedup(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, MISTUNED_YAML + accepting(max_speedup=1.5))
    result = run_goblin(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "w/a.goblin.yaml: field 'goblin.accept.max_speedup': the gap grew beyond the accepted "
            "1.50× (the speedup is *×)",
        ]
    )


def test_an_impossible_date_is_an_item_error_naming_the_file_and_field(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, MISTUNED_YAML + accepting(until="2026-02-30"))
    write(pytester, TUNED_YAML, "w/b.goblin.yaml")
    result = run_goblin(pytester)
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*w/a.goblin.yaml: field 'goblin.accept.until': expected a date "
            "written YYYY-MM-DD, e.g. 2026-09-30 (got '2026-02-30')"
        ]
    )


def test_an_acceptance_without_max_speedup_is_an_error_naming_the_field(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, MISTUNED_YAML + "goblin:\n  accept: {until: 2999-12-31, reason: x}\n")
    result = run_goblin(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*w/a.goblin.yaml: field 'goblin.accept.max_speedup': Field required*"]
    )


def test_goblin_fix_leaves_the_file_of_an_accepted_gap_alone(pytester: pytest.Pytester) -> None:
    text = MISTUNED_YAML + accepting()
    write(pytester, text)
    run_goblin(pytester, "--goblin-fix").assert_outcomes(xfailed=1)
    assert (pytester.path / "w/a.goblin.yaml").read_text() == text


# --- the decision ------------------------------------------------------------------------


def test_the_acceptance_holds_through_its_until_day(failed: WorkloadResult) -> None:
    until = date(2030, 6, 30)
    assert accept.review(failed, acceptance(until), until).holds
    assert not accept.review(failed, acceptance(until), until + timedelta(days=1)).holds


def test_growth_is_judged_on_the_ci_lower_bound_like_the_verdict(failed: WorkloadResult) -> None:
    noisy = failed.model_copy(update={"speedup": 1.45, "speedup_ci": (1.38, 1.52)})
    today = date(2030, 1, 1)
    assert accept.review(noisy, acceptance(max_speedup=1.4), today).holds
    (problem,) = accept.review(noisy, acceptance(max_speedup=1.3), today).problems
    assert problem.endswith(
        "the gap grew beyond the accepted 1.30× (its CI's lower bound is 1.38×)"
    )


def test_an_acceptance_nothing_needs_leaves_a_passing_result_with_a_note(
    passed: WorkloadResult,
) -> None:
    judged, failure = judge(passed, WorkloadSettings(accept=acceptance()), None, None)
    assert (judged.outcome, failure, judged.accepted) == ("passed", None, None)
    assert judged.notes[-1] == (
        "goblin.accept is no longer needed: no patch beats the "
        "threshold; remove it from workloads/tuned.goblin.yaml"
    )


def test_a_missed_budget_still_fails_an_accepted_gap(failed: WorkloadResult) -> None:
    assert failed.baseline is not None
    settings = WorkloadSettings(
        accept=acceptance(), min_tokens_per_sec=failed.baseline.tokens_per_sec * 2
    )
    judged, failure = judge(failed, settings, None, None)
    assert judged.accepted is None
    assert failure is not None and "misses 1 budget(s)" in failure
    assert "a patched config is" not in failure
    assert judged.reason.startswith("budget min_tokens_per_sec")


def test_an_accepted_gap_is_xfail_by_its_accepted_field(failed: WorkloadResult) -> None:
    judged, failure = judge(failed, WorkloadSettings(accept=acceptance()), None, None)
    assert failure is None
    assert judged.outcome == "failed"
    assert judged.accepted == acceptance()


@pytest.mark.parametrize("until", ["2026-09-30T10:00:00", 20260930, "next week"])
def test_until_takes_only_a_calendar_date(until: object) -> None:
    with pytest.raises(ValidationError, match="expected a date"):
        Acceptance.model_validate({"until": until, "reason": REASON, "max_speedup": 1.2})


def test_an_acceptance_is_read_from_a_workload_file(workload: WorkloadFactory) -> None:
    loaded = workload(MISTUNED_YAML + accepting(until="2031-03-01", max_speedup=1.25))
    assert loaded.settings.accept == Acceptance(
        until=date(2031, 3, 1), reason=REASON, max_speedup=1.25
    )


# --- the other reports ----------------------------------------------------------------------


@pytest.fixture
def xfailed(failed: WorkloadResult) -> WorkloadResult:
    judged, _ = judge(failed, WorkloadSettings(accept=acceptance()), None, None)
    return judged


def test_markdown_counts_and_shows_an_accepted_gap_apart_from_the_failures(
    xfailed: WorkloadResult,
) -> None:
    text = markdown.render([xfailed], run_info(xfailed))
    assert text.splitlines()[0] == "## pytest-goblin: 1 accepted"
    assert "| ☑️ accepted gap (xfail) |" in text


def test_junit_carries_the_acceptance(xfailed: WorkloadResult) -> None:
    props = dict(properties(xfailed))
    assert (
        props["goblin_outcome"],
        props["goblin_accepted_until"],
        props["goblin_accepted_reason"],
    ) == ("failed", "2999-12-31", REASON)
