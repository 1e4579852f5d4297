"""The analytic model against the published measurements in calibration_points.yaml.

Every point's projection is pinned: a change to the model that moves one by more than
the point's tolerance fails here, and must be re-recorded on purpose
(``python benchmarks/model_accuracy.py --record``). The accuracy targets of the
calibration are asserted on the same projections.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pytest_goblin.catalogue.devices import DEVICES
from pytest_goblin.runner.accuracy import (
    AMP_PUBLISHED_FRACTION,
    RATIO_TARGET,
    THROUGHPUT_MEDIAN_TARGET,
    CalibrationPoint,
    MixedPrecisionGain,
    error,
    load_points,
    mixed_precision_gains,
    project,
    summarise,
)

POINTS = load_points()


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "toy",
        "kind": "throughput",
        "device": "a100",
        "source": "https://example.com/run",
        "setup": "a run",
        "config": {"model": "llama-3-8b", "precision": "bf16"},
        "published": 1000.0,
        "projected": 1000.0,
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
def test_projection_matches_the_recorded_one(point: CalibrationPoint) -> None:
    projected = project(point)
    assert projected == pytest.approx(point.projected, rel=point.tolerance), (
        f"{point.id}: the model now projects {projected:.4g}, recorded {point.projected:.4g} "
        f"(published {point.published:.4g}); re-record deliberately if the change is meant"
    )


def test_the_table_has_at_least_twenty_cited_points() -> None:
    assert len(POINTS) >= 20
    assert all(p.source.startswith("https://") and p.setup for p in POINTS)
    assert len({p.id for p in POINTS}) == len(POINTS)


def test_the_table_covers_rocm_and_nvidia_devices() -> None:
    devices = {p.device for p in POINTS} | {p.change_device for p in POINTS if p.change_device}
    platforms = {DEVICES[name].platform for name in devices}
    assert {"cuda", "rocm-instinct"} <= platforms


def test_median_absolute_throughput_error_is_within_target() -> None:
    summary = summarise(POINTS, [project(p) for p in POINTS])
    assert summary.throughput_points >= 10
    assert summary.throughput_median_abs_error <= THROUGHPUT_MEDIAN_TARGET


@pytest.mark.parametrize(
    "point",
    [p for p in POINTS if p.kind == "ratio" and not p.unmodelled],
    ids=lambda p: p.id,
)
def test_every_modelled_knob_ratio_is_within_target(point: CalibrationPoint) -> None:
    assert abs(error(point, project(point))) <= RATIO_TARGET


@pytest.mark.parametrize("gain", mixed_precision_gains(), ids=lambda g: g.device)
def test_fp32_to_bf16_realises_the_published_share_of_the_peak_ratio(
    gain: MixedPrecisionGain,
) -> None:
    low, high = AMP_PUBLISHED_FRACTION
    assert low <= gain.fraction_of_peak_ratio <= high


def test_every_gpu_in_the_catalogue_gets_a_mixed_precision_check() -> None:
    gpus = {name for name, spec in DEVICES.items() if spec.kind != "cpu"}
    assert {g.device for g in mixed_precision_gains()} == gpus


def test_unmodelled_points_stay_out_of_the_summary() -> None:
    point = CalibrationPoint(**_row(unmodelled="the source's setup has no counterpart"))
    summary = summarise([point], [5000.0])
    assert summary.unmodelled_points == 1 and summary.throughput_points == 0


def test_a_ratio_needs_a_change() -> None:
    with pytest.raises(ValidationError, match="ratio needs change"):
        CalibrationPoint(**_row(kind="ratio"))


def test_a_source_must_be_an_https_url() -> None:
    with pytest.raises(ValidationError, match="https"):
        CalibrationPoint(**_row(source="see the blog"))


def test_a_cross_device_ratio_projects_the_changed_device(tmp_path: Path) -> None:
    path = tmp_path / "points.yaml"
    path.write_text(
        "points:\n"
        "  - {id: a, kind: ratio, device: a100, change_device: h100, source: 'https://x.org',\n"
        "     setup: s, config: {model: llama-3-8b, precision: bf16, finetune: lora,\n"
        "     lora_rank: 8}, published: 2.0, projected: 0}\n"
    )
    (point,) = load_points(path)
    assert project(point) > 1.5  # an H100 has 3x an A100's bf16 peak
