"""A workload that does not fit its device is a finding: the changes that make it fit.

The smallest workload a newcomer writes, ``model: llama-3-8b``, takes the Trainer's
defaults (fp32, micro-batch 8, full fine-tune) and projects to more memory than any
single GPU has. Erroring with "projected OOM" leaves them at a dead end; a careful
colleague would say "it does not fit; in bf16 with checkpointing and micro-batch 2
(gradient accumulation 4, the same global batch) it does, at this speed".

The moves, in order, each kept only while the config still does not fit, are the ones
that leave the training the same: bf16 mixed precision instead of fp32/tf32 (the
``bf16-mixed-precision`` rule), activation checkpointing, then halving the micro-batch
while doubling gradient accumulation, so that the global batch (and so the optimisation)
is unchanged. Moves that change what is trained (LoRA instead of a full fine-tune, an
8-bit optimizer) are left to the user. Sources: Hugging Face, "Efficient training on a
single GPU" (https://huggingface.co/docs/transformers/perf_train_gpu_one: mixed
precision, gradient checkpointing, gradient accumulation keep the effective batch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pytest_goblin.catalogue.devices import DeviceSpec
from pytest_goblin.errors import WorkloadError
from pytest_goblin.runner.analytic import AnalyticModel, launch_description
from pytest_goblin.schemas import (
    AuditUsage,
    Change,
    PatchSummary,
    Report,
    WorkloadConfig,
    WorkloadResult,
)
from pytest_goblin.verdict.result import from_report
from pytest_goblin.workload.read import Workload, plan_patch

FIT_RULE = "fits-device-memory"
"""The rule id of the checkpointing and micro-batch moves: they come from the device's
memory, not from a rule of the knowledge base."""
PRECISION_RULE = "bf16-mixed-precision"


@dataclass(frozen=True)
class Fit:
    """What makes a config fit: the changes, the config with them, and the footprints."""

    changes: list[Change]
    config: WorkloadConfig
    needed_gb: float
    """The original config's projected peak."""
    fitted_gb: float
    """The peak with ``changes``; above ``device_gb`` when even the last move does not fit."""
    device_gb: float
    device: str
    breakdown: str
    """The original config's peak by component (weights, grads, optimizer, …)."""
    launch: str = "one device"
    """How the estimate assumes the run is launched (ranks, sharding, offload)."""

    @property
    def fits(self) -> bool:
        return self.fitted_gb <= self.device_gb

    def describe(self) -> str:
        """``needs 211.9 GB of 192 GB on AMD Instinct MI300X; with the patch: 61.0 GB``."""
        needs = (
            f"does not fit: projected to need {self.needed_gb:.1f} GB of {self.device_gb:g} GB "
            f"on {self.device} ({self.breakdown})"
        )
        if self.fits:
            return f"{needs}; with the patch below it needs {self.fitted_gb:.1f} GB"
        moves = ", ".join(f"{c.field} {c.new}" for c in self.changes)
        return (
            f"{needs}, assuming {self.launch}; even with {moves} it needs "
            f"{self.fitted_gb:.1f} GB: a full fine-tune this size needs LoRA, an 8-bit "
            "optimizer or more devices (a launch over several devices, sharded or offloaded, "
            "is described in the sidecar: world_size, strategy, zero_stage, "
            "offload_optimizer, offload_params)"
        )


def fit(config: WorkloadConfig, spec: DeviceSpec) -> Fit | None:
    """The moves that make ``config`` fit ``spec``'s memory; None when it already fits."""
    runner = AnalyticModel(spec)
    original = runner.memory(config)
    needed = original.total_gb
    if needed <= spec.memory_gb:
        return None
    changes: list[Change] = []
    current = config
    for move in _moves(config):
        if runner.memory(current).total_gb <= spec.memory_gb:
            break
        for change in move:
            changes = _merged(changes, change)
        current = current.model_copy(update={change.field: change.new for change in move})
    return Fit(
        changes=changes,
        config=WorkloadConfig.model_validate(current.model_dump()),
        needed_gb=needed,
        fitted_gb=runner.memory(current).total_gb,
        device_gb=spec.memory_gb,
        device=spec.display_name,
        breakdown=original.breakdown(),
        launch=launch_description(config),
    )


