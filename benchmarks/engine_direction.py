"""Both engines' speedup of the CPU tutorial's patch, side by side: do their verdicts agree?

``example_project/cpu-workloads/tiny-llama-tutorial.goblin.yaml`` (eager attention,
non-fused AdamW) fails its audit because SDPA and fused AdamW win; this trains it and the
patched config (``attention_impl: sdpa``, ``optimizer: adamw_torch_fused``) with each
engine, in-process, alternating arms round by round, and prints each engine's step
time and speedup. Two clocks per step, read by the engines' step hook between one step's
start and the next: wall time (``perf_counter``) and the main thread's CPU time
(``thread_time``), which other processes on a shared machine barely move. With
``--threads 1`` (the default) all of a step's compute runs on that thread, so the CPU
figure is the step's work (the DataLoader's sample cost runs in its worker process and is
left out of it). The verdict's threshold is the example's 10%.

    python benchmarks/engine_direction.py [--rounds 3] [--steps 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from pytest_goblin.runner import hf_engine, training
from pytest_goblin.runner.training import RunRequest
from pytest_goblin.schemas import WorkloadConfig

TUTORIAL = (
    Path(__file__).resolve().parents[1]
    / "example_project/cpu-workloads/tiny-llama-tutorial.goblin.yaml"
)
PATCH = {"attention_impl": "sdpa", "optimizer": "adamw_torch_fused"}
THRESHOLD = 1.10
ENGINES: dict[str, Any] = {"native": training, "hf": hf_engine}


def step_times(engine: Any, config: WorkloadConfig, steps: int) -> tuple[float, float]:
    """Median (CPU s, wall s) of the last ``steps`` steps of one run (warmup before them)."""
    marks: list[tuple[float, float]] = []

    def hook(step: int, model: torch.nn.Module) -> None:
        marks.append((time.thread_time(), time.perf_counter()))

    request = RunRequest(config, steps=steps + 1, warmup=2, sample_cost_s=0.0)
    engine.measure(request, torch.device("cpu"), hook)
    last = marks[-(steps + 1) :]  # the hook opens each step: n + 1 marks bound n steps
    cpu = [b[0] - a[0] for a, b in zip(last, last[1:])]
    wall = [b[1] - a[1] for a, b in zip(last, last[1:])]
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps timed per run")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fields = yaml.safe_load(TUTORIAL.read_text())
    arms = {"tutorial": WorkloadConfig(**fields), "patched": WorkloadConfig(**(fields | PATCH))}
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for engine_name, engine in ENGINES.items():
            for arm, config in arms.items():
                found.setdefault((engine_name, arm), []).append(
                    step_times(engine, config, args.steps)
                )
    print(
        f"{TUTORIAL.name} vs patched ({', '.join(f'{k}: {v}' for k, v in PATCH.items())}); "
        f"{args.threads} torch thread(s), median of {args.rounds} rounds of {args.steps} steps"
    )
    for engine_name in ENGINES:
        base = found[engine_name, "tutorial"]
        patched = found[engine_name, "patched"]
        cpu = statistics.median(b[0] for b in base) / statistics.median(p[0] for p in patched)
        wall = statistics.median(b[1] for b in base) / statistics.median(p[1] for p in patched)
        print(
            f"{engine_name:>6}: step CPU {statistics.median(b[0] for b in base) * 1e3:.0f} -> "
            f"{statistics.median(p[0] for p in patched) * 1e3:.0f} ms ({cpu:.2f}x), wall "
            f"{statistics.median(b[1] for b in base) * 1e3:.0f} -> "
            f"{statistics.median(p[1] for p in patched) * 1e3:.0f} ms ({wall:.2f}x); the "
            f"tutorial {'fails' if cpu > THRESHOLD else 'passes'} at {THRESHOLD:.2f}x on CPU time"
        )


if __name__ == "__main__":
    main()
