"""How well the analytic model predicts speedups: projected against measured, per knob.

For each knob, a tiny Llama config is measured on the CPU with the torch runner before
and after one change, and the same pair is projected by the FakeRunner for the
catalogue's generic CPU. Prints the measured and projected speedups and the error of
the projection. Prints figures; asserts nothing.

    python benchmarks/calibration.py [--steps 10]
"""

from __future__ import annotations

import argparse
from typing import Any

from pytest_goblin.runner.analytic import FakeRunner
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.schemas import WorkloadConfig

BASE = WorkloadConfig(
    name="calibration",
    model={
        "layers": 4,
        "hidden": 256,
        "intermediate": 688,
        "heads": 8,
        "kv_heads": 4,
        "vocab": 2048,
    },
    batch_size=4,
    seq_len=512,
    precision="fp32",
    attention_impl="sdpa",
    optimizer="adamw_torch_fused",
    dataloader_workers=2,
    lr=1e-3,
)

KNOBS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "attention eager -> sdpa": ({"attention_impl": "eager"}, {"attention_impl": "sdpa"}),
    "dataloader workers 0 -> 2": ({"dataloader_workers": 0}, {"dataloader_workers": 2}),
    "gradient checkpointing on -> off": (
        {"gradient_checkpointing": True},
        {"gradient_checkpointing": False},
    ),
    "full -> LoRA r16": ({"finetune": "full"}, {"finetune": "lora", "lora_rank": 16}),
    "batch 1 -> 4": ({"batch_size": 1}, {"batch_size": 4}),
    "AdamW foreach -> fused": ({"optimizer": "adamw_torch"}, {"optimizer": "adamw_torch_fused"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    steps = parser.parse_args().steps
    fake = FakeRunner(get_device("cpu"))
    session = DeviceSession("cpu", MeasureOptions(device="cpu", warmup=2))
    try:
        runner = session.runner_for()
        print(f"{'knob':36} {'measured':>9} {'projected':>9} {'error':>7}")
        for knob, (before, after) in KNOBS.items():
            a = BASE.model_copy(update=before)
            b = BASE.model_copy(update=after)
            measured = runner.run(b, steps).tokens_per_sec / runner.run(a, steps).tokens_per_sec
            projected = fake.run(b, steps).tokens_per_sec / fake.run(a, steps).tokens_per_sec
            error = projected / measured - 1
            print(f"{knob:36} {measured:8.2f}x {projected:8.2f}x {error:+7.0%}")
    finally:
        session.close()


if __name__ == "__main__":
    main()
