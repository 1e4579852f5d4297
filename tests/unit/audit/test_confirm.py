"""Confirming a patch by paired, alternating measurement."""

from __future__ import annotations

import math
import random

import pytest

from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.audit.confirm import (
    Confirmation,
    SamplingPolicy,
    classify,
    confirm,
    loss_problem,
)
from pytest_goblin.audit.run import confirm_report
from pytest_goblin.audit.stats import paired_speedup
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.schemas import RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload

BASELINE = WorkloadConfig(model="qwen2.5-0.5b", precision="bf16", dataloader_workers=0)
PATCHED = BASELINE.model_copy(update={"dataloader_workers": 4})


class NoisyRunner:
    """Measured-looking runs: tokens/s per window around a level, with noise and drift."""

    def __init__(
        self,
        levels: dict[int, float],
        noise: float = 0.03,
        windows: int = 5,
        losses: dict[int, list[float]] | None = None,
        seed: int = 7,
    ) -> None:
        self.levels = levels
        self.noise = noise
        self.windows = windows
        self.losses = losses or {}
        self.rng = random.Random(seed)
        self.calls: list[int] = []
        self.drift = 1.0

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        workers = config.dataloader_workers
        self.calls.append(workers)
        self.drift *= 0.99
        level = self.levels[workers] * self.drift
        samples = [level * self.rng.lognormvariate(0, self.noise) for _ in range(self.windows)]
        return RunMetrics(
            steps=steps,
            tokens_per_sec=sum(samples) / len(samples),
            step_time_s=1.0,
            tokens_per_step=4096,
            hbm_peak_gb=1.0,
            mfu_pct=10.0,
            projected=False,
            runner_kind="torch",
            device="cpu",
            samples=samples,
            losses=self.losses.get(workers, [2.0, 1.9, 1.8]),
        )


def projected(tps: float) -> RunMetrics:
    return RunMetrics(
        steps=50,
        tokens_per_sec=tps,
        step_time_s=1.0,
        tokens_per_step=4096,
        hbm_peak_gb=1.0,
        mfu_pct=10.0,
        projected=True,
        runner_kind="fake",
        device="mi300x",
        samples=[tps],
    )


def run_confirm(runner: NoisyRunner, **policy: object) -> Confirmation:
    return confirm(runner, BASELINE, PATCHED, 20, SamplingPolicy(**{"threshold": 0.10, **policy}))


def test_a_clear_win_fails_with_an_interval_above_the_bar() -> None:
    result = run_confirm(NoisyRunner({0: 100.0, 4: 150.0}))
    assert result.decision == "failed"
    assert result.estimate is not None and result.estimate.ci[0] > 1.10
    assert "above the 1.10× bar" in result.reason


def test_no_difference_passes_with_an_interval_below_the_bar() -> None:
    result = run_confirm(NoisyRunner({0: 100.0, 4: 100.0}))
    assert result.decision == "passed"
    assert result.estimate is not None and result.estimate.ci[1] < 1.10


def test_each_arm_warms_up_once_then_rounds_alternate_which_arm_runs_first() -> None:
    runner = NoisyRunner({0: 100.0, 4: 100.0})
    result = run_confirm(runner, min_rounds=2, max_rounds=2)
    assert runner.calls == [0, 4, 0, 4, 4, 0]
    assert len(result.baseline_runs) == len(result.patched_runs) == 2


def test_a_clear_verdict_still_takes_two_balanced_blocks_by_default() -> None:
    runner = NoisyRunner({0: 100.0, 4: 150.0})
    assert run_confirm(runner).rounds == 4
    # after the warm-up pair: A B, B A, A B, B A — each arm ran first equally often
    assert runner.calls[2:] == [0, 4, 4, 0, 0, 4, 4, 0]


def test_a_verdict_is_only_taken_after_a_whole_abba_block() -> None:
    runner = NoisyRunner({0: 100.0, 4: 150.0})
    result = run_confirm(runner, min_rounds=3)
    assert result.rounds == 4 and result.decision == "failed"


def test_an_odd_round_limit_is_rounded_down_to_a_balanced_one() -> None:
    runner = NoisyRunner({0: 100.0, 4: 110.0}, noise=0.08)
    result = run_confirm(runner, max_rounds=5)
    assert result.rounds == 4
    firsts = runner.calls[2::2]
    assert firsts.count(0) == firsts.count(4)


def test_the_audits_own_measured_pair_warms_up_and_the_first_pair_is_measured_anew() -> None:
    runner = NoisyRunner({0: 100.0, 4: 150.0})
    agent_pair = (runner.run(BASELINE, 20), runner.run(PATCHED, 20))
    runner.calls.clear()
    result = confirm(
        runner, BASELINE, PATCHED, 20, SamplingPolicy(threshold=0.10), first_round=agent_pair
    )
    assert runner.calls == [0, 4, 4, 0, 0, 4, 4, 0]  # no extra warm-up, four measured rounds
    assert agent_pair[0] not in result.baseline_runs
    assert result.estimate is not None and result.estimate.n == 4 * runner.windows


