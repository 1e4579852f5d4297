"""The six audit tools, their argument models and the dispatcher.

Each tool is a typed function over the AuditState. Arguments are validated
against a pydantic model (whose JSON schema is what the model sees), common
mis-nesting is repaired, and ``call`` never raises: every outcome is a
ToolResult the loop can hand back to the model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_goblin.agent.state import AuditState
from pytest_goblin.errors import DeviceFault, GoblinError
from pytest_goblin.kb.schema import expected_range
from pytest_goblin.schemas import (
    WASTE_BUCKETS,
    Advisory,
    Change,
    Patch,
    Report,
    RuleApplication,
    RunMetrics,
    SearchCandidate,
    SkippedRule,
    ToolResult,
    WorkloadConfig,
)

if TYPE_CHECKING:
    from pytest_goblin.kb.loader import MatchResult
    from pytest_goblin.workload.read import PlannedPatch


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParseConfigArgs(_Args):
    file_path: str = Field(description="path of the workload file under audit")


class _ConfigRef(_Args):
    config_id: str | None = Field(default=None, description="id from parse_config (preferred)")
    config: dict[str, Any] | str | None = Field(
        default=None, description="a full WorkloadConfig object, or an id"
    )


class ProfileRunArgs(_ConfigRef):
    steps: int = Field(default=10, ge=1, le=100)


class QueryKbArgs(_Args):
    symptom: str | None = None
    symptoms: list[str] | None = None
    config_id: str | None = Field(
        default=None, description="rules whose conditions hold for this config come first"
    )
    top_k: int = Field(default=5, ge=1, le=20)


class ProposePatchArgs(_ConfigRef):
    rule_ids: list[str] = Field(min_length=1, description="ids from query_rocm_kb")
    micro_batch: int | None = Field(
        default=None,
        ge=1,
        description="with a micro-batch rule: the per-device batch to use, one of its "
        "micro_batch_options (grad_accum_steps shrinks by the same factor); the largest "
        "option by default",
    )


class BenchmarkArgs(_ConfigRef):
    patch_id: str | None = Field(default=None, description="benchmark a patch's new config")
    steps: int = Field(default=50, ge=10, le=500)


class CompareRunsArgs(_Args):
    workload_name: str
    before: str | dict[str, Any] = Field(description="baseline metrics_id (or RunMetrics)")
    after: str | dict[str, Any] = Field(description="patched metrics_id (or RunMetrics)")
    patch: str | dict[str, Any] | None = Field(
        default=None, description="patch_id (or Patch); null when nothing was patched"
    )
    notes: list[str] = Field(default_factory=list)


class ToolFailure(GoblinError):
    """A tool refused its input; the message tells the model what to do instead."""


def _resolve_config(state: AuditState, ref: _ConfigRef) -> tuple[str | None, WorkloadConfig]:
    """The config a tool should act on, and its id, from an id, a patch id or an object.

    A patch id stands for the config that patch produced.
    """
    key = (
        getattr(ref, "patch_id", None)
        or ref.config_id
        or (ref.config if isinstance(ref.config, str) else None)
    )
    if key:
        key = state.config_of_patch.get(key, key)
        if key in state.configs:
            return key, state.configs[key]
        raise ToolFailure(
            f"unknown id {key!r}; known configs: {sorted(state.configs)}, "
            f"patches: {sorted(state.patches)}"
        )
    if isinstance(ref.config, dict):
        return None, WorkloadConfig.model_validate(ref.config)
    if state.root_config_id:
        return state.root_config_id, state.configs[state.root_config_id]
    raise ToolFailure("give config_id (from parse_config) or a config object")


def parse_config(state: AuditState, args: ParseConfigArgs) -> dict[str, Any]:
    """Read the workload under audit; other files are out of bounds."""
    workload = state.workload
    if workload is None:
        raise ToolFailure("no workload file is attached to this audit")
    requested = Path(args.file_path)
    allowed = {workload.source.display_path, str(workload.source.path)}
    if args.file_path not in allowed and requested.resolve() != workload.source.path.resolve():
        raise ToolFailure(
            f"this audit may only read its own workload file: {workload.source.display_path}"
        )
    config_id = state.store(state.configs, "cfg", workload.config)
    return {
        "config_id": config_id,
        "name": workload.name,
        "format": workload.source.format,
        "config": workload.config.model_dump(mode="json"),
        "sources": workload.sources,
    }


def _symptoms(metrics: RunMetrics) -> list[str]:
    """Free-text symptoms from where the step time goes, largest first."""
    budget = metrics.waste_budget.model_dump()
    total = sum(budget.values()) or metrics.step_time_s or 1.0
    descriptions = {
        "data_wait": "accelerator idle waiting for input batches from the dataloader",
        "host_gap": "host overhead and kernel launch gaps between kernels",
        "comm_excess": "time in gradient all-reduce collectives not overlapped with compute",
        "memory_headroom": "device memory left unused; batch could be larger",
        "precision_path": "matmuls running in a slow precision (fp32) instead of bf16 matrix cores",
        "kernel_shape": "attention kernel inefficient: eager softmax attention materialises the "
        "score matrix",
    }
    found = [
        (budget[bucket] / total, bucket)
        for bucket in WASTE_BUCKETS
        if budget.get(bucket, 0.0) / total >= 0.02
    ]
    return [
        f"{bucket}: {share:.0%} of step time, {descriptions[bucket]}"
        for share, bucket in sorted(found, reverse=True)
    ]


def profile_run(state: AuditState, args: ProfileRunArgs) -> dict[str, Any]:
    """A short run of the config, and the symptoms it shows."""
    config_id, config = _resolve_config(state, args)
    metrics = state.run(config, args.steps)
    if config_id is not None and config_id == state.root_config_id:
        state.set_profile(metrics)
    return {"metrics": metrics.model_dump(mode="json"), "symptoms": _symptoms(metrics)}


def _lite_rule(
    rule: Any, matches: bool, options: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A rule as the model sees it. A rule the search may leave out (``try_without``:
    it is fit-guarded or it compiles) and a micro-batch rule's admissible batches
    (``micro_batch_options``, those that fit) say what candidates it allows. A rule
    that fits only at a smaller micro-batch shows that variant as its transform."""
    lite = {
        "id": rule.id,
        "kind": rule.kind,
        "symptom": rule.symptom,
        "transform": dict(rule.set),
        "expected_impact": rule.expected_impact,
        "citation": list(rule.citation),
        "matches_config": matches,
    }
    if rule.kind == "patch" and (rule.fits is not None or rule.category == "compile"):
        lite["try_without"] = True
    if rule.fits is not None:
        lite["max_memory_fraction"] = rule.fits.max_memory_fraction
    if rule.search == "micro_batch":
        lite["transform"] = {
            "batch_size": "x k",
            "grad_accum_steps": "/ k (global batch unchanged)",
        }
        if options is not None:
            lite["micro_batch_options"] = [values["batch_size"] for values in options]
    if rule.search == "smaller_micro_batch" and options:
        lite["transform"] = dict(options[0])
    return lite


