"""Confirming a patch's win by measurement the harness controls, not the agent.

The agent proposes; this module decides how sure we are. Baseline (A) and
patched (B) are run in alternating rounds on the same device — A B, then B A,
so that neither arm always runs first — and window i of one arm is paired
with window i of the other, which ran moments apart and saw the same drift.
Decisions are taken only after whole A B + B A blocks (ABBA): after an odd
number of rounds one arm would have run first twice as often, and on a GPU
whose clocks boost early and then sag under a power cap, running first is a
bias. The audit's own two benchmarks ran minutes apart, with the agent's work
between them, so on a device they only warm the workers and the first pair is
measured anew; a projected runner has no drift, and its pair is used as is.
After each round the paired bootstrap gives the speedup's interval, resampling
rounds and then windows within them (a run-long disturbance is one sample, not
five):

- failed: the interval's lower bound is above 1 + threshold;
- passed: its upper bound is below 1 + threshold;
- inconclusive: it straddles the bar — sample another round, up to
  ``max_rounds`` or the time budget; still inconclusive at the end passes with
  a visible warning (``strict`` makes it fail).

A projected runner has one number per run and no noise: one round, and the
interval is the point. The patched arm only counts if training still works:
finite losses, and a final loss within ``loss_tolerance`` of the baseline's.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pytest_goblin.audit.stats import SpeedupEstimate, paired_speedup
from pytest_goblin.runner.protocol import Runner
from pytest_goblin.schemas import RunMetrics, WorkloadConfig
from pytest_goblin.verdict.rule import position

Decision = Literal["failed", "passed", "inconclusive"]


@dataclass(frozen=True)
class SamplingPolicy:
    """How hard to look before deciding (from --goblin-max-repeats and friends)."""

    threshold: float
    min_rounds: int = 4
    max_rounds: int = 10
    time_budget_s: float | None = None
    loss_tolerance: float = 0.05
    strict: bool = False


@dataclass
class Confirmation:
    """What the paired measurement concluded."""

    decision: Decision
    reason: str
    estimate: SpeedupEstimate | None
    rounds: int
    baseline_runs: list[RunMetrics] = field(default_factory=list)
    patched_runs: list[RunMetrics] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    patched_samples: list[float] = field(default_factory=list)
    rejected: str | None = None
    inconclusive: bool = False


def classify(estimate: SpeedupEstimate, threshold: float) -> Decision:
    """Where the interval lies against the bar 1 + threshold, by the verdict's own rule."""
    low, high = estimate.ci
    return _DECISIONS[position(low, high, threshold)]


_DECISIONS: dict[str, Decision] = {
    "above": "failed",
    "below": "passed",
    "straddles": "inconclusive",
}
"""Where the interval lies against the bar (``verdict.rule.position``) → the decision."""


def paired_windows(a_run: RunMetrics, b_run: RunMetrics) -> tuple[list[float], list[float]]:
    """Window i of one run beside window i of the other (as many as both have); a run
    without windows is its one tokens/s figure."""
    pairs = min(len(a_run.samples), len(b_run.samples)) or 1
    return (
        (a_run.samples or [a_run.tokens_per_sec])[:pairs],
        (b_run.samples or [b_run.tokens_per_sec])[:pairs],
    )


