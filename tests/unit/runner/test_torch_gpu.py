"""The torch runner on a ROCm or CUDA GPU; every test here skips without one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from pytest_goblin.runner.detect import detect  # noqa: E402
from pytest_goblin.runner.device_session import DeviceSession  # noqa: E402
from pytest_goblin.runner.options import MeasureOptions, parse_selector  # noqa: E402
from pytest_goblin.runner.training import RunRequest, measure, unsupported_reason  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig, WorkloadSettings  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a ROCm or CUDA device"),
]

DIMS = {"layers": 2, "hidden": 256, "intermediate": 688, "heads": 4, "kv_heads": 2, "vocab": 1024}


def small(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": DIMS,
        "batch_size": 4,
        "seq_len": 256,
        "lr": 1e-3,
        "precision": "bf16",
    }
    return WorkloadConfig(**(values | fields))


@pytest.fixture(scope="module")
def gpu() -> Iterator[DeviceSession]:
    session = DeviceSession("mi300x", MeasureOptions(device="auto", warmup=1))
    yield session
    session.close()


def test_auto_finds_the_gpu_and_names_its_kind_and_architecture() -> None:
    found = detect(parse_selector("auto"))
    kind = "rocm" if torch.version.hip else "cuda"
    assert found.device.type == "cuda" and found.info.kind == kind
    assert found.info.arch and found.info.arch.startswith("gfx" if kind == "rocm" else "sm_")
    assert found.info.memory_gb and found.info.memory_gb > 1
    assert found.info.torch_version == torch.__version__
    assert (found.info.rocm_version or found.info.cuda_version) is not None


def test_peak_memory_is_the_allocators_peak_on_the_gpu() -> None:
    device = torch.device("cuda")
    measurement = measure(RunRequest(small(), steps=3, warmup=1, sample_cost_s=0.0), device)
    total = torch.cuda.get_device_properties(device).total_memory / 1e9
    assert 0 < measurement.peak_memory_gb < total
    assert all(seconds > 0 for seconds in measurement.window_seconds)


def test_flash_attention_runs_where_the_backend_has_a_kernel() -> None:
    device = torch.device("cuda")
    config = small(attention_impl="flash")
    reason = unsupported_reason(config, device)
    if reason is not None:
        assert "flash attention is not available" in reason
        return
    measurement = measure(RunRequest(config, steps=2, warmup=1, sample_cost_s=0.0), device)
    assert len(measurement.losses) == 3


def test_a_measured_gpu_run_reports_the_device_and_mfu(gpu: DeviceSession) -> None:
    runner = gpu.runner_for(None, WorkloadSettings(sample_cost_ms=0))
    metrics = runner.run(small(), steps=3)
    assert metrics.projected is False and metrics.tokens_per_sec > 0
    assert gpu.info.kind in ("rocm", "cuda")
    assert (metrics.mfu_pct is None) == any("MFU is unknown" in w for w in metrics.warnings)


def test_the_gpu_is_identified_from_its_properties_and_its_memory_is_in_gib() -> None:
    found = detect(parse_selector("auto"))
    props = torch.cuda.get_device_properties(0)
    assert found.info.compute_units == props.multi_processor_count
    assert found.info.memory_gb == pytest.approx(props.total_memory / 2**30)
    if found.info.catalogue_key is not None:  # a listed whole device: its entry's CU count
        from pytest_goblin.catalogue.devices import DEVICES

        assert DEVICES[found.info.catalogue_key].compute_units == props.multi_processor_count


def test_the_injected_sleep_runs_on_the_device_and_lasts_what_it_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_goblin.runner import worker

    monkeypatch.setenv(worker.FAULT_ENV, "sleep=0.05")
    hook = worker.fault_hook(small())
    assert hook is not None
    model = torch.nn.Linear(4, 4, device="cuda")
    hook(0, model)  # measures the spin kernel's rate
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    host = time.perf_counter()
    start.record()
    hook(1, model)
    end.record()
    queued_s = time.perf_counter() - host
    end.synchronize()
    assert start.elapsed_time(end) / 1e3 == pytest.approx(0.05, rel=0.2)
    assert queued_s < 0.01  # the host did not wait: the delay is in the stream


def test_a_gpu_run_records_its_attention_backend_and_memory_peaks() -> None:
    measurement = measure(
        RunRequest(small(), steps=3, warmup=1, sample_cost_s=0.0), torch.device("cuda")
    )
    assert measurement.attention_backend is not None
    assert measurement.attention_backend.startswith("sdpa:")
    assert measurement.peak_reserved_gb is not None
    assert measurement.peak_reserved_gb >= measurement.peak_memory_gb
    assert measurement.peak_device_gb is not None
    assert measurement.peak_device_gb >= measurement.peak_reserved_gb * 0.9
