"""How far the analytic model is from published measurements, point by point.

Projects every point of ``runner/calibration_points.yaml`` (absolute tokens/s per
device and knob ratios, each with its source) and prints the published figure, the
projection and the error, then the summary the calibration is judged on: the median
absolute error over absolute throughput and the number of knob ratios within
+-20%. Also prints fp32 -> bf16 on every catalogue GPU beside the range published
measurements support. Exits 1 when a target is missed.

    python benchmarks/model_accuracy.py              # the table, as text
    python benchmarks/model_accuracy.py --markdown   # the table for docs/analytic-model.md
    python benchmarks/model_accuracy.py --record     # write the projections into the YAML
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pytest_goblin.runner.accuracy import (
    RATIO_TARGET,
    THROUGHPUT_MEDIAN_TARGET,
    CalibrationPoint,
    error,
    load_points,
    mixed_precision_gains,
    project,
    summarise,
)

POINTS_PATH = Path(__file__).resolve().parents[1] / "runner" / "calibration_points.yaml"
PROJECTED_LINE = re.compile(r"^(    projected: ).*$", re.MULTILINE)


def _figure(point: CalibrationPoint, value: float) -> str:
    return f"{value:.3f}x" if point.kind == "ratio" else f"{value:,.0f}"


def _record(projections: list[float]) -> None:
    """Rewrite each point's ``projected:`` line, in file order, with its new figure."""
    text = POINTS_PATH.read_text()
    values = iter(projections)
    text, count = PROJECTED_LINE.subn(lambda m: f"{m.group(1)}{next(values):.4g}", text)
    if count != len(projections):
        raise SystemExit(f"found {count} projected: lines for {len(projections)} points")
    POINTS_PATH.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--record", action="store_true", help="write projections to the YAML")
    args = parser.parse_args()

    points = load_points(POINTS_PATH)
    projections = [project(point) for point in points]
    if args.markdown:
        print("| point | device | published | projected | error | source |")
        print("|---|---|---:|---:|---:|---|")
    else:
        print(f"{'point':46} {'device':16} {'published':>10} {'projected':>10} {'error':>7}")
    for point, projected in zip(points, projections, strict=True):
        device = point.device + (f" -> {point.change_device}" if point.change_device else "")
        err = f"{error(point, projected):+.0%}" + (" *" if point.unmodelled else "")
        published, proj = _figure(point, point.published), _figure(point, projected)
        if args.markdown:
            print(
                f"| {point.id} | {device} | {published} | {proj} | {err} | [source]({point.source}) |"
            )
        else:
            print(f"{point.id:46} {device:16} {published:>10} {proj:>10} {err:>7}")

    summary = summarise(points, projections)
    print()
    print(
        f"absolute throughput: median |error| {summary.throughput_median_abs_error:.1%} "
        f"over {summary.throughput_points} points (target <= {THROUGHPUT_MEDIAN_TARGET:.0%})"
    )
    print(
        f"knob ratios within +-{RATIO_TARGET:.0%}: "
        f"{summary.ratios_within_target} of {summary.ratio_points}"
    )
    print(f"* unmodelled (printed, not counted): {summary.unmodelled_points}")
    print()
    print("fp32 -> bf16 (Llama-3-8B LoRA r16, batch 4 x 2048, SDPA):")
    for gain in mixed_precision_gains():
        inside = "inside" if gain.inside_published_range else "OUTSIDE"
        print(
            f"  {gain.device:10} {gain.projected:5.2f}x of a {gain.peak_ratio:4.1f}x peak ratio: "
            f"{gain.fraction_of_peak_ratio:.0%} ({inside} the published 19-69%)"
        )
    if args.record:
        _record(projections)
        print(f"\nrecorded {len(projections)} projections in {POINTS_PATH}")
    return 0 if summary.meets_targets else 1


if __name__ == "__main__":
    sys.exit(main())