def _moves(config: WorkloadConfig) -> list[list[Change]]:
    """Every move the ladder may take, in order, each relative to the one before; a
    micro-batch move is its batch and accumulation changes together (the global batch
    stays the same)."""
    moves = []
    if config.precision in ("fp32", "tf32"):
        moves.append(
            [Change(field="precision", old=config.precision, new="bf16", rule_id=PRECISION_RULE)]
        )
    if not config.gradient_checkpointing:
        moves.append(
            [Change(field="gradient_checkpointing", old=False, new=True, rule_id=FIT_RULE)]
        )
    batch, accum = config.batch_size, config.grad_accum_steps
    while batch > 1:
        smaller = batch // 2 if batch % 2 == 0 else 1
        factor = batch // smaller
        moves.append(
            [
                Change(field="batch_size", old=batch, new=smaller, rule_id=FIT_RULE),
                Change(field="grad_accum_steps", old=accum, new=accum * factor, rule_id=FIT_RULE),
            ]
        )
        batch, accum = smaller, accum * factor
    return moves


def _merged(changes: list[Change], change: Change) -> list[Change]:
    """``changes`` with ``change`` added; a field changed again keeps its first ``old``."""
    for i, earlier in enumerate(changes):
        if earlier.field == change.field:
            return [*changes[:i], earlier.model_copy(update={"new": change.new}), *changes[i + 1 :]]
    return [*changes, change]


def compose(first: list[Change], then: list[Change]) -> list[Change]:
    """The changes of ``first`` followed by ``then`` (whose ``old`` values are ``first``'s
    results), as one patch of the original config."""
    combined = list(first)
    for change in then:
        combined = _merged(combined, change)
    return [c for c in combined if c.old != c.new]


def fitted_workload(workload: Workload, runner: object) -> tuple[Fit | None, Workload]:
    """The workload as it would fit ``runner``'s device, and the fit; ``(None, workload)``
    when it fits already or the runner has no analytic model (measured devices check
    their footprint themselves). WorkloadError when no move of the ladder makes it fit,
    or when its file cannot take the moves that would."""
    spec = getattr(runner, "spec", None)
    if not isinstance(spec, DeviceSpec):
        return None, workload
    fitting = fit(workload.config, spec)
    if fitting is None:
        return None, workload
    display = workload.source.display_path
    if not fitting.fits:
        raise WorkloadError(display, fitting.describe())
    planned = plan_patch(workload, fitting.changes)
    if planned.dropped:
        reasons = "; ".join(f"{change.field}: {why}" for change, why in planned.dropped)
        raise WorkloadError(
            display, f"{fitting.describe()}, but the file cannot take it: {reasons}"
        )
    source = replace(workload.source, text=planned.text)
    return fitting, replace(workload, config=fitting.config, source=source)


def unfit_result(
    nodeid: str,
    workload: Workload,
    fitting: Fit,
    report: Report,
    threshold: float,
    usage: AuditUsage | None = None,
) -> WorkloadResult:
    """The failing result of a workload that does not fit: the patch is the fit's moves
    and the audit's changes on top of them, as one diff of the user's file; ``patched``
    is what that patch projects to, and there is no baseline to compare it with."""
    result = from_report(nodeid, workload, report, threshold, usage)
    later = report.patch.changes if report.patch else []
    changes = compose(fitting.changes, later)
    planned = plan_patch(workload, changes)
    if planned.dropped:  # the audit's own changes are written against the fitted file
        changes, planned = fitting.changes, plan_patch(workload, fitting.changes)
    return result.model_copy(
        update={
            "outcome": "failed",
            "reason": fitting.describe(),
            "verdict_reason": fitting.describe(),
            "baseline": None,
            "patched": report.after if report.patch else report.before,
            "speedup": None,
            "speedup_ci": None,
            "inconclusive": False,
            "patch": PatchSummary(changes=changes, diff=planned.diff),
            "notes": [
                *result.notes,
                "the workload as written does not fit the device; the numbers are those of "
                "the patched config",
            ],
        }
    )


def unfit_message(result: WorkloadResult, fitting: Fit) -> str:
    """The failure text: that it does not fit, what the patch projects to, the changes
    and the diff."""
    lines = [f"{result.name}: {fitting.describe()}"]
    if result.patched is not None:
        run = result.patched
        label = "projected" if run.projected else "measured"
        lines.append(
            f"  patched: {run.tokens_per_sec:,.0f} tok/s, step {run.step_time_s:.3f} s, "
            f"peak memory {run.hbm_peak_gb:.1f} GB ({label})"
        )
    if result.patch is not None:
        lines += ["", "changes:"]
        lines += [f"  {c.field}: {c.old} -> {c.new}  [{c.rule_id}]" for c in result.patch.changes]
        lines += ["", result.patch.diff.rstrip("\n")]
    return "\n".join(lines)