def query_rocm_kb(state: AuditState, args: QueryKbArgs) -> dict[str, Any]:
    """Rules whose conditions hold for the config first, then text matches."""
    queries = [q.strip() for q in [args.symptom or "", *(args.symptoms or [])] if q.strip()]
    config_id = args.config_id or state.root_config_id
    rules: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    if config_id:
        if config_id not in state.configs:
            raise ToolFailure(f"unknown config_id {config_id!r}; known: {sorted(state.configs)}")
        result = state.match(state.configs[config_id])
        rules = [_lite_rule(rule, True, result.options.get(rule.id)) for rule in result.applicable]
        skipped = [{"rule_id": rid, "reason": why} for rid, why in result.skipped]
    elif not queries:
        raise ToolFailure("give symptom, symptoms or config_id")
    seen = {rule["id"] for rule in rules} | {s["rule_id"] for s in skipped}
    for rule, _score in state.search(queries, args.top_k):
        if rule.id not in seen:
            seen.add(rule.id)
            rules.append(_lite_rule(rule, False))
    return {
        "rules": rules,
        "skipped": skipped,
        "platform": state.context.platform,
        "facts": state.facts.data,
        "measure_candidates": state.context.measure_candidates,
    }


def _merge(base: Patch | None, new: list[Change]) -> list[Change]:
    """The changes of a patch built on top of ``base``, relative to the original config.

    A later change to a field the base already changed keeps the original old
    value (eager → sdpa, then sdpa → flash, is eager → flash).
    """
    merged = {change.field: change for change in (base.changes if base else [])}
    for change in new:
        earlier = merged.get(change.field)
        old = earlier.old if earlier else change.old
        merged[change.field] = change.model_copy(update={"old": old})
    return [change for change in merged.values() if change.old != change.new]


