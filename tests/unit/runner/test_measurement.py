"""From a worker's raw timings to RunMetrics: windows, MFU, extrapolation (no torch)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pytest_goblin.agent.tools import _symptoms
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.runner.measurement import Measurement, catalogue_spec, run_metrics
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig

CONFIG = WorkloadConfig(model="llama-3.2-1b", batch_size=2, seq_len=512, precision="bf16")
TOKENS_PER_STEP = 2 * 512
H100 = DeviceInfo(
    kind="cuda",
    name="NVIDIA H100 80GB HBM3",
    platform="cuda",
    arch="sm_90",
    memory_gb=79.6,
    compute_units=132,
    clock_mhz=1980,
)


def measurement(layers: int, step_s: float, peak_gb: float = 10.0, windows: int = 4) -> Measurement:
    return Measurement(
        layers=layers,
        warmup_steps=3,
        window_steps=[5] * windows,
        window_seconds=[5 * step_s] * windows,
        window_tokens=[5 * TOKENS_PER_STEP] * windows,
        losses=[3.0, 2.9, 2.8],
        peak_memory_gb=peak_gb,
    )


def test_throughput_is_tokens_over_seconds_with_one_sample_per_window() -> None:
    metrics = run_metrics(CONFIG, [measurement(16, 0.5)], H100)
    assert metrics.tokens_per_sec == pytest.approx(TOKENS_PER_STEP / 0.5)
    assert metrics.step_time_s == pytest.approx(0.5)
    assert metrics.samples == pytest.approx([TOKENS_PER_STEP / 0.5] * 4)
    assert metrics.steps == 20 and metrics.warmup_steps == 3
    assert metrics.projected is False and metrics.runner_kind == "torch"
    assert metrics.extrapolated_from_layers == []


def test_mfu_uses_the_analytic_flop_count_and_the_catalogue_bf16_peak() -> None:
    metrics = run_metrics(CONFIG, [measurement(16, 0.5)], H100)
    projected = AnalyticModel(get_device("h100")).run(CONFIG, 10)
    # MFU is proportional to tokens/s, on the analytic model's scale for the same device
    expected = projected.mfu_pct * metrics.tokens_per_sec / projected.tokens_per_sec
    assert metrics.mfu_pct == pytest.approx(expected)


def test_a_gpu_the_catalogue_does_not_list_has_an_unknown_mfu() -> None:
    info = DeviceInfo(kind="cuda", name="NVIDIA GeForce RTX 4090", platform="cuda")
    metrics = run_metrics(CONFIG, [measurement(16, 0.5)], info)
    assert metrics.mfu_pct is None
    assert any("MFU is unknown" in w for w in metrics.warnings)


@pytest.mark.parametrize(
    ("name", "kind", "arch", "units", "memory_gb", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "cuda", "sm_90", 132, 79.6, "h100"),
        ("NVIDIA H200", "cuda", "sm_90", 132, 139.8, "h200"),
        ("NVIDIA A100-SXM4-80GB", "cuda", "sm_80", 108, 79.3, "a100"),
        ("AMD Instinct MI300X", "rocm", "gfx942", 304, 191.98, "mi300x"),
        ("AMD Radeon Graphics", "rocm", "gfx942", 304, 255.98, "mi325x"),
        ("", "rocm", "gfx90a", 110, 63.98, "mi250x"),
        ("AMD Radeon RX 7900 XTX", "rocm", "gfx1100", 96, 23.98, "rx7900xtx"),
    ],
)
def test_a_live_gpu_finds_its_catalogue_entry_from_its_properties(
    name: str, kind: Any, arch: str, units: int, memory_gb: float, key: str
) -> None:
    info = DeviceInfo(
        kind=kind,
        name=name,
        platform="x",
        arch=arch,
        compute_units=units,
        memory_gb=memory_gb,
    )
    spec, notes = catalogue_spec(info)
    assert spec is not None and spec.name == key and notes == []


def test_mfu_of_a_partition_is_against_its_share_of_the_chip() -> None:
    whole = DeviceInfo(
        kind="rocm", name="AMD Instinct MI300X", platform="x", arch="gfx942",
        compute_units=304, memory_gb=191.98,
    )  # fmt: skip
    cpx = whole.model_copy(update={"compute_units": 38, "memory_gb": 47.98})
    full = run_metrics(CONFIG, [measurement(16, 0.5)], whole)
    part = run_metrics(CONFIG, [measurement(16, 0.5)], cpx)
    assert full.mfu_pct is not None and part.mfu_pct is not None
    assert part.mfu_pct == pytest.approx(full.mfu_pct * 304 / 38)
    assert any("budgets given per device do not apply" in w for w in part.warnings)


def test_a_cpu_is_held_against_the_placeholder_and_says_so() -> None:
    spec, notes = catalogue_spec(DeviceInfo(kind="cpu", name="AMD EPYC 9654", platform="cpu"))
    assert spec is not None and spec.name == "cpu"
    assert "placeholder" in notes[0]


def test_two_depths_extrapolate_the_full_models_step_time_and_memory() -> None:
    shallow, deep = measurement(1, 0.10, peak_gb=4.0), measurement(4, 0.25, peak_gb=7.0)
    metrics = run_metrics(CONFIG, [shallow, deep], H100)
    per_layer = (0.25 - 0.10) / 3
    assert metrics.step_time_s == pytest.approx(0.25 + 12 * per_layer)  # llama-3.2-1b: 16 layers
    assert metrics.tokens_per_sec == pytest.approx(TOKENS_PER_STEP / metrics.step_time_s)
    assert metrics.samples == pytest.approx([metrics.tokens_per_sec] * 4)
    assert metrics.hbm_peak_gb == pytest.approx(7.0 + 12 * 1.0)
    assert metrics.extrapolated_from_layers == [1, 4]
    assert any("extrapolated to 16 layers from runs of 1 and 4" in w for w in metrics.warnings)


def test_a_per_layer_time_lost_in_noise_is_taken_as_zero_and_said() -> None:
    metrics = run_metrics(CONFIG, [measurement(1, 0.30), measurement(2, 0.29)], H100)
    assert metrics.step_time_s == pytest.approx(0.29)
    assert any("same speed" in w for w in metrics.warnings)


def test_a_multi_rank_runs_exposed_communication_is_its_comm_excess_symptom() -> None:
    run = replace(measurement(16, 0.5), world_size=2, comm_share=0.25)
    metrics = run_metrics(CONFIG, [run], H100)
    assert metrics.waste_budget.comm_excess == pytest.approx(0.25 * metrics.step_time_s)
    assert metrics.waste_budget.total == pytest.approx(metrics.step_time_s)
    assert _symptoms(metrics)[0].startswith("comm_excess: 25% of step time")


def test_a_single_rank_run_shows_no_split_of_its_step() -> None:
    metrics = run_metrics(CONFIG, [measurement(16, 0.5)], H100)
    assert metrics.waste_budget.total == 0.0