def _tail_mean(losses: Sequence[float]) -> float:
    tail = losses[-max(1, len(losses) // 3) :]
    return statistics.fmean(tail)


def loss_problem(baseline: RunMetrics, patched: RunMetrics, tolerance: float) -> str | None:
    """Why the patched run does not count as training the same model, or None.

    Both arms train from the same seed on the same data, so their late losses
    should agree closely; a patch that diverges or overflows is not a win.
    """
    if not patched.losses or not baseline.losses:
        return None
    if not all(math.isfinite(x) for x in patched.losses):
        return "patched run produced a non-finite loss (overflow or divergence)"
    base, new = _tail_mean(baseline.losses), _tail_mean(patched.losses)
    if base and abs(new - base) / abs(base) > tolerance:
        return (
            f"patched run's final loss {new:.4f} differs from the baseline's {base:.4f} "
            f"by more than {tolerance:.0%}"
        )
    return None


def confirm(
    runner: Runner,
    baseline: WorkloadConfig,
    patched: WorkloadConfig,
    steps: int,
    policy: SamplingPolicy,
    clock: Callable[[], float] = time.monotonic,
    first_round: tuple[RunMetrics, RunMetrics] | None = None,
    started: float | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> Confirmation:
    """Measure baseline and patched in alternating rounds until the verdict is clear.

    ``first_round`` is a baseline-then-patched pair already measured (the
    audit's own benchmarks). Projected, it is round one; measured, it only
    stands for the warm-up, since its two runs were not taken as a pair.
    Without it, each arm runs once untimed first, so that neither arm's first
    round pays for a cold worker (start-up, allocator, caches). Sampling stops at
    the end of an A B + B A block (``max_rounds`` is rounded down to even when it
    is at least 2), or when the time budget is spent. ``started`` is when the
    time budget began counting on ``clock`` (a fallback's confirmation spends what the
    whole patch's left); without it, now. ``on_round(k, n)`` is told before round ``k``
    of at most ``n`` is measured: measured rounds take a while, and ``-v`` says which
    one is running.
    """
    started = clock() if started is None else started
    if first_round is not None and not first_round[0].projected:
        problem = loss_problem(*first_round, policy.loss_tolerance)
        if problem:  # the patched run already failed to train: nothing to measure
            return Confirmation(
                decision="passed",
                reason=f"patch rejected: {problem}",
                estimate=None,
                rounds=0,
                rejected=problem,
            )
        first_round = None  # it warmed the workers; the pair is measured again below
    elif first_round is None:
        runner.run(baseline, steps)
        runner.run(patched, steps)
    last_round = policy.max_rounds - policy.max_rounds % 2 if policy.max_rounds >= 2 else 1
    result = Confirmation(decision="inconclusive", reason="", estimate=None, rounds=0)
    a_samples = result.baseline_samples
    b_samples = result.patched_samples
    rounds_of_pairs: list[int] = []
    for round_index in range(last_round):
        if round_index == 0 and first_round is not None:
            a_run, b_run = first_round
        else:
            if on_round is not None:
                on_round(round_index + 1, last_round)
            if round_index % 2 == 0:
                a_run, b_run = runner.run(baseline, steps), runner.run(patched, steps)
            else:
                b_run = runner.run(patched, steps)
                a_run = runner.run(baseline, steps)
        result.baseline_runs.append(a_run)
        result.patched_runs.append(b_run)
        result.rounds = round_index + 1
        problem = loss_problem(a_run, b_run, policy.loss_tolerance)
        if problem:
            result.decision, result.rejected = "passed", problem
            result.reason = f"patch rejected: {problem}"
            return result
        a_windows, b_windows = paired_windows(a_run, b_run)
        a_samples += a_windows
        b_samples += b_windows
        rounds_of_pairs += [round_index] * len(a_windows)
        result.estimate = paired_speedup(a_samples, b_samples, rounds=rounds_of_pairs)
        result.decision = classify(result.estimate, policy.threshold)
        if a_run.projected:
            break
        out_of_time = policy.time_budget_s is not None and clock() - started >= policy.time_budget_s
        balanced = result.rounds % 2 == 0
        if result.decision != "inconclusive" and result.rounds >= policy.min_rounds and balanced:
            break
        if out_of_time:
            break
    result.reason = _reason(result, policy)
    if result.decision == "inconclusive":
        result.inconclusive = True
        result.decision = "failed" if policy.strict else "passed"
    return result


def _reason(result: Confirmation, policy: SamplingPolicy) -> str:
    assert result.estimate is not None
    est = result.estimate
    bar = 1.0 + policy.threshold
    interval = f"{est.speedup:.3f}× [{est.ci[0]:.3f}, {est.ci[1]:.3f}]"
    if est.ci[0] == est.ci[1]:
        interval = f"{est.speedup:.3f}×"
    where = {
        "failed": f"above the {bar:.2f}× bar",
        "passed": f"below the {bar:.2f}× bar",
        "inconclusive": f"straddles the {bar:.2f}× bar after {result.rounds} rounds"
        + (
            " (--goblin-strict: counted as a failure)"
            if policy.strict
            else " (passed with a warning; --goblin-strict fails it)"
        ),
    }[result.decision]
    return f"speedup {interval} from {est.n} paired windows, {where}"