def test_a_projected_pair_from_the_audit_is_the_round() -> None:
    class Projected:
        calls = 0

        def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
            self.calls += 1
            return projected(150.0 if config.dataloader_workers else 100.0)

    runner = Projected()
    pair = (projected(100.0), projected(150.0))
    result = confirm(
        runner, BASELINE, PATCHED, 50, SamplingPolicy(threshold=0.10), first_round=pair
    )
    assert runner.calls == 0 and result.rounds == 1 and result.decision == "failed"


def test_a_win_near_the_bar_samples_more_rounds_then_passes_with_a_warning() -> None:
    runner = NoisyRunner({0: 100.0, 4: 110.0}, noise=0.08)
    result = run_confirm(runner, max_rounds=4)
    assert result.rounds == 4
    assert result.inconclusive
    assert result.decision == "passed"
    assert "straddles the 1.10× bar after 4 rounds" in result.reason


def test_strict_turns_an_inconclusive_verdict_into_a_failure() -> None:
    result = run_confirm(NoisyRunner({0: 100.0, 4: 110.0}, noise=0.08), max_rounds=3, strict=True)
    assert result.inconclusive
    assert result.decision == "failed"


def test_the_time_budget_stops_sampling() -> None:
    ticks = iter(range(100))
    runner = NoisyRunner({0: 100.0, 4: 110.0}, noise=0.08)
    result = confirm(
        runner,
        BASELINE,
        PATCHED,
        20,
        SamplingPolicy(threshold=0.10, max_rounds=10, time_budget_s=2),
        clock=lambda: float(next(ticks)),
    )
    assert result.rounds == 2


def test_a_projected_runner_decides_in_one_round_on_the_point() -> None:
    class Projected:
        def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
            return projected(150.0 if config.dataloader_workers else 100.0)

    result = confirm(Projected(), BASELINE, PATCHED, 50, SamplingPolicy(threshold=0.10))
    assert result.rounds == 1
    assert result.decision == "failed"
    assert result.estimate is not None and result.estimate.ci == (1.5, 1.5)


def test_a_patch_whose_loss_diverges_is_rejected_not_a_win() -> None:
    runner = NoisyRunner({0: 100.0, 4: 200.0}, losses={0: [2.0, 1.9, 1.8], 4: [2.0, 3.5, 7.0]})
    result = run_confirm(runner)
    assert result.decision == "passed"
    assert result.rejected is not None and "final loss" in result.rejected


def test_a_non_finite_patched_loss_is_rejected() -> None:
    base = projected(100.0).model_copy(update={"losses": [2.0, 1.9]})
    patched = projected(150.0).model_copy(update={"losses": [2.0, math.nan]})
    assert "non-finite" in (loss_problem(base, patched, 0.05) or "")


def test_a_small_loss_difference_within_tolerance_counts() -> None:
    base = projected(100.0).model_copy(update={"losses": [2.0, 1.90, 1.80]})
    patched = projected(150.0).model_copy(update={"losses": [2.0, 1.91, 1.82]})
    assert loss_problem(base, patched, 0.05) is None


def test_classify_treats_a_point_on_the_bar_as_passing() -> None:
    assert classify(paired_speedup([100.0], [110.0]), 0.10) == "passed"


@pytest.mark.parametrize("seed", range(10))
def test_a_a_comparisons_do_not_fail_at_the_default_threshold(seed: int) -> None:
    result = confirm(
        NoisyRunner({0: 100.0, 4: 100.0}, noise=0.05, seed=seed),
        BASELINE,
        PATCHED,
        20,
        SamplingPolicy(threshold=0.10),
    )
    assert result.decision == "passed"


def test_the_audit_replaces_a_measured_reports_numbers_with_the_paired_estimate(
    measured_context: AuditContext,
    mistuned: Workload,
) -> None:
    outcome = audit(mistuned, measured_context)
    assert outcome.report is not None
    report = confirm_report(
        outcome.report, measured_context.runner, mistuned, GoblinSettings(max_repeats=2)
    )
    assert report.n_repeats == 2
    assert report.speedup_ci is not None
    assert report.speedup_ci[0] <= report.speedup <= report.speedup_ci[1]
    assert report.measurement is not None and "paired windows" in report.measurement


def test_a_projected_report_is_left_as_the_point(context: AuditContext, mistuned: Workload) -> None:
    outcome = audit(mistuned, context)
    assert outcome.report is not None
    report = confirm_report(outcome.report, context.runner, mistuned, GoblinSettings())
    assert report == outcome.report
    assert report.speedup_ci is None


class Bursty(NoisyRunner):
    """An A/A pair of configs whose runs at ``boosted`` (indexes in run order) are 30%
    faster window after window: a neighbour on the machine paused for their length."""

    def __init__(self, boosted: set[int]) -> None:
        super().__init__({0: 100.0, 4: 100.0}, noise=0.01)
        self.boosted = boosted

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        metrics = super().run(config, steps)
        if len(self.calls) - 1 in self.boosted:
            metrics = metrics.model_copy(update={"samples": [s * 1.3 for s in metrics.samples]})
        return metrics


def test_whole_runs_sped_up_by_a_quiet_neighbour_do_not_fail_an_a_a_comparison() -> None:
    # runs go A B (warm-up), A B, B A, A B, B A: the patched runs of rounds 1, 3, 4 are boosted
    result = run_confirm(Bursty({3, 7, 8}), max_rounds=4)
    assert result.inconclusive and result.decision == "passed"