def propose_patch(state: AuditState, args: ProposePatchArgs) -> dict[str, Any]:
    """Apply the requested rules whose conditions really hold for the config.

    Proposing on a config that an earlier patch produced builds on that patch,
    so a rule that only applies after another (flash attention needs bf16)
    joins the same patch and diff.
    """
    config_id, config = _resolve_config(state, args)
    kb = state.context.kb
    match = state.match(config)
    applicable = {rule.id: rule for rule in match.applicable}
    reasons = dict(match.skipped)
    chosen = []
    skipped: list[SkippedRule] = []
    for rule_id in dict.fromkeys(args.rule_ids):
        rule = applicable.get(rule_id)
        if rule is None:
            known = any(r.id == rule_id for r in kb.rules)
            why = reasons.get(rule_id) or (
                "its condition does not hold for this config on " + state.context.platform
                if known
                else "no rule with this id in the knowledge base"
            )
            skipped.append(SkippedRule(rule_id=rule_id, reason=why))
        elif rule.kind != "patch":
            skipped.append(SkippedRule(rule_id=rule_id, reason="advisory: not a config change"))
        else:
            chosen.append(rule)
    # a micro-batch rule's batch wins over one a change made room with (checkpointing off
    # at a smaller micro-batch): the whole patch's fit guard then judges that batch
    chosen.sort(key=lambda rule: rule.search == "micro_batch")
    new_changes = [
        Change(field=path, old=old, new=new, rule_id=rule.id)
        for rule in chosen
        for path, old, new in rule.changes(
            config, values=_values(rule, config, match.options.get(rule.id), args.micro_batch)
        )
    ]
    if not new_changes:
        detail = "; ".join(f"{s.rule_id}: {s.reason}" for s in skipped) or "nothing to change"
        raise ToolFailure(f"no change to propose ({detail})")
    base_id = state.patch_of_config.get(config_id or "")
    base = state.patches.get(base_id) if base_id is not None else None
    changes = _merge(base, new_changes)
    root = state.configs[state.root_config_id] if base and state.root_config_id else config
    diff, notes = "", list(base.notes if base else [])
    unwritten: dict[str, str] = {}
    if state.workload is not None and root == state.workload.config:
        changes, diff, unwritten = _write_into_file(state, base, changes, notes)
    from pytest_goblin.workload.read import apply_changes

    new_config = apply_changes(root, changes)
    rules = {rule.id: rule for rule in chosen}
    if base:
        rules = {r.rule_id: kb.get(r.rule_id) for r in base.rationale} | rules
        skipped = [*base.skipped, *skipped]
    live = {change.rule_id for change in changes}
    for rule_id in [rid for rid in rules if rid not in live]:
        reason = unwritten.get(rule_id, "superseded by a later rule")
        skipped.append(SkippedRule(rule_id=rule_id, reason=reason))
        del rules[rule_id]
    speedup, peak = _project(state, root, new_config, list(rules.values()))
    low, high = expected_range(list(rules.values()))
    patch = Patch(
        new_config=new_config,
        changes=changes,
        rule_ids=list(rules),
        diff=diff,
        rationale=[
            RuleApplication(
                rule_id=r.id,
                rationale=r.expected_impact,
                citation=list(r.citation),
                targets_bucket=r.targets_bucket,
            )
            for r in rules.values()
        ],
        skipped=skipped,
        expected_speedup_low=low,
        expected_speedup_high=high,
        notes=notes,
    )
    patch_id = state.store(state.patches, "patch", patch)
    new_config_id = state.store(state.configs, "cfg", new_config)
    state.patch_of_config[new_config_id] = patch_id
    state.config_of_patch[patch_id] = new_config_id
    state.projections[patch_id] = (speedup, peak)
    return {
        "patch_id": patch_id,
        "config_id": new_config_id,
        "projected_speedup": round(speedup, 4),
        "peak_memory_gb": None if peak is None else round(peak, 2),
        **patch.model_dump(mode="json"),
    }


