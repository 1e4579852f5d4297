"""The measured CPU case of the audit's search: a small Llama-style LoRA with gradient
checkpointing on (4 layers, hidden 256, seq 256, batch 8) audited on this machine's CPU
with the native engine. Prints the verdict, the chosen patch, its paired speedup and
interval, and the candidates the search compared; the audit should fail with
``gradient_checkpointing: false`` in its patch and an interval above the threshold.

    python benchmarks/cpu_checkpointing.py [--steps 3] [--repeats 10] [--threshold 0.10]
                                           [--threads 1]

Each run trains the model for real (warm-up plus ``--steps`` timed steps), so on a busy
machine this takes minutes. ``--repeats`` is the most paired rounds (the plugin's
``--goblin-max-repeats`` default); the verdict is taken after four when the interval
clears the bar. ``--threads`` sets ``OMP_NUM_THREADS`` for the measuring worker: on a
machine shared with other jobs, one intra-op thread keeps a step from waiting on a
descheduled sibling thread, which made two-thread windows vary several-fold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pytest_goblin.audit.run import audit_workload
from pytest_goblin.kb.loader import load_kb
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.runner import measured as live
from pytest_goblin.runner.device_session import DeviceSession, MeasureOptions
from pytest_goblin.verdict.rule import decide
from pytest_goblin.workload.read import load_workload

WORKLOAD = """\
name: small-llama-checkpointed
model: {layers: 4, hidden: 256, intermediate: 688, heads: 4, kv_heads: 4, vocab: 1024}
finetune: lora
lora_rank: 8
lora_targets: [q_proj, v_proj]
batch_size: 8
seq_len: 256
precision: fp32
attention_impl: sdpa
gradient_checkpointing: true
optimizer: adamw_torch_fused
dataloader_workers: 1
dataloader_persistent_workers: true
dataloader_prefetch_factor: 2
lr: 1.0e-3
goblin: {sample_cost_ms: 0}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the worker inherits it
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        live.LOCK_DIR = Path(tmp) / "locks"  # a device lock of its own: nothing else waits
        path = Path(tmp) / "small.goblin.yaml"
        path.write_text(WORKLOAD, encoding="utf-8")
        workload = load_workload(path, display=path.name)
        options = MeasureOptions(device="cpu", timeout_s=600, warmup=1, steps=args.steps)
        session = DeviceSession("cpu", options)
        try:
            settings = GoblinSettings(
                backend="planner", threshold=args.threshold, max_repeats=args.repeats
            )
            outcome = audit_workload(workload, session, settings, load_kb())
        finally:
            session.close()
    report = outcome.report
    if report is None:
        print(f"audit error: {outcome.error}")
        return
    verdict = decide(report, args.threshold)
    changes = (
        [f"{c.field}: {c.old} -> {c.new}" for c in report.patch.changes] if report.patch else []
    )
    print(f"verdict: {verdict.outcome} ({verdict.reason})")
    print(f"speedup {report.speedup:.3f}x, interval {report.speedup_ci}, {report.n_repeats} rounds")
    print(f"patch: {changes}")
    for candidate in report.candidates:
        what = ", ".join(f"{c.field}={c.new}" for c in candidate.changes)
        how = "projected" if candidate.projected else "measured"
        print(
            f"  candidate {candidate.speedup}x {how}{' (chosen)' if candidate.chosen else ''}: {what}"
        )
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
