"""Recall of the audit: does it fail the workloads that leave a big win on the table?

A seeded grid of realistic fine-tuning configs (presets x fine-tune methods x sequence
lengths 512-8192 x micro-batch/accumulation splits x catalogue devices, with the
families the audit must get right: an 80 GB recipe on a 192 GB card, HF Trainer
defaults, fp16 legacy recipes, long context, 70B QLoRA, already-tuned configs, a random
mix, and the multi-sequence and multi-GPU runs: DPO (TRL-style LoRA/QLoRA on 7-8B
models, full DPO sharded over 8 GPUs, seq 1024-2048, micro-batch 1-4), sharded (FSDP /
DeepSpeed ZeRO 1-3 full fine-tunes of 7B-70B over 8 GPUs with checkpointing on,
ZeRO-2/3 with optimizer offload left on) and ddp (LoRA/QLoRA on 2-8 GPUs). For each
config an oracle searches every combination of semantics-preserving changes that a
knowledge-base rule may make (precision to bf16, attention kernel, fused optimizer where
``fused-adamw`` allows it, checkpointing off, every micro-batch dividing the global
batch, dataloader workers, pinned memory, compile where ``torch-compile`` allows it,
DDP's find_unused_parameters off where ``ddp-find-unused-parameters-off`` allows it),
priced by the analytic model with out-of-memory configs excluded. It never changes the
world size, strategy, ZeRO stage, offload, objective or DPO reference: no rule may turn
CPU offload off (the analytic model prices offload's copies but not the host-side
optimizer step, so it could not say what turning it off wins), and none precomputes DPO's reference
log-probs (that pass is a forward over the whole dataset before training, outside the
step time, so a per-step price would overstate it). The plugin audits the same config
(planner backend, projected on the same catalogue device). Printed, per device and per
family, and overall:

- recall: the share of configs whose oracle win exceeds the threshold that the plugin fails;
- capture: the median share of the oracle's log-speedup the plugin's patch achieves;
- violations: plugin patches that run out of memory or change the global batch, the
  learning rate or warmup, the world size, strategy, ZeRO stage, objective or DPO
  reference (must be 0).

The dpo, sharded and ddp families come after random in ``FAMILIES`` and take their share
from it, so for a given seed the other families draw the same configs as before they
were added (random draws the first 30 of its former 90). ``--families`` audits only the
named families of the same grid.

    python benchmarks/recall.py [--configs 300] [--seed 14] [--threshold 0.10] [--misses 5]
                                [--families dpo,sharded,ddp]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.kb.loader import KnowledgeBase, load_kb
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.verdict.rule import decide
from pytest_goblin.workload import sidecar
from pytest_goblin.workload.read import load_workload

DEVICES = ("mi250x", "mi300x", "mi355x", "a100", "h100")
SMALL = ("qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "llama-3.2-3b", "phi-3-mini")
MID = ("llama-3-8b", "llama-3.1-8b", "qwen2.5-7b", "mistral-7b")
FUSED = "adamw_torch_fused"
STEPS = 10


@dataclass
class Case:
    family: str
    device: str
    config: WorkloadConfig


def _fits(config: WorkloadConfig, runner: AnalyticModel) -> bool:
    return runner.memory(config).total_gb <= runner.device.memory_gb


def _tps(config: WorkloadConfig, runner: AnalyticModel) -> float | None:
    try:
        return runner.run(config, STEPS).tokens_per_sec
    except OutOfMemory:
        return None


def _split(rng: random.Random, global_batch: int) -> tuple[int, int]:
    """A micro-batch / accumulation split of ``global_batch``, small micro-batches likelier."""
    divisors = [d for d in range(1, global_batch + 1) if global_batch % d == 0]
    weights = [1.0 / (i + 1) for i in range(len(divisors))]
    micro = rng.choices(divisors, weights)[0]
    return micro, global_batch // micro


def _family(rng: random.Random, family: str) -> tuple[str, dict[str, Any]]:
    """One config of a family: (device, fields)."""
    if family == "80gb-recipe-on-192gb":
        micro, accum = _split(rng, rng.choice([16, 32, 64]))
        micro = min(micro, 2)
        return rng.choice(["mi300x", "mi355x"]), {
            "model": rng.choice(MID),
            "finetune": rng.choice(["lora", "qlora", "lora"]),
            "lora_rank": rng.choice([16, 64]),
            "lora_targets": ["all-linear"],
            "batch_size": micro,
            "grad_accum_steps": rng.choice([16, 32, 64]) // micro,
            "seq_len": rng.choice([2048, 4096]),
            "precision": "bf16",
            "attention_impl": rng.choice(["flash", "sdpa"]),
            "gradient_checkpointing": True,
            "optimizer": FUSED,
            "dataloader_workers": 4,
        }
    if family == "hf-trainer-defaults":
        # TrainingArguments defaults: fp32, per_device_train_batch_size 8, no accumulation,
        # adamw_torch, 0 workers, pin_memory on, sdpa (transformers' default attention)
        return rng.choice(DEVICES), {
            "model": rng.choice(SMALL),
            "finetune": rng.choice(["full", "lora"]),
            "batch_size": 8,
            "seq_len": rng.choice([512, 1024]),
        }
    if family == "fp16-legacy":
        micro, accum = _split(rng, rng.choice([8, 16, 32]))
        return rng.choice(DEVICES), {
            "model": rng.choice(SMALL + MID),
            "finetune": rng.choice(["lora", "qlora"]),
            "batch_size": micro,
            "grad_accum_steps": accum,
            "seq_len": rng.choice([512, 1024, 2048]),
            "precision": "fp16",
            "attention_impl": rng.choice(["eager", "sdpa"]),
            "gradient_checkpointing": rng.random() < 0.5,
            "optimizer": "adamw_torch",
            "dataloader_workers": rng.choice([0, 2]),
        }
    if family == "long-context":
        return rng.choice(DEVICES), {
            "model": rng.choice(MID),
            "finetune": rng.choice(["lora", "qlora"]),
            "batch_size": 1,
            "grad_accum_steps": rng.choice([8, 16]),
            "seq_len": 8192,
            "precision": "bf16",
            "attention_impl": rng.choice(["flash", "sdpa"]),
            "gradient_checkpointing": True,
            "optimizer": FUSED,
            "dataloader_workers": 4,
        }
    if family == "70b-qlora":
        return rng.choice(DEVICES), {
            "model": "llama-3.1-70b",
            "finetune": "qlora",
            "lora_rank": rng.choice([16, 64]),
            "batch_size": 1,
            "grad_accum_steps": rng.choice([8, 16, 32]),
            "seq_len": rng.choice([1024, 2048, 4096, 8192]),
            "precision": "bf16",
            "attention_impl": rng.choice(["flash", "sdpa"]),
            "gradient_checkpointing": True,
            "optimizer": rng.choice(["adamw_torch", FUSED]),
            "dataloader_workers": 4,
        }
    if family == "dpo":
        # TRL DPOTrainer recipes (alignment-handbook zephyr-7b-beta: full at max_length
        # 1024, micro-batch 8 on 8 GPUs; its QLoRA variant micro-batch 4 x accumulation 4;
        # trl's dpo example: LoRA, micro-batch 1-4): chosen and rejected per example, the
        # reference from a frozen copy (full) or the disabled adapter ((Q)LoRA)
        finetune = rng.choice(["lora", "lora", "qlora", "full"])
        micro, accum = _split(rng, rng.choice([8, 16, 32, 64]))
        fields = {
            "objective": "dpo",
            "model": rng.choice(MID),
            "finetune": finetune,
            "lora_rank": rng.choice([16, 64]),
            "lora_targets": rng.choice([["all-linear"], ["q_proj", "v_proj"]]),
            "batch_size": min(micro, 4),
            "grad_accum_steps": max(1, (micro * accum) // min(micro, 4)),
            "seq_len": rng.choice([1024, 2048]),
            "precision": rng.choice(["bf16", "bf16", "fp16"]),
            "attention_impl": rng.choice(["sdpa", "flash", "eager"]),
            "gradient_checkpointing": rng.random() < 0.7,
            "optimizer": rng.choice(["adamw_torch", FUSED]),
            "dataloader_workers": rng.choice([0, 2, 4]),
            "lr": 5e-7 if finetune == "full" else 5e-6,
            "warmup_steps": rng.choice([0, 10]),
        }
        if rng.random() < 0.15:
            fields["reference"] = "precomputed"
        if finetune == "full":
            # a 7-8B full DPO holds two models: sharded over a node, as the handbook runs it
            fields.update(
                world_size=8,
                strategy=rng.choice(["deepspeed", "fsdp"]),
                zero_stage=3,
                pure_precision=rng.random() < 0.5,
            )
        return rng.choice(DEVICES), fields
    if family == "sharded":
        # FSDP / DeepSpeed ZeRO full fine-tunes over a node of 8 (accelerate + zero3.yaml /
        # fsdp configs, torchtune's full_finetune_distributed), checkpointing on; and
        # ZeRO-2/3 with optimizer offload left on where the card would not need it
        model = rng.choice(MID + ("qwen2.5-14b", "qwen2.5-32b", "llama-3.1-70b"))
        micro, accum = _split(rng, rng.choice([8, 16, 32, 64]))
        offload = rng.random() < 0.3
        fields = {
            "model": model,
            "finetune": "full",
            "world_size": 8,
            "strategy": rng.choice(["fsdp", "deepspeed"]),
            "zero_stage": rng.choice([2, 3]) if offload else rng.choice([1, 2, 3, 3, 3]),
            "offload_optimizer": offload,
            "offload_params": offload and rng.random() < 0.3,
            "pure_precision": rng.random() < 0.5,
            "batch_size": min(micro, 2),
            "grad_accum_steps": max(1, (micro * accum) // min(micro, 2)),
            "seq_len": rng.choice([2048, 4096, 8192]),
            "precision": "bf16",
            "attention_impl": rng.choice(["flash", "sdpa"]),
            "gradient_checkpointing": True,
            "optimizer": rng.choice(["adamw_torch", FUSED]),
            "dataloader_workers": rng.choice([2, 4]),
            "lr": 1e-5,
            "warmup_steps": rng.choice([0, 20]),
        }
        if fields["offload_params"]:
            fields["zero_stage"] = 3
        return rng.choice(DEVICES), fields
    if family == "ddp":
        # DDP LoRA over 2-8 GPUs (accelerate launch / torchrun of an HF Trainer script)
        micro, accum = _split(rng, rng.choice([16, 32, 64]))
        return rng.choice(DEVICES), {
            "model": rng.choice(SMALL + MID),
            "finetune": rng.choice(["lora", "lora", "qlora"]),
            "lora_rank": rng.choice([8, 16, 64]),
            "world_size": rng.choice([2, 4, 8]),
            "strategy": "ddp",
            "batch_size": micro,
            "grad_accum_steps": accum,
            "seq_len": rng.choice([1024, 2048, 4096]),
            "precision": rng.choice(["bf16", "bf16", "fp16"]),
            "attention_impl": rng.choice(["sdpa", "flash"]),
            "gradient_checkpointing": rng.random() < 0.6,
            "optimizer": rng.choice(["adamw_torch", FUSED]),
            "dataloader_workers": rng.choice([0, 4]),
        }
    # random over the whole space
    micro, accum = _split(rng, rng.choice([4, 8, 16, 32, 64]))
    return rng.choice(DEVICES), {
        "model": rng.choice(SMALL + MID),
        "finetune": rng.choice(["full", "lora", "qlora"]),
        "lora_rank": rng.choice([8, 16, 64]),
        "batch_size": micro,
        "grad_accum_steps": accum,
        "seq_len": rng.choice([512, 1024, 2048, 4096, 8192]),
        "precision": rng.choice(["fp32", "fp16", "bf16", "bf16"]),
        "attention_impl": rng.choice(["eager", "sdpa", "flash"]),
        "gradient_checkpointing": rng.random() < 0.5,
        "optimizer": rng.choice(["adamw_torch", FUSED]),
        "dataloader_workers": rng.choice([0, 2, 4, 8]),
        "dataloader_pin_memory": rng.random() < 0.7,
        "packing": rng.random() < 0.3,
    }


FAMILIES = (
    ("80gb-recipe-on-192gb", 0.15),
    ("hf-trainer-defaults", 0.12),
    ("fp16-legacy", 0.13),
    ("long-context", 0.10),
    ("70b-qlora", 0.10),
    ("already-tuned", 0.10),
    ("random", 0.10),
    # appended after `random`, their share taken from it: the draws of the families above
    # (and the first `random` draws) are those of the same seed before they were added
    ("dpo", 0.07),
    ("sharded", 0.08),
    ("ddp", 0.05),
)


def _tuned(rng: random.Random, kb: KnowledgeBase) -> tuple[str, WorkloadConfig]:
    """An already-tuned config: bf16, flash, fused AdamW, workers, checkpointing off and
    the micro-batch at the memory sweet spot (the fastest split of its global batch)."""
    device = rng.choice(DEVICES)
    runner = AnalyticModel(get_device(device))
    base = WorkloadConfig.model_validate(
        {
            "model": rng.choice(SMALL + MID),
            "finetune": rng.choice(["lora", "full"]),
            "seq_len": rng.choice([1024, 2048]),
            "precision": "bf16",
            "attention_impl": "flash",
            "optimizer": FUSED,
            "dataloader_workers": 4,
            "dataloader_persistent_workers": True,
            "dataloader_prefetch_factor": 2,
            "batch_size": 1,
            "grad_accum_steps": 32,
        }
    )
    best, best_tps = base, 0.0
    for micro in (1, 2, 4, 8, 16, 32):
        config = base.model_copy(update={"batch_size": micro, "grad_accum_steps": 32 // micro})
        if runner.memory(config).total_gb > 0.85 * runner.device.memory_gb:
            continue
        tps = _tps(config, runner) or 0.0
        if tps > best_tps:
            best, best_tps = config, tps
    return device, best


def grid(n: int, seed: int, kb: KnowledgeBase) -> list[Case]:
    """``n`` configs whose baselines fit their device, drawn family by family."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for family, share in FAMILIES:
        wanted = round(n * share) if family != FAMILIES[-1][0] else n - len(cases)
        made = 0
        while made < wanted:
            if family == "already-tuned":
                device, config = _tuned(rng, kb)
            else:
                device, fields = _family(rng, family)
                if fields.get("finetune") == "full":
                    fields.pop("lora_rank", None)
                    fields.pop("lora_targets", None)
                elif "lora_rank" not in fields:
                    fields["lora_rank"] = 16
                config = WorkloadConfig.model_validate(fields)
            if not _fits(config, AnalyticModel(get_device(device))):
                continue
            cases.append(Case(family, device, config))
            made += 1
    return cases