def _values(
    rule: Any,
    config: WorkloadConfig,
    options: list[dict[str, Any]] | None,
    micro_batch: int | None,
) -> dict[str, Any] | None:
    """The variant of a rule's change to apply: for a micro-batch rule the requested
    batch (one that fits) or the largest that fits; for a rule that makes room with a
    smaller micro-batch the one variant admitted; the rule's ``set`` otherwise."""
    if rule.search is None:
        return None
    admitted = options if options is not None else rule.variants(config)
    if not admitted:
        raise ToolFailure(f"{rule.id}: no micro-batch fits this device")
    if rule.search == "smaller_micro_batch":
        return admitted[0]
    if micro_batch is None:
        return admitted[-1]
    for values in admitted:
        if values["batch_size"] == micro_batch:
            return values
    choices = ", ".join(str(values["batch_size"]) for values in admitted)
    raise ToolFailure(
        f"{rule.id}: micro_batch {micro_batch} is not admissible; choose one of {choices} "
        "(each divides the global batch and fits the device)"
    )


def _project(
    state: AuditState, root: WorkloadConfig, patched: WorkloadConfig, rules: list[Any]
) -> tuple[float, float | None]:
    """The patched config's projected speedup over ``root`` and its predicted peak, GB.

    A patch with a fit-guarded rule must fit under the strictest guard as a whole
    (checkpointing off and a larger micro-batch may each fit, and not together);
    one the analytic model projects out of memory is refused outright.
    """
    from pytest_goblin.errors import OutOfMemory

    facts = state.facts
    guards = [rule.fits.max_memory_fraction for rule in rules if rule.fits is not None]
    if guards:
        misfit = facts.misfit(patched, min(guards))
        if misfit is not None:
            guarded = ", ".join(rule.id for rule in rules if rule.fits is not None)
            raise ToolFailure(f"the patch {misfit}; leave out {guarded} or choose a smaller batch")
    try:
        before = state.project(root).tokens_per_sec
        after = state.project(patched).tokens_per_sec
    except OutOfMemory as exc:
        raise ToolFailure(f"the patched config does not fit: {exc}") from None
    return after / before, facts.peak_gb(patched)


def _write_into_file(
    state: AuditState, base: Patch | None, changes: list[Change], notes: list[str]
) -> tuple[list[Change], str, dict[str, str]]:
    """The changes the workload's own file can take, its diff, and why others were left out.

    A change the file's format cannot express is dropped (and noted), never
    benchmarked: what is measured is what the diff gives.
    """
    from pytest_goblin.workload.read import plan_patch

    assert state.workload is not None
    source = state.workload.source
    try:
        planned = plan_patch(state.workload, changes)
        # a micro-batch move is batch_size and grad_accum_steps together: writing one
        # without the other would change the global batch, so neither is written
        kb = state.context.kb
        split = {
            change.rule_id
            for change, _ in planned.dropped
            if change.rule_id in kb and kb.get(change.rule_id).search is not None
        }
        if split:
            whole = plan_patch(state.workload, [c for c in changes if c.rule_id not in split])
            half = "its other half cannot be written, and alone it changes the global batch"
            gone = {id(c) for c, _ in planned.dropped}
            planned = dataclasses.replace(
                whole,
                dropped=[
                    *whole.dropped,
                    *((c, why) for c, why in planned.dropped if c.rule_id in split),
                    *((c, half) for c in changes if c.rule_id in split and id(c) not in gone),
                ],
            )
        planned = _without_orphans(state, planned)
    except ValueError as exc:
        raise ToolFailure(f"cannot write the patch into {source.display_path}: {exc}") from None
    unwritten: dict[str, str] = {}
    for change, why in planned.dropped:
        reason = why if why == UNLOCKED else f"not expressible in this {source.format} file: {why}"
        unwritten.setdefault(change.rule_id, reason)
        note = f"left out {change.field} {change.old} -> {change.new} [{change.rule_id}]: {reason}"
        if note not in notes:
            notes.append(note)
    earlier = base.changes if base else []
    if not [change for change in planned.changes if change not in earlier]:
        detail = "; ".join(f"{c.rule_id}: {why}" for c, why in planned.dropped)
        raise ToolFailure(f"no change to propose that {source.display_path} can express ({detail})")
    return planned.changes, planned.diff, unwritten


