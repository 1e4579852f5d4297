"""Self-calibration through the plugin: a saved correction changes projected numbers,
the summary and the JSON report name it, and the numbers stay projected."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from helpers.workloads import TUNED_YAML as TUNED
from pytest_goblin.runner.analytic import DeviceCorrection
from pytest_goblin.runner.self_calibration import (
    MeasuredRun,
    SavedCalibration,
    runs_from_results,
    save_calibration,
)
from pytest_goblin.schemas import (
    Change,
    DeviceInfo,
    PatchSummary,
    RunMetrics,
    WorkloadConfig,
    WorkloadResult,
)


def run_fake(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makefile(".goblin.yaml", good=TUNED)
    return pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-json", "r.json", *args
    )


def save_slow_h100(pytester: pytest.Pytester) -> None:
    save_calibration(
        pytester.path / ".goblin",
        SavedCalibration(
            fingerprint="0123456789abcdef",
            device_name="NVIDIA H100 80GB HBM3",
            catalogue_key="h100",
            correction=DeviceCorrection(compute=0.5),
            fitted_from_runs=7,
            rms_log_error=0.02,
            saved_at=datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc),
            runs=[MeasuredRun(config=WorkloadConfig(model="llama-3-8b"), tokens_per_sec=1.0)],
        ),
    )


def baseline_tokens_per_sec(pytester: pytest.Pytester) -> tuple[float, dict[str, object] | None]:
    (result,) = json.loads((pytester.path / "r.json").read_text())["workloads"]
    return result["baseline"]["tokens_per_sec"], result["baseline"]["calibration"]


def test_a_saved_calibration_is_used_named_and_still_projected(
    pytester: pytest.Pytester,
) -> None:
    run_fake(pytester, "--goblin-fake-device", "h100")
    plain, none = baseline_tokens_per_sec(pytester)
    save_slow_h100(pytester)
    result = run_fake(pytester, "--goblin-fake-device", "h100")
    result.stdout.fnmatch_lines(
        [
            "calibration: self-calibration of NVIDIA H100 80GB HBM3 (0123456789abcdef), "
            "fitted from 7 measured runs, saved 2026-01-02 03:04 UTC"
        ]
    )
    calibrated, used = baseline_tokens_per_sec(pytester)
    assert none is None and used is not None
    assert used["fitted_from_runs"] == 7 and used["source"].startswith("self-calibration")
    assert calibrated < plain
    report = json.loads((pytester.path / "r.json").read_text())["workloads"][0]
    assert report["projected"] is True and report["baseline"]["projected"] is True


def test_a_calibration_for_another_device_is_not_used(pytester: pytest.Pytester) -> None:
    save_slow_h100(pytester)
    result = run_fake(pytester, "--goblin-fake-device", "mi300x")
    assert "calibration:" not in result.stdout.str()
    assert baseline_tokens_per_sec(pytester)[1] is None


def save_this_cpu(pytester: pytest.Pytester, name: str, fingerprint: str, minutes: int) -> None:
    save_calibration(
        pytester.path / ".goblin",
        SavedCalibration(
            fingerprint=fingerprint,
            device_name=name,
            catalogue_key="cpu",
            correction=DeviceCorrection(compute=0.25, host=3.0),
            fitted_from_runs=12,
            rms_log_error=0.05,
            saved_at=datetime(2026, 1, 2, 3, minutes, tzinfo=timezone.utc),
            runs=[MeasuredRun(config=WorkloadConfig(model="llama-3-8b"), tokens_per_sec=1.0)],
        ),
    )


def test_a_fake_device_may_name_a_saved_calibration(pytester: pytest.Pytester) -> None:
    """Two machines calibrated for the generic CPU: the fingerprint picks the older one,
    the header names that machine, and the numbers stay projected."""
    run_fake(pytester, "--goblin-fake-device", "cpu")
    plain, _ = baseline_tokens_per_sec(pytester)
    save_this_cpu(pytester, "AMD EPYC 7B13", "fedcba9876543210", minutes=4)
    save_calibration(
        pytester.path / ".goblin",
        SavedCalibration(
            fingerprint="1111111111111111",
            device_name="Intel Xeon",
            catalogue_key="cpu",
            correction=DeviceCorrection(),
            fitted_from_runs=3,
            rms_log_error=0.0,
            saved_at=datetime(2026, 1, 2, 3, 30, tzinfo=timezone.utc),
            runs=[MeasuredRun(config=WorkloadConfig(model="llama-3-8b"), tokens_per_sec=1.0)],
        ),
    )
    for name in ("fedcba9876543210", "amd epyc 7b13"):
        result = run_fake(pytester, "--goblin-fake-device", name)
        result.stdout.fnmatch_lines(
            [
                "device: AMD EPYC 7B13 (simulated) | * | numbers: projected (analytic model)",
                "calibration: self-calibration of AMD EPYC 7B13 (fedcba9876543210), "
                "fitted from 12 measured runs, saved 2026-01-02 03:04 UTC",
            ]
        )
        calibrated, used = baseline_tokens_per_sec(pytester)
        assert used is not None and used["fingerprint"] == "fedcba9876543210"
        assert calibrated < plain
        report = json.loads((pytester.path / "r.json").read_text())["workloads"][0]
        assert report["projected"] is True and report["device"]["kind"] == "simulated"
        assert report["device"]["catalogue_key"] == "cpu"
    # the catalogue name takes the newest calibration for that entry: the other machine
    run_fake(pytester, "--goblin-fake-device", "cpu")
    assert baseline_tokens_per_sec(pytester)[1]["fingerprint"] == "1111111111111111"  # type: ignore[index]


def test_a_fake_device_neither_in_the_catalogue_nor_saved_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    save_this_cpu(pytester, "AMD EPYC 7B13", "fedcba9876543210", minutes=4)
    result = run_fake(pytester, "--goblin-fake-device", "epyc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--goblin-fake-device: unknown device 'epyc'; valid devices: *; or a saved "
            "self-calibration under *calibration: fedcba9876543210 (AMD EPYC 7B13)*"
        ]
    )


def test_save_calibration_without_measured_runs_says_so(pytester: pytest.Pytester) -> None:
    result = run_fake(pytester, "--goblin-save-calibration")
    assert "calibration:" not in result.stdout.str()  # projected runs are never fitted from


def _metrics(tokens_per_sec: float, projected: bool = False) -> RunMetrics:
    return RunMetrics(
        steps=1,
        tokens_per_sec=tokens_per_sec,
        step_time_s=1.0,
        tokens_per_step=1,
        hbm_peak_gb=1.0,
        mfu_pct=None,
        projected=projected,
        runner_kind="fake" if projected else "torch",
        device="cpu",
    )


def _result(**fields: object) -> WorkloadResult:
    base: dict[str, object] = {
        "nodeid": "w.goblin.yaml::w",
        "path": "w.goblin.yaml",
        "name": "w",
        "outcome": "failed",
        "threshold": 0.05,
        "device": DeviceInfo(kind="cpu", name="cpu", platform="cpu"),
        "config": WorkloadConfig(model="llama-3-8b").model_dump(mode="json"),
        "baseline": _metrics(100.0),
        "patched": _metrics(150.0),
        "projected": False,
        "patch": PatchSummary(
            changes=[Change(field="attention_impl", old="eager", new="flash", rule_id="r")],
            diff="",
        ),
    }
    base.update(fields)
    return WorkloadResult(**base)


def test_measured_baselines_and_patched_runs_are_what_the_fit_learns_from() -> None:
    runs = runs_from_results([_result()])
    assert [r.tokens_per_sec for r in runs] == [100.0, 150.0]
    assert runs[1].config.attention_impl == "flash"


def test_projected_results_and_unappliable_patches_are_left_out() -> None:
    unappliable = PatchSummary(
        changes=[Change(field="env_vars.X", old=None, new="1", rule_id="r")], diff=""
    )
    assert runs_from_results([_result(projected=True)]) == []
    assert [r.tokens_per_sec for r in runs_from_results([_result(patch=unappliable)])] == [100.0]
