"""Which line of the diff matters: each change's share of a patch's speedup.

``--goblin-attribution`` runs the patch again without one change at a time
(leave-one-out) and reports, per change, the speedup the rest of the patch
still gets and the change's share of the whole. Leave-one-out answers the
question a reader of the diff asks — "what do I lose if I skip this line?" —
with one variant per change, and unlike a greedy build-up it does not depend
on the order the changes are tried in.

**The share is of the log-speedup**, ``ln(S / S_without) / ln(S)``. Speedups
compose by multiplication (a change that halves every step and one that takes
a further sixth off give 2 × 1.2 = 2.4×), so the shares of changes that act
independently add up to exactly 100%, and each reads as "this much of the
gain". ``S / S_without − 1`` would not add up to anything. When the shares add
up to noticeably more or less than 100%, the changes interact — two changes
that shrink the same part of a step overlap — and the report says so
(``pytest_goblin.report.attribution_text``). The raw ``speedup_without`` is kept
beside the share.

**A change another rule needs is left out together with it.** Without bf16,
the flash-attention rule no longer holds (flash attention runs only in half
precision); without worker processes, persistent workers are an invalid
DataLoader. The rules' own conditions decide: when a kept change's rule holds
for the patch without its own changes but not once change i is gone too, it
leaves with i, and i's entry says it is not separable from it. A rest of the
patch that the schema refuses, or that the device cannot run, gets no figure
and a note saying why — never an exception: attribution is information only
and never part of a verdict.

**Cost.** Projected: one analytic run per variant. Measured: each variant runs
beside a fresh baseline run, alternating which goes first (as the verdict's
confirmation does), and its speedup is the ratio of the medians of the two
runs' windows — 2 runs per variant, so k changes cost at most 2k runs, fewer
when a variant is the baseline itself, repeats another or cannot be built. Pairing each variant
with the confirmed baseline's median would halve that, but it would compare
runs made minutes apart, and drift (clocks, a neighbour on a shared runner)
would land in the attribution. One pair is noisier than the verdict's repeated
rounds: its windows are paired and bootstrapped like the verdict's
(``pytest_goblin.audit.stats``), and a figure whose interval overlaps the whole
patch's is marked "within the noise".

**Time budget.** ``--goblin-time-budget`` is one allowance per workload,
shared with the verdict's sampling (``pytest_goblin.audit.timebudget`` says why):
measured attribution gets what the verdict left and, in the patch's order,
starts no new pair once it is spent — the pair in flight finishes, so the
overshoot is at most one pair. A change whose turn came too late has no figure
and no share, ``not_measured`` is ``time_budget`` and its note says so; the
shares of the changes measured before are unaffected (each is read against the
whole patch's speedup alone). A variant that needs no run (the baseline itself,
one already measured, one that cannot be built) still gets its entry.
Projected attribution runs the analytic model, takes no time worth budgeting,
and ignores the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_goblin.audit.confirm import loss_problem, paired_windows
from pytest_goblin.audit.stats import paired_speedup
from pytest_goblin.errors import DeviceFault, GoblinError
from pytest_goblin.kb.conditions import All
from pytest_goblin.schemas import (
    Change,
    ChangeAttribution,
    NotMeasured,
    Report,
    RunMetrics,
    WorkloadConfig,
)
from pytest_goblin.workload.read import apply_changes

if TYPE_CHECKING:
    from pytest_goblin.audit.timebudget import TimeBudget
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.runner.device_session import DeviceRunner
    from pytest_goblin.runner.protocol import Runner

FLAT = 0.005
"""A patch whose |ln speedup| is below this (0.5%) has no gain to share out."""


class _NoFigure(Exception):
    """A variant that gave no number; the message is the entry's note, ``not_measured``
    why a config that might run was not measured (None: it cannot run here)."""

    def __init__(self, note: str, not_measured: NotMeasured | None = None) -> None:
        super().__init__(note)
        self.not_measured = not_measured


@dataclass
class _Variant:
    """The patch without change ``index`` (and the changes whose rules need it)."""

    index: int
    left_out: set[int]
    needs: list[str] = field(default_factory=list)
    config: WorkloadConfig | None = None
    problem: str | None = None


def with_attribution(
    report: Report,
    baseline: WorkloadConfig,
    runner: DeviceRunner,
    kb: KnowledgeBase,
    loss_tolerance: float,
    budget: TimeBudget | None = None,
) -> Report:
    """The report with each change's leave-one-out figure: measured on ``runner`` when the
    report is measured, projected by its analytic model when the report is projected.

    A report without a patch, or whose patched arm was rejected, has nothing to
    attribute and is returned as it is. ``budget`` is the workload's time budget,
    already started by the verdict; it bounds measuring only.
    """
    if report.patch is None or not report.patch.changes or report.rejected:
        return report
    if report.projected:
        entries = attribute(report, baseline, runner.projector, kb, loss_tolerance)
    else:
        entries = attribute(report, baseline, runner, kb, loss_tolerance, budget)
    return report.model_copy(update={"attribution": entries})


def attribute(
    report: Report,
    baseline: WorkloadConfig,
    runner: Runner,
    kb: KnowledgeBase,
    loss_tolerance: float,
    budget: TimeBudget | None = None,
) -> list[ChangeAttribution]:
    """One entry per change of ``report.patch``, in the patch's order.

    ``runner`` must label its numbers like the report (projected or measured).
    A single-change patch runs nothing: its change is the whole speedup. A
    measured report starts no pair once ``budget`` is spent; projected ones
    ignore it.
    """
    assert report.patch is not None
    changes = report.patch.changes
    if len(changes) == 1:
        return [
            _entry(
                changes[0],
                report.projected,
                speedup_without=1.0,
                contribution=1.0,
                note="the patch's only change: the whole speedup",
            )
        ]
    if _rebuilt(baseline, changes) != report.patch.new_config:
        note = (
            "not measured: the patch's changes applied to the workload do not give the "
            "config that was benchmarked, so leaving one out would compare unlike things"
        )
        return [
            _entry(change, report.projected, not_measured="patch_mismatch", note=note)
            for change in changes
        ]
    variants = [_variant(i, changes, baseline, kb) for i in range(len(changes))]
    measurer = _Measurer(
        runner, baseline, report, loss_tolerance, None if report.projected else budget
    )
    return [measurer.entry(variant, changes) for variant in variants]


def _rebuilt(baseline: WorkloadConfig, changes: Sequence[Change]) -> WorkloadConfig | None:
    """The whole patch rebuilt from the workload's config, as every variant is built."""
    try:
        return apply_changes(baseline, changes)
    except ValueError:
        return None