UNLOCKED = "its condition held only with a change that was left out"


def _without_orphans(state: AuditState, planned: PlannedPatch) -> PlannedPatch:
    """``planned`` less the rules that held only thanks to a change it left out.

    Rules see each other's changes (QLoRA -> LoRA lets torch.compile apply), so when
    a change is left out, every kept rule is matched again on the workload's config
    with the other kept changes, and with the left-out rules out of the match, after
    each drop, until all still hold.
    """
    from pytest_goblin.agent.state import known_versions
    from pytest_goblin.workload.read import apply_changes, plan_patch

    assert state.workload is not None
    context = state.context
    while planned.dropped and planned.changes:
        live = {change.rule_id for change in planned.changes}
        ignore = context.ignore | {c.rule_id for c, _ in planned.dropped if c.rule_id not in live}
        orphans = set()
        for rule_id in live:
            others = [change for change in planned.changes if change.rule_id != rule_id]
            match = context.kb.match(
                apply_changes(state.workload.config, others),
                context.platform,
                ignore=ignore,
                versions=known_versions(context.runner.info),
                facts=state.facts,
            )
            if rule_id not in {rule.id for rule in match.applicable}:
                orphans.add(rule_id)
        if not orphans:
            break
        kept = plan_patch(state.workload, [c for c in planned.changes if c.rule_id not in orphans])
        planned = dataclasses.replace(
            kept,
            dropped=[
                *planned.dropped,
                *kept.dropped,
                *((c, UNLOCKED) for c in planned.changes if c.rule_id in orphans),
            ],
        )
    return planned


def benchmark(state: AuditState, args: BenchmarkArgs) -> dict[str, Any]:
    """Run the config for ``steps`` steps on the session's device."""
    _, config = _resolve_config(state, args)
    metrics = state.run(config, args.steps)
    metrics_id = state.store(state.metrics, "run", metrics)
    state.config_of_run[metrics_id] = config
    return {"metrics_id": metrics_id, **metrics.model_dump(mode="json")}


def _metrics(state: AuditState, ref: str | dict[str, Any], side: str) -> RunMetrics:
    if isinstance(ref, str):
        if ref not in state.metrics:
            raise ToolFailure(f"unknown {side} metrics_id {ref!r}; known: {sorted(state.metrics)}")
        return state.metrics[ref]
    data = {k: v for k, v in ref.items() if k != "metrics_id"}
    return RunMetrics.model_validate(data)


def _patch(state: AuditState, ref: str | dict[str, Any] | None) -> Patch | None:
    if ref is None:
        return None
    if isinstance(ref, str):
        if ref not in state.patches:
            raise ToolFailure(f"unknown patch_id {ref!r}; known: {sorted(state.patches)}")
        return state.patches[ref]
    if "patch_id" in ref and ref["patch_id"] in state.patches:
        return state.patches[ref["patch_id"]]
    data = {k: v for k, v in ref.items() if k in Patch.model_fields}
    return Patch.model_validate(data)


def _root_match(state: AuditState) -> MatchResult | None:
    """The knowledge base's match for the audited (unpatched) config, if one was parsed."""
    config_id = state.root_config_id
    return None if config_id is None else state.match(state.configs[config_id])


