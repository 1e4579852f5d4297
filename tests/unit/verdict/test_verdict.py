"""Specification of the verdict: a workload fails when a patch beats the threshold."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_goblin.schemas import Change, DeviceInfo, Patch, Report, RunMetrics, WorkloadConfig
from pytest_goblin.verdict.rule import decide

DEVICE = DeviceInfo(kind="simulated", name="AMD Instinct MI300X", platform="rocm-instinct")


def metrics(tokens_per_sec: float, projected: bool = True) -> RunMetrics:
    return RunMetrics(
        steps=50,
        tokens_per_sec=tokens_per_sec,
        step_time_s=1.0,
        tokens_per_step=4096,
        hbm_peak_gb=40.0,
        mfu_pct=30.0,
        projected=projected,
        runner_kind="fake",
        device="mi300x",
    )


def a_patch(**overrides: Any) -> Patch:
    data: dict[str, Any] = {
        "new_config": WorkloadConfig(model="llama-3-8b", precision="bf16"),
        "changes": [
            Change(field="precision", old="fp32", new="bf16", rule_id="bf16-mixed-precision")
        ],
        "rule_ids": ["bf16-mixed-precision"],
    }
    data.update(overrides)
    return Patch(**data)


def report(
    speedup: float,
    patch: Patch | None = None,
    ci: tuple[float, float] | None = None,
    projected: bool = True,
) -> Report:
    return Report(
        workload_name="w",
        device=DEVICE,
        before=metrics(1000.0, projected),
        after=metrics(1000.0 * speedup, projected),
        patch=patch,
        speedup=speedup,
        speedup_ci=ci,
        projected=projected,
        summary_line="",
    )


def test_fails_when_the_speedup_is_above_one_plus_the_threshold() -> None:
    verdict = decide(report(1.25, a_patch()), threshold=0.10)
    assert verdict.outcome == "failed"
    assert "1.25×" in verdict.reason and "1.10×" in verdict.reason


def test_passes_at_exactly_the_threshold() -> None:
    assert decide(report(1.10, a_patch()), threshold=0.10).outcome == "passed"


def test_passes_just_below_the_threshold() -> None:
    verdict = decide(report(1.09, a_patch()), threshold=0.10)
    assert verdict.outcome == "passed"
    assert "within the 1.10× threshold" in verdict.reason


def test_passes_with_no_patch_whatever_the_speedup() -> None:
    verdict = decide(report(3.0, None), threshold=0.10)
    assert verdict.outcome == "passed"
    assert verdict.reason.startswith("no applicable patch")


def test_passes_with_a_patch_that_changes_nothing() -> None:
    assert decide(report(3.0, a_patch(changes=[])), threshold=0.10).outcome == "passed"


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [((1.05, 1.60), "passed"), ((1.12, 1.60), "failed")],
    ids=["lower-bound-inside", "lower-bound-above"],
)
def test_the_confidence_interval_lower_bound_decides_when_known(
    ci: tuple[float, float], outcome: str
) -> None:
    assert decide(report(1.30, a_patch(), ci=ci), threshold=0.10).outcome == outcome


def test_the_reason_says_whether_numbers_are_projected_or_measured() -> None:
    assert "(projected)" in decide(report(2.0, a_patch()), 0.10).reason
    assert "(measured)" in decide(report(2.0, a_patch(), projected=False), 0.10).reason


def test_an_interval_straddling_the_bar_passes_as_inconclusive() -> None:
    verdict = decide(report(1.12, a_patch(), ci=(1.05, 1.18), projected=False), threshold=0.10)
    assert verdict.outcome == "passed"
    assert verdict.inconclusive
    assert verdict.reason.startswith("inconclusive:")


def test_strict_fails_an_inconclusive_interval() -> None:
    verdict = decide(
        report(1.12, a_patch(), ci=(1.05, 1.18), projected=False), threshold=0.10, strict=True
    )
    assert verdict.outcome == "failed"
    assert verdict.inconclusive


def test_an_interval_wholly_below_the_bar_passes_conclusively() -> None:
    verdict = decide(report(1.02, a_patch(), ci=(0.97, 1.06), projected=False), threshold=0.10)
    assert verdict.outcome == "passed"
    assert not verdict.inconclusive


def test_a_rejected_patch_passes_with_the_reason() -> None:
    rejected = report(1.5, a_patch()).model_copy(update={"rejected": "loss diverged"})
    verdict = decide(rejected, threshold=0.10)
    assert verdict.outcome == "passed"
    assert verdict.reason == "patch rejected: loss diverged"