def _allowed(rule_id: str, config: WorkloadConfig, kb: KnowledgeBase, platform: str) -> bool:
    """Whether the knowledge base's rule ``rule_id`` may change ``config`` on ``platform``."""
    rule = kb.get(rule_id)
    return rule.applies_on(platform) and rule.matches(config)


def _compile_allowed(config: WorkloadConfig, kb: KnowledgeBase, platform: str) -> bool:
    return _allowed("torch-compile", config, kb, platform)


def oracle(config: WorkloadConfig, device: str, kb: KnowledgeBase) -> tuple[float, WorkloadConfig]:
    """The best speedup over every combination of semantics-preserving changes that fits."""
    spec = get_device(device)
    runner = AnalyticModel(spec)
    base = _tps(config, runner)
    assert base is not None
    total = config.grad_accum_steps * config.batch_size
    splits = [(d, total // d) for d in range(1, total + 1) if total % d == 0]
    precisions = {config.precision, "bf16"}
    attentions = {config.attention_impl, "sdpa"} | (
        {"flash"} if spec.has_flash_attention else set()
    )
    optimizers = {config.optimizer}
    if _allowed("fused-adamw", config, kb, spec.platform):
        optimizers.add(FUSED)
    checkpointing = {config.gradient_checkpointing, False}
    workers = {config.dataloader_workers, max(config.dataloader_workers, 4)}
    pinned = {config.dataloader_pin_memory, True}
    compiled = {config.torch_compile}
    if _compile_allowed(config, kb, spec.platform):
        compiled.add(True)
    unused = {config.ddp_find_unused_parameters}
    if _allowed("ddp-find-unused-parameters-off", config, kb, spec.platform):
        unused.add(False)
    best, best_config = 1.0, config
    for p, a, o, c, (b, g), w, pin, tc, u in itertools.product(
        precisions, attentions, optimizers, checkpointing, splits, workers, pinned, compiled, unused
    ):
        candidate = config.model_copy(
            update={
                "precision": p,
                "attention_impl": a,
                "optimizer": o,
                "gradient_checkpointing": c,
                "batch_size": b,
                "grad_accum_steps": g,
                "dataloader_workers": w,
                "dataloader_pin_memory": pin,
                "torch_compile": tc,
                "ddp_find_unused_parameters": u,
            }
        )
        tps = _tps(candidate, runner)
        if tps is not None and tps / base > best:
            best, best_config = tps / base, candidate
    return best, best_config


def plugin(case: Case, kb: KnowledgeBase, folder: Path, index: int) -> Any:
    """The planner's projected report for the case, as the plugin would produce it."""
    path = folder / f"w{index}.goblin.yaml"
    data = case.config.model_dump(mode="json", exclude_defaults=True)
    data["name"] = f"w{index}"
    model = case.config.model
    if model is not None and model.name:
        data["model"] = model.name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    workload = load_workload(path, display=path.name)
    device = SimulatedDevice(case.device)
    context = AuditContext(runner=device, projector=device, kb=kb, backend="planner")
    return audit(workload, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--threshold", type=float, default=0.10, help="the plugin's default --goblin-threshold"
    )
    parser.add_argument("--misses", type=int, default=5, help="missed cases to print")
    parser.add_argument(
        "--families",
        default="",
        help="comma-separated families to audit (default: all); the grid is drawn in full "
        f"first, so a case is the same with or without it. Families: "
        f"{', '.join(name for name, _ in FAMILIES)}",
    )
    args = parser.parse_args()
    started = time.monotonic()
    kb = load_kb()
    cases = grid(args.configs, args.seed, kb)
    if args.families:
        wanted = set(args.families.split(","))
        unknown = wanted - {name for name, _ in FAMILIES}
        if unknown:
            parser.error(f"--families: unknown {', '.join(sorted(unknown))}")
        cases = [case for case in cases if case.family in wanted]
    bar = 1.0 + args.threshold
    per_device: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    per_family: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    violations: list[str] = []
    misses: list[str] = []
    errors = 0
    tuned_failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            best, best_config = oracle(case.config, case.device, kb)
            assert not _launch_moved(best_config, case.config), f"w{i}: the oracle moved"
            outcome = plugin(case, kb, Path(tmp), i)
            report = outcome.report
            if report is None:
                errors += 1
                continue
            failed = decide(report, args.threshold).outcome == "failed"
            if case.family == "already-tuned" and failed:
                tuned_failed += 1
            patch = report.patch
            if patch is not None and patch.changes:
                new = patch.new_config
                old = case.config
                if new.batch_size * new.grad_accum_steps != old.batch_size * old.grad_accum_steps:
                    violations.append(f"w{i}: global batch changed")
                if (new.lr, new.warmup_steps) != (old.lr, old.warmup_steps):
                    violations.append(f"w{i}: learning rate or warmup changed")
                moved = _launch_moved(new, old)
                if moved:
                    violations.append(f"w{i}: {', '.join(moved)} changed")
                if _tps(new, AnalyticModel(get_device(case.device))) is None:
                    violations.append(f"w{i}: patch runs out of memory")
            if best <= bar:
                continue
            capture = math.log(max(report.speedup, 1e-9)) / math.log(best)
            per_device[case.device].append((failed, capture))
            per_family[case.family].append((failed, capture))
            if (not failed or capture < 0.8) and len(misses) < args.misses:
                misses.append(_describe_miss(i, case, best, best_config, report))
    print(f"recall benchmark: {len(cases)} configs, seed {args.seed}, bar {bar:.2f}x")
    print(f"{'group':<22} {'configs':>7} {'wins':>5} {'recall':>7} {'capture':>8}")
    counts = defaultdict(int)
    for case in cases:
        counts[case.device] += 1
        counts[case.family] += 1
    everything = [row for rows in per_device.values() for row in rows]
    for name, rows in [*sorted(per_device.items()), *sorted(per_family.items())]:
        print(_row(name, counts[name], rows))
    print(_row("all", len(cases), everything))
    print(f"already-tuned configs failed: {tuned_failed}; audits that errored: {errors}")
    print(
        "violations (out of memory; global batch, lr/warmup, world size, strategy, ZeRO stage, "
        f"offload, FSDP version, communication dtype, objective or reference changed): "
        f"{len(violations)}"
    )
    for line in violations[:10]:
        print(f"  {line}")
    for line in misses:
        print(line)
    print(f"took {time.monotonic() - started:.0f} s")


LAUNCH = (*sidecar.LAUNCH, "objective", "reference")
"""What neither the oracle nor a patch may change: how the run is launched (what a sidecar
may state of it) and what it trains."""


def _launch_moved(new: WorkloadConfig, old: WorkloadConfig) -> list[str]:
    """The fields of ``LAUNCH`` that differ between ``new`` and ``old``."""
    return [name for name in LAUNCH if getattr(new, name) != getattr(old, name)]


def _row(name: str, configs: int, rows: list[tuple[bool, float]]) -> str:
    wins = len(rows)
    recall = sum(failed for failed, _ in rows) / wins if wins else float("nan")
    capture = statistics.median(c for _, c in rows) if rows else float("nan")
    return f"{name:<22} {configs:>7} {wins:>5} {recall:>7.2f} {capture:>8.2f}"


def _describe_miss(i: int, case: Case, best: float, config: WorkloadConfig, report: Any) -> str:
    changed = {
        key: value
        for key, value in config.model_dump().items()
        if value != case.config.model_dump()[key]
    }
    patch = [f"{c.field}={c.new}" for c in report.patch.changes] if report.patch else []
    return (
        f"  miss w{i} [{case.family}, {case.device}]: oracle {best:.2f}x {changed}; "
        f"plugin {report.speedup:.2f}x {patch}"
    )


if __name__ == "__main__":
    main()