def _advisories(state: AuditState) -> list[Advisory]:
    """Advisory rules that hold for the audited config: reported beside the verdict."""
    match = _root_match(state)
    return [
        Advisory(
            id=rule.id, advice=rule.advice or rule.expected_impact, citation=list(rule.citation)
        )
        for rule in (match.advisories if match else [])
    ]


def _waived(state: AuditState) -> list[str]:
    """Rules that hold for the audited config but a waiver (goblin ignore) switched off."""
    match = _root_match(state)
    return match.waived if match else []


def _mfu(metrics: RunMetrics) -> str:
    return "unknown" if metrics.mfu_pct is None else f"{metrics.mfu_pct:.0f}%"


def compare_runs(state: AuditState, args: CompareRunsArgs) -> dict[str, Any]:
    """The Report: patched tokens/s over baseline tokens/s, like with like only."""
    before = _metrics(state, args.before, "before")
    after = _metrics(state, args.after, "after")
    if before.projected != after.projected:
        raise ToolFailure(
            "cannot compare a projected number with a measured one; benchmark both configs "
            "on the same runner"
        )
    if before.device != after.device:
        raise ToolFailure(f"runs are from different devices ({before.device}, {after.device})")
    if before.tokens_per_sec <= 0:
        raise ToolFailure("the baseline has no throughput to compare against")
    patch = _patch(state, args.patch)
    speedup = after.tokens_per_sec / before.tokens_per_sec
    label = "projected" if before.projected else "measured"
    report = Report(
        workload_name=args.workload_name,
        device=state.context.runner.info,
        before=before,
        after=after,
        patch=patch,
        speedup=round(speedup, 4),
        speedup_ci=None,
        projected=before.projected,
        summary_line=(
            f"Tokens/s ({label}): {before.tokens_per_sec:,.0f} → {after.tokens_per_sec:,.0f} "
            f"({speedup:.2f}×). MFU: {_mfu(before)} → {_mfu(after)}."
        ),
        notes=[*args.notes, *(patch.notes if patch else [])],
        advisories=_advisories(state),
        waived=_waived(state),
        candidates=_candidates(state, before, patch),
    )
    report_id = state.store(state.reports, "report", report)
    return {"report_id": report_id, **report.model_dump(mode="json")}


def _candidates(
    state: AuditState, before: RunMetrics, chosen: Patch | None
) -> list[SearchCandidate]:
    """The patches the audit proposed, best first: measured against ``before`` where one
    was benchmarked on the same runner, else projected. One entry per distinct config."""
    found: dict[str, SearchCandidate] = {}
    for patch_id, (projected_speedup, peak) in state.projections.items():
        patch = state.patches[patch_id]
        key = patch.new_config.model_dump_json()
        runs = [
            state.metrics[run_id]
            for run_id, config in state.config_of_run.items()
            if config == patch.new_config and state.metrics[run_id].projected == before.projected
        ]
        measured = runs[-1] if runs and not before.projected else None
        candidate = SearchCandidate(
            changes=patch.changes,
            speedup=round(
                measured.tokens_per_sec / before.tokens_per_sec
                if measured is not None
                else projected_speedup,
                4,
            ),
            projected=measured is None,
            peak_memory_gb=round(measured.hbm_peak_gb, 2)
            if measured is not None
            else (None if peak is None else round(peak, 2)),
            chosen=chosen is not None and patch.new_config == chosen.new_config,
        )
        if key not in found or candidate.chosen:
            found[key] = candidate
    return sorted(found.values(), key=lambda c: -(c.speedup or 0.0))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[_Args]
    fn: Callable[[AuditState, Any], dict[str, Any]]

    def schema(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.args_model.model_json_schema(),
        }