def _variant(
    index: int, changes: Sequence[Change], baseline: WorkloadConfig, kb: KnowledgeBase
) -> _Variant:
    """Leave change ``index`` out, and with it every change whose rule then no longer holds."""
    variant = _Variant(index, {index})
    grew = True
    while grew:
        grew = False
        for other in range(len(changes)):
            if other in variant.left_out:
                continue
            why = _needs(other, variant.left_out, changes, baseline, kb)
            if why is not None:
                variant.left_out.add(other)
                variant.needs.append(why)
                grew = True
    kept = [c for i, c in enumerate(changes) if i not in variant.left_out]
    try:
        variant.config = apply_changes(baseline, kept)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        variant.problem = f"without it the rest of the patch is not a valid config ({exc})"
    return variant


def _needs(
    other: int,
    left_out: set[int],
    changes: Sequence[Change],
    baseline: WorkloadConfig,
    kb: KnowledgeBase,
) -> str | None:
    """Why change ``other`` cannot stay once ``left_out`` is gone, or None when it can.

    Its rule's condition is read on the patch without that rule's own changes:
    it must hold with everything else in place and fail without ``left_out``.
    """
    rule_id = changes[other].rule_id
    if rule_id not in kb:
        return None
    rule = kb.get(rule_id)
    own = {i for i, c in enumerate(changes) if c.rule_id == rule_id}
    try:
        everything_else = apply_changes(
            baseline, [c for i, c in enumerate(changes) if i not in own]
        )
        without = apply_changes(
            baseline, [c for i, c in enumerate(changes) if i not in own | left_out]
        )
    except ValueError:
        return None
    held, fails = everything_else.model_dump(), without.model_dump()
    if not rule.when.evaluate(held) or rule.when.evaluate(fails):
        return None
    parts = rule.when.parts if isinstance(rule.when, All) else (rule.when,)
    lost = [part.describe() for part in parts if part.evaluate(held) and not part.evaluate(fails)]
    return f"{changes[other].field} ({rule_id} needs {' and '.join(lost)})"


@dataclass(frozen=True)
class _Figure:
    """The patch-without's speedup over the baseline (None: no number), its interval when
    measured over several windows, a remark on how it went, and why a config that might
    run has no number."""

    speedup: float | None
    ci: tuple[float, float] | None = None
    remark: str = ""
    not_measured: NotMeasured | None = None


