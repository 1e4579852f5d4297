"""What the hf engine's harness costs: its tokens/s against a bare ``Trainer.train()``.

Both train the same model (``hf_engine.build_model``: a transformers config with
random weights) with the same ``TrainingArguments`` (``hf_engine.training_arguments``)
on the same device. The engine goes through the whole harness: a worker
subprocess, the JSON protocol, the device lock, the synthetic-data wrapper, the
loss-recording ``training_step`` and the step-timing callback; its figure is the
run's tokens/s over its timed windows. The bare side is what a user's script runs:
``Trainer(model, args, train_dataset).train()`` over pre-made token tensors, no
callback; its tokens/s is the timed steps' tokens over the difference between a
``train()`` of warmup + timed steps and one of the warmup steps alone, so that the
Trainer's fixed start-up cost (which the engine excludes too) cancels. Runs
alternate (engine, bare, engine, …) so that drift hits both, and the figure is the
median of the pairs' ratios.

    python benchmarks/hf_harness_overhead.py [--device cpu] [--pairs 5] [--steps 30]

Goal: the engine reaches at least 0.97x the bare Trainer's tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import Trainer

from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.hf_engine import build_model, training_arguments
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.training import RunRequest
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

CONFIG = WorkloadConfig(
    name="hf-harness-overhead",
    model={
        "name": "llama-tiny",
        "layers": 4,
        "hidden": 256,
        "intermediate": 688,
        "heads": 8,
        "kv_heads": 4,
        "vocab": 4096,
    },
    batch_size=4,
    seq_len=256,
    precision="fp32",
    attention_impl="sdpa",
    optimizer="adamw_torch_fused",
    lr=1e-3,
    packing=True,
    dataloader_workers=0,
)
WARMUP = 3


class Tokens(Dataset[dict[str, torch.Tensor]]):
    """Pre-made random token ids, as a tokenized dataset hands them to the Trainer."""

    def __init__(self, config: WorkloadConfig, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(config.arch.vocab, (length, config.seq_len), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids = self.ids[index]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def bare_train_s(config: WorkloadConfig, steps: int, device: torch.device) -> float:
    """Seconds of one bare ``Trainer.train()`` of ``steps`` optimizer steps."""
    model = build_model(config, device)
    request = RunRequest(config, steps=steps, warmup=0, sample_cost_s=0.0)
    with tempfile.TemporaryDirectory() as output_dir:
        args = training_arguments(config, request, device, output_dir)
        samples = steps * config.batch_size * config.grad_accum_steps
        trainer = Trainer(model=model, args=args, train_dataset=Tokens(config, samples))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.train()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start


def bare_tokens_per_s(config: WorkloadConfig, steps: int, device: torch.device) -> float:
    """Tokens/s of ``steps`` steps after WARMUP, start-up cost cancelled (see the module doc)."""
    tokens = steps * config.batch_size * config.grad_accum_steps * config.seq_len
    long = bare_train_s(config, WARMUP + steps, device)
    short = bare_train_s(config, WARMUP, device)
    return tokens / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or rocm[:N]")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    options = MeasureOptions(device=args.device, warmup=WARMUP, engine="hf")
    session = DeviceSession("cpu", options)
    runner = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    torch_device = torch.device(
        "cpu" if args.device == "cpu" else "cuda",
        int(args.device.split(":")[1]) if ":" in args.device else None,
    )
    engine, bare = [], []
    try:
        print(
            f"device: {runner.info.name}; {CONFIG.arch.total_params / 1e6:.1f}M parameters, "
            f"{CONFIG.batch_size} x {CONFIG.seq_len} tokens per step, {args.steps} timed steps"
        )
        for pair in range(args.pairs):
            engine.append(runner.run(CONFIG, args.steps).tokens_per_sec)
            bare.append(bare_tokens_per_s(CONFIG, args.steps, torch_device))
            print(
                f"pair {pair + 1}: hf engine {engine[-1]:,.0f} tok/s, "
                f"bare Trainer.train() {bare[-1]:,.0f} tok/s, ratio {engine[-1] / bare[-1]:.3f}"
            )
    finally:
        session.close()
    ratio = statistics.median(e / b for e, b in zip(engine, bare))
    print(
        f"hf engine / bare Trainer.train(), median of {args.pairs} pairs: {ratio:.3f}x "
        f"(goal at least 0.97x)"
    )


if __name__ == "__main__":
    main()