ALL_TOOLS: tuple[Tool, ...] = (
    Tool(
        "parse_config",
        "Read the workload file under audit. Returns config_id, name, format "
        "and the normalised config.",
        ParseConfigArgs,
        parse_config,
    ),
    Tool(
        "profile_run",
        "Run a few steps of a config and report metrics and symptoms (where the step time goes).",
        ProfileRunArgs,
        profile_run,
    ),
    Tool(
        "query_rocm_kb",
        "Look up cited tuning rules. With config_id, rules whose conditions "
        "hold for that config come first (matches_config=true); symptoms add text matches.",
        QueryKbArgs,
        query_rocm_kb,
    ),
    Tool(
        "propose_patch",
        "Apply rules (by id) to a config. Returns patch_id, the changes, a unified diff of "
        "the user's file, its projected_speedup and predicted peak_memory_gb. Propose "
        "several candidates (with and without try_without rules, each micro_batch option) "
        "and benchmark the best.",
        ProposePatchArgs,
        propose_patch,
    ),
    Tool(
        "benchmark",
        "Benchmark a config (config_id) or a patch's new config (patch_id). "
        "Returns metrics_id and RunMetrics.",
        BenchmarkArgs,
        benchmark,
    ),
    Tool(
        "compare_runs",
        "Compare baseline and patched runs by metrics_id; returns the final "
        "Report. Call this last.",
        CompareRunsArgs,
        compare_runs,
    ),
)
TOOL_BY_NAME: dict[str, Tool] = {tool.name: tool for tool in ALL_TOOLS}


@functools.lru_cache(maxsize=1)
def _schemas() -> str:
    return json.dumps([tool.schema() for tool in ALL_TOOLS])


def tool_schemas() -> list[dict[str, Any]]:
    """The tools as a model sees them; generated from the argument models once per process.

    Each caller gets its own copy (decoded from JSON: several times faster than a
    deep copy, and every audit asks).
    """
    result: list[dict[str, Any]] = json.loads(_schemas())
    return result


def _repair(args: dict[str, Any], model: type[_Args]) -> dict[str, Any]:
    """Undo the common ways models mis-shape arguments.

    A JSON string where an object belongs is decoded; top-level arguments the
    model nested inside ``config`` (``{"config": {..., "steps": 50}}``) are lifted.
    """
    fields = model.model_fields
    # copies of just the two dicts this changes keep the caller's arguments as the model
    # sent them; a deep copy of every call's arguments showed up in profiles of fake audits
    fixed = dict(args)
    for key, value in args.items():
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            try:
                fixed[key] = json.loads(value)
            except json.JSONDecodeError:
                pass
    nested = fixed.get("config")
    if isinstance(nested, dict):
        nested = fixed["config"] = dict(nested)
        for key in [k for k in nested if k in fields and k != "config"]:
            lifted = nested.pop(key)
            fixed.setdefault(key, lifted)
    return fixed


def call(state: AuditState, name: str, args: dict[str, Any]) -> ToolResult:
    """Run one tool; every failure becomes ``ToolResult(ok=False)`` with a usable message."""
    tool = TOOL_BY_NAME.get(name)
    if tool is None:
        return ToolResult(ok=False, error=f"unknown tool {name!r}; tools: {sorted(TOOL_BY_NAME)}")
    if not isinstance(args, dict):
        return ToolResult(ok=False, error=f"{name}: arguments must be a JSON object")
    try:
        parsed = tool.args_model.model_validate(_repair(args, tool.args_model))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors()
        )
        accepted = ", ".join(tool.args_model.model_fields)
        return ToolResult(
            ok=False, error=f"{name}: invalid arguments: {problems}. Accepted: {accepted}"
        )
    try:
        result = tool.fn(state, parsed)
    except ValidationError as exc:
        return ToolResult(
            ok=False,
            # name each field: "Field required" alone leaves a model nothing to fix
            error=f"{name}: {exc.error_count()} invalid value(s) in {exc.title}: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}"
                for e in exc.errors()
            ),
        )
    except DeviceFault:
        raise  # a crashed or hung worker ends the audit: no tool result could stand for it
    except GoblinError as exc:
        return ToolResult(ok=False, error=f"{name}: {exc}")
    except Exception as exc:
        return ToolResult(ok=False, error=f"{name}: {type(exc).__name__}: {exc}")
    state.log.append({"name": name, "ok": True})
    return ToolResult(ok=True, result=result)
