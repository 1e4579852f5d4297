"""How well the analytic model predicts speedups on this machine, per knob.

For each knob, a tiny Llama config is measured on the CPU before and after one
change (the two runs interleaved, ``--repeats`` times, the median of each side
kept), and the same pair is projected by the analytic model for the catalogue's
generic CPU. Prints measured and projected tokens/s, the speedups and the error of
the projection. Prints figures; asserts nothing.

With ``--save-calibration STORAGE`` the measured runs also fit a per-device
correction (self-calibration), saved under STORAGE keyed by this machine's device
fingerprint, and the knobs are projected again with it. ``--projected-only STORAGE``
measures nothing: it projects every knob with the calibration saved there and
compares with the measured figures the calibration was fitted from, as a later
``--goblin-fake`` run on this machine would.

    python benchmarks/calibration.py [--steps 6] [--repeats 2] [--save-calibration .goblin]
    python benchmarks/calibration.py --projected-only .goblin
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.history import device_fingerprint
from pytest_goblin.runner.analytic import FakeRunner
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.self_calibration import (
    MeasuredRun,
    calibrate,
    find_calibration,
    save_calibration,
)
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

DEVICE = "cpu"


def _pair(knob: str) -> tuple[WorkloadConfig, WorkloadConfig]:
    before, after = KNOBS[knob]
    return BASE.model_copy(update=before), BASE.model_copy(update=after)


def _projected(runner: FakeRunner, config: WorkloadConfig) -> float:
    return config.tokens_per_step / runner.step_budget(config).total


def _print_table(measured: dict[str, tuple[float, float]], runners: dict[str, FakeRunner]) -> None:
    """One row per knob: measured tokens/s both sides, the speedups, each projection's error."""
    header = f"{'knob':34} {'measured tok/s':>17} {'speedup':>8}"
    for label in runners:
        header += f" {label:>16}"
    print(header)
    for knob, (slow, fast) in measured.items():
        a, b = _pair(knob)
        speedup = fast / slow
        row = f"{knob:34} {slow:8.0f} {fast:8.0f} {speedup:7.2f}x"
        for runner in runners.values():
            projected = _projected(runner, b) / _projected(runner, a)
            row += f" {projected:6.2f}x ({projected / speedup - 1:+4.0%})"
        print(row)


def _measure(
    steps: int, repeats: int, warmup: int
) -> tuple[dict[str, tuple[float, float]], list[MeasuredRun], Any]:
    """Each knob's pair measured interleaved ``repeats`` times; medians, every run, device."""
    session = DeviceSession(DEVICE, MeasureOptions(device=DEVICE, warmup=warmup))
    try:
        runner = session.runner_for()
        measured: dict[str, tuple[float, float]] = {}
        runs: list[MeasuredRun] = []
        for knob in KNOBS:
            a, b = _pair(knob)
            slow: list[float] = []
            fast: list[float] = []
            for _ in range(repeats):
                slow.append(runner.run(a, steps).tokens_per_sec)
                fast.append(runner.run(b, steps).tokens_per_sec)
            measured[knob] = (statistics.median(slow), statistics.median(fast))
            runs += [
                MeasuredRun(config=a, tokens_per_sec=measured[knob][0]),
                MeasuredRun(config=b, tokens_per_sec=measured[knob][1]),
            ]
            print(f"measured {knob}: {measured[knob][0]:.0f} -> {measured[knob][1]:.0f} tok/s")
        return measured, runs, runner.info
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--save-calibration", type=Path, metavar="STORAGE")
    parser.add_argument("--projected-only", type=Path, metavar="STORAGE")
    args = parser.parse_args()
    spec = get_device(DEVICE)
    published = FakeRunner(spec)

    if args.projected_only:
        saved = find_calibration(args.projected_only, DEVICE)
        if saved is None:
            raise SystemExit(f"no calibration for {DEVICE} under {args.projected_only}")
        by_config = {run.config.model_dump_json(): run.tokens_per_sec for run in saved.runs}
        measured = {
            knob: (by_config[a.model_dump_json()], by_config[b.model_dump_json()])
            for knob, (a, b) in ((k, _pair(k)) for k in KNOBS)
        }
        print(
            f"calibration: self-calibration of {saved.device_name} ({saved.fingerprint}), "
            f"fitted from {saved.fitted_from_runs} runs, saved {saved.saved_at:%Y-%m-%d %H:%M}Z"
        )
        _print_table(
            measured,
            {"published model": published, "calibrated": FakeRunner(spec, saved.correction)},
        )
        return

    measured, runs, info = _measure(args.steps, args.repeats, args.warmup)
    runners: dict[str, FakeRunner] = {"published model": published}
    if args.save_calibration:
        saved = calibrate(spec, device_fingerprint(info), info.name, runs)
        path = save_calibration(args.save_calibration, saved)
        print(f"saved {path}: {saved.correction} (RMS log error {saved.rms_log_error:.3f})")
        runners["calibrated"] = FakeRunner(spec, saved.correction)
    _print_table(measured, runners)


if __name__ == "__main__":
    main()
