"""How far the analytic model is from published measurements.

``calibration_points.yaml`` (packaged beside this module) lists published runs:
absolute throughput on a named GPU and the ratio one knob buys. This module
projects each of them with the analytic model and measures the error, so that a
test can pin every projection and a script can print the table and the summary
(``benchmarks/model_accuracy.py``; the rendered table is in
``docs/analytic-model.md``).
"""

from __future__ import annotations

import statistics
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pytest_goblin.catalogue.devices import DEVICES, get_device
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.schemas import WorkloadConfig

POINTS_FILE = "calibration_points.yaml"

THROUGHPUT_MEDIAN_TARGET = 0.25
"""The model's median absolute error on absolute throughput must stay within this."""

RATIO_TARGET = 0.20
"""Every modelled knob ratio must be projected within this fraction of the published one."""


class CalibrationPoint(BaseModel):
    """One published measurement, the workload it ran and the model's recorded projection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Literal["throughput", "ratio"]
    device: str
    change_device: str | None = None
    source: str
    setup: str = Field(min_length=1, description="what the source measured, in its words")
    config: dict[str, Any]
    change: dict[str, Any] | None = None
    published: float = Field(gt=0)
    projected: float = Field(ge=0, description="the model's figure when last recorded")
    tolerance: float = Field(default=0.01, gt=0)
    unmodelled: str | None = None
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"source {value!r} is not an https URL")
        return value

    @model_validator(mode="after")
    def _ratio_has_a_change(self) -> CalibrationPoint:
        has_change = self.change is not None or self.change_device is not None
        if (self.kind == "ratio") != has_change:
            raise ValueError(
                f"{self.id}: a ratio needs change or change_device, a throughput neither"
            )
        return self

    def workloads(self) -> tuple[WorkloadConfig, WorkloadConfig | None]:
        """The measured workload, and for a ratio the changed one."""
        base = WorkloadConfig(**self.config)
        if self.kind == "throughput":
            return base, None
        return base, WorkloadConfig(**{**self.config, **(self.change or {})})


def load_points(path: Path | None = None) -> list[CalibrationPoint]:
    """The packaged calibration table, or the one at ``path``."""
    if path is None:
        text = resources.files("pytest_goblin.runner").joinpath(POINTS_FILE).read_text()
    else:
        text = path.read_text()
    data = yaml.safe_load(text)
    return [CalibrationPoint(**row) for row in data["points"]]


def per_device_throughput(device: str, config: WorkloadConfig) -> float:
    """Projected tokens/s of one device (rank) running ``config``, fit or not."""
    budget = AnalyticModel(get_device(device)).step_budget(config)
    return config.tokens_per_step / config.world_size / budget.total


def project(point: CalibrationPoint) -> float:
    """The model's figure for a point: tokens/s per device, or the knob's ratio."""
    base, changed = point.workloads()
    baseline = per_device_throughput(point.device, base)
    if point.kind == "throughput":
        return baseline
    after = per_device_throughput(point.change_device or point.device, changed or base)
    return after / baseline


def error(point: CalibrationPoint, projected: float) -> float:
    """Signed relative error of a projection against the published figure."""
    return projected / point.published - 1.0


class AccuracySummary(BaseModel):
    """The figures the calibration is judged on."""

    model_config = ConfigDict(frozen=True)

    throughput_points: int
    throughput_median_abs_error: float
    ratio_points: int
    ratios_within_target: int
    unmodelled_points: int

    @property
    def meets_targets(self) -> bool:
        """Median throughput error and every modelled ratio within their targets."""
        return (
            self.throughput_median_abs_error <= THROUGHPUT_MEDIAN_TARGET
            and self.ratios_within_target == self.ratio_points
        )


def summarise(points: list[CalibrationPoint], projections: list[float]) -> AccuracySummary:
    """Median absolute throughput error and ratio hits, leaving unmodelled points out."""
    throughput: list[float] = []
    ratios: list[float] = []
    unmodelled = 0
    for point, projected in zip(points, projections, strict=True):
        if point.unmodelled:
            unmodelled += 1
        elif point.kind == "throughput":
            throughput.append(abs(error(point, projected)))
        else:
            ratios.append(abs(error(point, projected)))
    return AccuracySummary(
        throughput_points=len(throughput),
        throughput_median_abs_error=statistics.median(throughput) if throughput else 0.0,
        ratio_points=len(ratios),
        ratios_within_target=sum(e <= RATIO_TARGET for e in ratios),
        unmodelled_points=unmodelled,
    )


AMP_PUBLISHED_FRACTION = (1.5 / 8.0, 5.5 / 8.0)
"""End-to-end fp32 -> mixed-precision gains the PyTorch AMP blog measured, 1.5-5.5x on a
V100 (https://pytorch.org/blog/accelerating-training-on-nvidia-gpus-with-pytorch-automatic-mixed-precision/),
as a fraction of the V100's 8x peak ratio (125 vs 15.7 TFLOP/s): no catalogue GPU
has a published fp32-vs-bf16 LLM training measurement, so the check is on the fraction
of the peak ratio that a change of precision realises end to end."""

MIXED_PRECISION_REFERENCE: dict[str, Any] = {
    "model": "llama-3-8b",
    "finetune": "lora",
    "lora_rank": 16,
    "attention_impl": "sdpa",
    "optimizer": "adamw_torch_fused",
    "dataloader_workers": 4,
    "batch_size": 4,
    "seq_len": 2048,
}
"""A GEMM-bound fine-tune: where mixed precision gains the most of its peak ratio."""


class MixedPrecisionGain(BaseModel):
    """fp32 -> bf16 on one catalogue device, against the range published runs support."""

    model_config = ConfigDict(frozen=True)

    device: str
    projected: float
    peak_ratio: float

    @property
    def fraction_of_peak_ratio(self) -> float:
        return self.projected / self.peak_ratio

    @property
    def inside_published_range(self) -> bool:
        low, high = AMP_PUBLISHED_FRACTION
        return low <= self.fraction_of_peak_ratio <= high


def mixed_precision_gains() -> list[MixedPrecisionGain]:
    """fp32 -> bf16 projected on every catalogue device whose bf16 rate beats its fp32 one."""
    gains = []
    for spec in DEVICES.values():
        peak_ratio = spec.peak_tflops["bf16"] / spec.peak_tflops["fp32"]
        if peak_ratio <= 1.0:
            continue
        fp32 = WorkloadConfig(**MIXED_PRECISION_REFERENCE, precision="fp32")
        bf16 = WorkloadConfig(**MIXED_PRECISION_REFERENCE, precision="bf16")
        gain = per_device_throughput(spec.name, bf16) / per_device_throughput(spec.name, fp32)
        gains.append(MixedPrecisionGain(device=spec.name, projected=gain, peak_ratio=peak_ratio))
    return gains
