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

``--session DIR`` checks self-calibration through the plugin, as a user runs it: it
writes each knob's two configs as workload files in DIR (every rule waived, so each
workload's one measured run is its baseline; each pair back to back), projects them
with ``--goblin-fake --goblin-fake-device cpu`` (the published model), measures them in
a CPU session with ``--goblin-save-calibration``, then projects them again with
``--goblin-fake --goblin-fake-device <the saved calibration's fingerprint>``, and prints
per knob the measured ratio, both projections and their errors.

    python benchmarks/calibration.py [--steps 6] [--repeats 2] [--save-calibration .goblin]
    python benchmarks/calibration.py --projected-only .goblin
    python benchmarks/calibration.py --session /tmp/selfcal [--steps 3] [--warmup 1]
    python benchmarks/calibration.py --report /tmp/selfcal   # the table again
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.history import device_fingerprint
from pytest_goblin.kb.loader import load_kb
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.runner.device_session import DeviceSession
from pytest_goblin.runner.options import MeasureOptions
from pytest_goblin.runner.self_calibration import (
    CALIBRATION_DIR,
    MeasuredRun,
    SavedCalibration,
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


def _projected(runner: AnalyticModel, config: WorkloadConfig) -> float:
    return config.tokens_per_step / runner.step_budget(config).total


def _print_table(
    measured: dict[str, tuple[float, float]], runners: dict[str, AnalyticModel]
) -> None:
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


TOLERANCE = 0.10
"""How close the calibrated projection of each knob must come to the measured ratio."""


def _workload_files(project: Path) -> None:
    """Each knob's two configs as native workload files ``k<n>-1-before`` and
    ``k<n>-2-after``, so that pytest collects each pair back to back (measured seconds
    apart, the machine's load drifting little in between)."""
    for index, knob in enumerate(KNOBS, 1):
        for side, config in zip(("1-before", "2-after"), _pair(knob), strict=True):
            name = f"k{index}-{side}"
            data = config.model_dump(mode="json", exclude_none=True) | {"name": name}
            (project / f"{name}.goblin.yaml").write_text(f"# {knob}\n{yaml.safe_dump(data)}")


def _pytest(project: Path, report: str, *args: str) -> None:
    """One pytest session in ``project``, writing the JSON ``report`` and a log beside it."""
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--goblin"]
    command += ["--goblin-no-cache", "--goblin-json", report, *args]
    log = project / Path(report).with_suffix(".log")
    print("$ python " + " ".join(command[1:]) + f"  (output: {log})", flush=True)
    with log.open("w") as out:
        subprocess.run(command, cwd=project, stdout=out, stderr=subprocess.STDOUT, check=False)


def _read(project: Path, report: str) -> tuple[dict[str, float], list[str]]:
    """Each workload's baseline tokens/s from a session's JSON report, and the summary
    lines of its log that say what the numbers are (device, calibration)."""
    log = project / Path(report).with_suffix(".log")
    output = log.read_text()
    shown = [line for line in output.splitlines() if line.startswith(("device:", "calibration:"))]
    path = project / report
    if not path.is_file():
        raise SystemExit(f"pytest wrote no {report}; see {log}")
    workloads = json.loads(path.read_text())["workloads"]
    tokens = {w["name"]: w["baseline"]["tokens_per_sec"] for w in workloads if w.get("baseline")}
    missing = sorted({w["name"] for w in workloads} - set(tokens))
    if missing:
        raise SystemExit(f"no baseline for {missing} in {report}; see {log}")
    return tokens, shown


def _session(project: Path, steps: int, warmup: int) -> int:
    """The issue's check through the plugin (see the module's docstring); the exit status
    of ``_report``."""
    project.mkdir(parents=True, exist_ok=False)
    waived = " ".join(rule.id for rule in load_kb().rules)
    (project / "pytest.ini").write_text(
        "[pytest]\n"
        "goblin_patterns = *.goblin.yaml\n"
        "# every rule waived: each workload's one measured run is its baseline\n"
        f"goblin_ignore = {waived}\n"
    )
    _workload_files(project)
    _pytest(project, "published.json", "--goblin-fake", "--goblin-fake-device", DEVICE)
    _pytest(
        project,
        "measured.json",
        "--goblin-device",
        DEVICE,
        "--goblin-engine",
        "native",
        "--goblin-save-calibration",
        "--goblin-steps",
        str(steps),
        "--goblin-warmup",
        str(warmup),
    )
    calibration = _saved(project)
    _pytest(
        project, "calibrated.json", "--goblin-fake", "--goblin-fake-device", calibration.fingerprint
    )
    return _report(project)


def _saved(project: Path) -> SavedCalibration:
    """The one calibration the measured session saved."""
    saved = [
        SavedCalibration.model_validate_json(path.read_text())
        for path in (project / ".goblin" / CALIBRATION_DIR).glob("*.json")
    ]
    if len(saved) != 1:
        raise SystemExit(
            f"expected one saved calibration, found {len(saved)}: see the 'calibration:' "
            f"line of {project / 'measured.log'}"
        )
    return saved[0]


def _report(project: Path) -> int:
    """Per knob: the measured ratio, the published and the calibrated projections and
    their errors; 0 when every calibrated projection is within ``TOLERANCE``, else 1.

    The knobs' "after" side is mostly ``BASE`` itself, so the session measures ``BASE``
    several times; how far those runs of one config spread is printed too, since no
    projection can come closer to a ratio than the noise of its two measurements.
    """
    names = {knob: (f"k{i}-1-before", f"k{i}-2-after") for i, knob in enumerate(KNOBS, 1)}
    published, _ = _read(project, "published.json")
    measured, lines = _read(project, "measured.json")
    calibrated, fake_lines = _read(project, "calibrated.json")
    calibration = _saved(project)
    for line in lines + fake_lines:
        print(line)
    print(f"correction: {calibration.correction!r} (RMS log error {calibration.rms_log_error:.3f})")
    print(
        f"\n{'knob':34} {'measured tok/s':>15} {'ratio':>7} {'published model':>16} "
        f"{'calibrated':>16}"
    )
    within = 0
    for knob, (before, after) in names.items():
        ratio = measured[after] / measured[before]
        row = f"{knob:34} {measured[before]:7.0f} {measured[after]:7.0f} {ratio:6.2f}x"
        for projected in (published, calibrated):
            value = projected[after] / projected[before]
            row += f" {value:6.2f}x ({value / ratio - 1:+5.1%})"
        error = calibrated[after] / calibrated[before] / ratio - 1
        within += abs(error) <= TOLERANCE
        print(row)
    base = [
        name
        for knob, pair in names.items()
        for name, config in zip(pair, _pair(knob), strict=True)
        if config == BASE
    ]
    low, high = min(measured[n] for n in base), max(measured[n] for n in base)
    print(
        f"\nthe base config, measured {len(base)} times: {low:.0f} to {high:.0f} tok/s "
        f"(max/min {high / low:.2f}); calibrated projection {calibrated[base[0]]:.0f} tok/s"
    )
    print(f"calibrated within ±{TOLERANCE:.0%}: {within}/{len(names)} knobs; files in {project}")
    return 0 if within == len(names) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--save-calibration", type=Path, metavar="STORAGE")
    parser.add_argument("--projected-only", type=Path, metavar="STORAGE")
    parser.add_argument("--session", type=Path, metavar="DIR", help="a new directory")
    parser.add_argument("--report", type=Path, metavar="DIR", help="print a --session's table")
    args = parser.parse_args()
    if args.session:
        raise SystemExit(_session(args.session, args.steps, args.warmup))
    if args.report:
        raise SystemExit(_report(args.report))
    spec = get_device(DEVICE)
    published = AnalyticModel(spec)

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
            {"published model": published, "calibrated": AnalyticModel(spec, saved.correction)},
        )
        return

    measured, runs, info = _measure(args.steps, args.repeats, args.warmup)
    runners: dict[str, AnalyticModel] = {"published model": published}
    if args.save_calibration:
        saved = calibrate(spec, device_fingerprint(info), info.name, runs)
        path = save_calibration(args.save_calibration, saved)
        print(f"saved {path}: {saved.correction} (RMS log error {saved.rms_log_error:.3f})")
        runners["calibrated"] = AnalyticModel(spec, saved.correction)
    _print_table(measured, runners)


if __name__ == "__main__":
    main()