class _Measurer:
    """Figures for variants: projected once each, or measured beside a fresh baseline while
    the time budget lasts."""

    def __init__(
        self,
        runner: Runner,
        baseline: WorkloadConfig,
        report: Report,
        loss_tolerance: float,
        budget: TimeBudget | None,
    ) -> None:
        self.runner = runner
        self.baseline = baseline
        self.report = report
        self.loss_tolerance = loss_tolerance
        self.budget = budget
        self.pairs = 0
        self.done: dict[str, _Figure] = {}

    def entry(self, variant: _Variant, changes: Sequence[Change]) -> ChangeAttribution:
        change = changes[variant.index]
        together = [changes[i].field for i in sorted(variant.left_out - {variant.index})]
        needs = f"not separable from {', '.join(variant.needs)}" if variant.needs else ""
        if variant.config is None:
            assert variant.problem is not None
            return _entry(
                change,
                self.report.projected,
                together_with=together,
                note=_join([needs, f"not separable: {variant.problem}"]),
            )
        key = variant.config.model_dump_json()
        if key not in self.done:
            self.done[key] = self._figure(variant.config)
        figure = self.done[key]
        if figure.speedup is None:
            return _entry(
                change,
                self.report.projected,
                together_with=together,
                not_measured=figure.not_measured,
                note=_join([needs, figure.remark]),
            )
        rest = "both" if len(variant.needs) == 1 else "all of them"
        notes = [f"{needs}: the figure is the patch without {rest}"] if needs else []
        notes += [figure.remark] if figure.remark else []
        share = self._share(figure, notes)
        return _entry(
            change,
            self.report.projected,
            speedup_without=round(figure.speedup, 4),
            contribution=None if share is None else round(share, 4),
            together_with=together,
            note=_join(notes),
        )

    def _figure(self, config: WorkloadConfig) -> _Figure:
        if config == self.baseline:
            return _Figure(1.0)
        try:
            if self.report.projected:
                run = self._run(config)
                return _Figure(run.tokens_per_sec / self.report.before.tokens_per_sec)
            if self.budget is not None and self.budget.spent():
                raise _NoFigure(
                    f"not measured: the workload's time budget "
                    f"({self.budget.describe()}, shared with the verdict's "
                    "sampling) was spent before its turn",
                    "time_budget",
                )
            return self._paired(config)
        except _NoFigure as exc:
            return _Figure(None, remark=str(exc), not_measured=exc.not_measured)

    def _paired(self, config: WorkloadConfig) -> _Figure:
        """A fresh baseline run and a run of ``config``, in alternating order from pair to
        pair; window i of one paired with window i of the other, as the verdict pairs them."""
        variant_first = self.pairs % 2 == 1
        self.pairs += 1
        if variant_first:
            rest = self._run(config)
            base = self._run(self.baseline, baseline=True)
        else:
            base = self._run(self.baseline, baseline=True)
            rest = self._run(config)
        estimate = paired_speedup(*paired_windows(base, rest))
        problem = loss_problem(base, rest, self.loss_tolerance)
        return _Figure(
            estimate.speedup,
            estimate.ci if estimate.n > 1 else None,
            f"loss check of the patch without it: {problem}" if problem else "",
        )

    def _run(self, config: WorkloadConfig, baseline: bool = False) -> RunMetrics:
        """A run of ``config``; _NoFigure says why there is none."""
        try:
            return self.runner.run(config, self.report.before.steps)
        except DeviceFault as exc:  # a crashed worker says nothing about the config
            raise _NoFigure(
                f"not measured: the device worker failed ({exc})", "device_fault"
            ) from None
        except (GoblinError, ValueError) as exc:
            if baseline:
                raise _NoFigure(
                    f"not measured: the baseline run beside it failed ({exc})", "baseline_failed"
                ) from None
            raise _NoFigure(
                f"not separable: without it the patch does not run here ({exc})"
            ) from None

    def _share(self, figure: _Figure, notes: list[str]) -> float | None:
        """``ln(S / S_without) / ln(S)``; None when the patch's own gain is too small to share.

        A measured figure whose interval overlaps the whole patch's is noted: leaving the
        change out made no difference the runs could tell from noise.
        """
        assert figure.speedup is not None
        whole = math.log(self.report.speedup)
        if abs(whole) < FLAT:
            notes.append("the patch's own speedup is too close to 1× to share out")
            return None
        whole_ci = self.report.speedup_ci or (self.report.speedup, self.report.speedup)
        part_ci = figure.ci or (figure.speedup, figure.speedup)
        overlap = part_ci[0] <= whole_ci[1] and whole_ci[0] <= part_ci[1]
        if overlap and (figure.ci or self.report.speedup_ci):
            notes.append(
                f"within the noise: without it {_interval(figure.speedup, figure.ci)}, "
                f"the whole patch {_interval(self.report.speedup, whole_ci)}"
            )
        return math.log(self.report.speedup / figure.speedup) / whole


def _interval(point: float, ci: tuple[float, float] | None) -> str:
    return (
        f"{point:.2f}×"
        if ci is None or ci[0] == ci[1]
        else (f"{point:.2f}× [{ci[0]:.2f}, {ci[1]:.2f}]")
    )


def _entry(
    change: Change,
    projected: bool,
    speedup_without: float | None = None,
    contribution: float | None = None,
    together_with: list[str] | None = None,
    not_measured: NotMeasured | None = None,
    note: str = "",
) -> ChangeAttribution:
    return ChangeAttribution(
        field=change.field,
        old=change.old,
        new=change.new,
        rule_id=change.rule_id,
        speedup_without=speedup_without,
        contribution=contribution,
        projected=projected,
        together_with=together_with or [],
        not_measured=not_measured,
        note=note,
    )


def _join(notes: Sequence[str]) -> str:
    return "; ".join(note for note in notes if note)
