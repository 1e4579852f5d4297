"""Specification of budgets: absolute floors and a ceiling in a workload's goblin: section."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.sample_results import audited
from helpers.workloads import MISTUNED_YAML, TUNED_YAML, WorkloadFactory
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.errors import WorkloadError
from pytest_goblin.report.terminal import failure_message
from pytest_goblin.schemas import DeviceInfo, WorkloadResult, WorkloadSettings
from pytest_goblin.verdict import budgets, gates
from pytest_goblin.workload.read import Workload

MI300X = DeviceInfo(
    kind="simulated",
    name="AMD Instinct MI300X",
    platform="rocm-instinct",
    memory_gb=192,
    arch="gfx942",
)
H100_MEASURED = DeviceInfo(
    kind="cuda",
    name="NVIDIA H100 80GB HBM3",
    platform="cuda",
    memory_gb=79.6,
    arch="sm_90",
    compute_units=132,
    catalogue_key="h100",
)
GH200_MEASURED = DeviceInfo(
    kind="cuda",
    name="NVIDIA GH200 480GB",
    platform="cuda",
    memory_gb=94.5,
    arch="sm_90",
    compute_units=132,
    catalogue_key=None,
)


def judge(
    result: WorkloadResult, settings: WorkloadSettings, *rest: Any
) -> tuple[WorkloadResult, str | None]:
    """``gates.judge`` with the failure rendered as pytest shows it."""
    judged, failure = gates.judge(result, settings, *rest)
    return judged, None if failure is None else failure_message(judged, failure)


def test_a_single_number_applies_on_every_device() -> None:
    assert budgets.limit_for(9000.0, MI300X) == budgets.limit_for(9000.0, H100_MEASURED) == 9000


def test_a_mapping_applies_only_on_the_devices_it_names() -> None:
    floors = {"mi300x": 12000.0, "h100": 9000.0}
    assert budgets.limit_for(floors, MI300X) == 12000
    assert budgets.limit_for(floors, H100_MEASURED) == 9000
    assert budgets.limit_for({"mi250x": 5000.0}, MI300X) is None


def test_a_mapping_matches_the_resolved_catalogue_key_not_letters_in_the_name() -> None:
    # "GH200" contains "h200", but a GH200 resolves to no catalogue entry
    assert budgets.limit_for({"h200": 9000.0, "h100": 8000.0}, GH200_MEASURED) is None
    renamed = H100_MEASURED.model_copy(update={"name": "AMD Radeon Graphics"})
    assert budgets.limit_for({"h100": 9000.0}, renamed) == 9000


def test_floors_fail_below_and_the_ceiling_fails_above(passed: WorkloadResult) -> None:
    assert passed.baseline is not None and passed.device is not None
    base = passed.baseline
    settings = WorkloadSettings(
        min_tokens_per_sec=base.tokens_per_sec * 1.1,
        min_mfu_pct=base.mfu_pct * 0.9,
        max_hbm_peak_gb=base.hbm_peak_gb * 0.9,
    )
    checks = {c.key: c.ok for c in budgets.check(settings, base, passed.device)}
    assert checks == {"min_tokens_per_sec": False, "min_mfu_pct": True, "max_hbm_peak_gb": False}


def test_an_mfu_floor_is_not_checked_where_mfu_is_unknown_and_a_note_says_so(
    passed: WorkloadResult,
) -> None:
    assert passed.baseline is not None
    unknown = passed.model_copy(
        update={"baseline": passed.baseline.model_copy(update={"mfu_pct": None})}
    )
    judged, message = judge(unknown, WorkloadSettings(min_mfu_pct=90), None, None)
    assert (judged.outcome, message, judged.budgets) == ("passed", None, [])
    assert judged.notes[-1] == (
        "budget min_mfu_pct not checked: the baseline has no such number "
        "on AMD Instinct MI300X (simulated)"
    )


def test_no_budget_means_no_check(passed: WorkloadResult) -> None:
    assert passed.baseline is not None and passed.device is not None
    assert budgets.check(WorkloadSettings(), passed.baseline, passed.device) == []


def test_an_unknown_device_in_a_budget_is_an_error_naming_the_field(
    workload: WorkloadFactory,
) -> None:
    with pytest.raises(WorkloadError, match=r"goblin\.min_tokens_per_sec.*unknown device 'mi300'"):
        workload(TUNED_YAML + "goblin:\n  min_tokens_per_sec: {mi300: 1000}\n")


def test_a_budget_must_be_positive(workload: WorkloadFactory) -> None:
    with pytest.raises(WorkloadError, match=r"goblin\.max_hbm_peak_gb"):
        workload(TUNED_YAML + "goblin:\n  max_hbm_peak_gb: -1\n")


def test_a_missed_budget_fails_a_passing_workload_with_the_numbers(
    passed: WorkloadResult,
) -> None:
    assert passed.baseline is not None
    settings = WorkloadSettings(min_tokens_per_sec=20000)
    judged, message = judge(passed, settings, None, None)
    assert judged.outcome == "failed"
    assert judged.reason == (
        f"budget min_tokens_per_sec: {passed.baseline.tokens_per_sec:,.0f} "
        "tok/s, below the floor of 20,000 tok/s"
    )
    assert message is not None and message.startswith(
        "llama-tuned: misses 1 budget(s) of its goblin: section (projected on AMD Instinct MI300X "
        "(simulated))"
    )
    assert "a patched config is" not in message


def test_a_met_budget_keeps_the_verdict_and_records_the_check(passed: WorkloadResult) -> None:
    judged, message = judge(passed, WorkloadSettings(min_mfu_pct=1), None, None)
    assert (judged.outcome, message) == ("passed", None)
    assert [c.ok for c in judged.budgets] == [True]


def test_a_winning_patch_and_a_missed_budget_are_both_in_the_message(
    mistuned: Workload,
    context: AuditContext,
) -> None:
    result = audited(mistuned, context)
    judged, message = judge(result, WorkloadSettings(max_hbm_peak_gb=100), None, None)
    assert message is not None and "a patched config is" in message
    assert "max_hbm_peak_gb: 161 GB, above the ceiling of 100 GB" in message
    assert judged.reason.startswith(result.reason + "; budget max_hbm_peak_gb")


def run_goblin(pytester: pytest.Pytester, text: str) -> pytest.RunResult:
    (pytester.path / "w.goblin.yaml").write_text(text)
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider")


def test_a_workload_within_its_budgets_passes(pytester: pytest.Pytester) -> None:
    result = run_goblin(
        pytester,
        TUNED_YAML + "goblin:\n  min_tokens_per_sec: 10000\n"
        "  min_mfu_pct: {mi300x: 20}\n"
        "  max_hbm_peak_gb: 100\n",
    )
    result.assert_outcomes(passed=1)


def test_a_workload_below_its_floor_on_this_device_fails_with_the_numbers(
    pytester: pytest.Pytester,
) -> None:
    result = run_goblin(
        pytester, TUNED_YAML + "goblin:\n  min_tokens_per_sec: {mi300x: 20000, h100: 1000}\n"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "llama-tuned: misses 1 budget(s) of its goblin: section (projected on AMD Instinct "
            "MI300X (simulated))",
            "  min_tokens_per_sec: 1?,??? tok/s, below the floor of 20,000 tok/s",
        ]
    )


def test_a_budget_for_another_device_is_not_applied(pytester: pytest.Pytester) -> None:
    result = run_goblin(pytester, TUNED_YAML + "goblin:\n  min_tokens_per_sec: {h100: 99999}\n")
    result.assert_outcomes(passed=1)


def test_budgets_apply_to_a_failing_workload_too(pytester: pytest.Pytester) -> None:
    result = run_goblin(pytester, MISTUNED_YAML + "goblin:\n  max_hbm_peak_gb: 100\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a patched config is*", "*above the ceiling of 100 GB*"])


def test_the_memory_ceiling_holds_the_reserved_peak_where_one_was_measured(
    passed: WorkloadResult,
) -> None:
    assert passed.baseline is not None
    settings = WorkloadSettings(max_hbm_peak_gb=passed.baseline.hbm_peak_gb + 1)
    assert budgets.check(settings, passed.baseline, H100_MEASURED)[0].ok
    reserved = passed.baseline.model_copy(
        update={"hbm_reserved_peak_gb": passed.baseline.hbm_peak_gb + 2}
    )
    [ceiling] = budgets.check(settings, reserved, H100_MEASURED)
    assert not ceiling.ok and ceiling.value == reserved.hbm_reserved_peak_gb
