"""What the torch runner's harness costs: its tokens/s against a plain training loop.

Both train the same model (``runner.model.build``) with the same optimizer and
the same synthetic data through the same DataLoader, on the CPU (or the device
given). The runner goes through the whole harness: a worker subprocess, the
JSON protocol, the device lock, timed windows, losses kept per step. The plain
loop is what one would write by hand, timed with ``perf_counter`` around the
same windows of steps after the same warmup. Each run is summed up by its
fastest window's tokens/s (other processes on a shared machine only ever slow
a window down, as ``timeit`` reasons); runs alternate (runner, plain, runner,
…) so that drift hits both, and the figure is the median of the pairs' ratios.

    python benchmarks/harness_overhead.py [--device cpu] [--pairs 5] [--steps 30]

Target: the harness costs under 3% of tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pytest_goblin.runner.data import make_loader
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.model import ModelOptions, build
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.training import window_sizes
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings

CONFIG = WorkloadConfig(
    name="harness-overhead",
    model={
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
    dataloader_workers=0,
)
WARMUP = 3


def plain_loop(config: WorkloadConfig, steps: int, device: torch.device) -> list[float]:
    """Tokens/s per window of a hand-written loop: build, warm up, time ``steps`` steps."""
    model, _ = build(
        config.arch, config.seq_len, ModelOptions(attention=config.attention_impl), device
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0, fused=True)
    loader = make_loader(
        config,
        config.arch.vocab,
        (WARMUP + steps) * config.batch_size,
        sample_cost_s=0.0,
        device=device,
    )
    batches = iter(loader)

    def step() -> None:
        batch = next(batches).to(device)
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(WARMUP):
        step()
    rates = []
    for size in window_sizes(steps):
        sync()
        start = time.perf_counter()
        for _ in range(size):
            step()
        sync()
        rates.append(size * config.batch_size * config.seq_len / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or rocm[:N]")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    session = DeviceSession("cpu", MeasureOptions(device=args.device, warmup=WARMUP))
    runner = session.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    torch_device = torch.device(
        "cpu" if args.device == "cpu" else "cuda",
        int(args.device.split(":")[1]) if ":" in args.device else None,
    )
    harness, plain = [], []
    try:
        print(
            f"device: {runner.info.name}; {CONFIG.arch.total_params / 1e6:.1f}M parameters, "
            f"{CONFIG.batch_size} x {CONFIG.seq_len} tokens per step, {args.steps} timed steps"
        )
        for pair in range(args.pairs):
            harness.append(max(runner.run(CONFIG, args.steps).samples))
            plain.append(max(plain_loop(CONFIG, args.steps, torch_device)))
            print(
                f"pair {pair + 1}: runner {harness[-1]:,.0f} tok/s, "
                f"plain loop {plain[-1]:,.0f} tok/s, ratio {harness[-1] / plain[-1]:.3f}"
            )
    finally:
        session.close()
    ratio = statistics.median(h / p for h, p in zip(harness, plain))
    print(
        f"runner / plain loop, median of {args.pairs} pairs: {ratio:.3f}; "
        f"harness overhead {100 * (1 - ratio):+.1f}% (target under 3%)"
    )


if __name__ == "__main__":
    main()
