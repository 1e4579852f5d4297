"""The device catalogue: lookup, published figures, and the spec's own checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pytest_goblin.catalogue.devices import DEVICES, DeviceSpec, get_device

EXPECTED = {"mi250x", "mi300x", "mi325x", "mi355x", "rx7900xtx", "a100", "h100", "h200", "cpu"}


def _spec(**overrides: Any) -> DeviceSpec:
    fields: dict[str, Any] = {
        "name": "toy",
        "display_name": "Toy GPU",
        "kind": "cuda",
        "platform": "cuda",
        "arch": "sm_00",
        "peak_tflops": {"fp32": 1.0, "bf16": 2.0},
        "memory_gb": 8,
        "bandwidth_gbs": 100,
        "has_flash_attention": True,
        "sources": ["https://example.com/toy"],
    }
    fields.update(overrides)
    return DeviceSpec(**fields)


def test_catalogue_holds_the_documented_devices() -> None:
    assert set(DEVICES) == EXPECTED


def test_catalogue_keys_are_the_spec_names() -> None:
    assert all(key == spec.name for key, spec in DEVICES.items())


@pytest.mark.parametrize("name", ["MI300X", "mi300x", "Mi300X", " mi300x "])
def test_lookup_ignores_case_and_surrounding_space(name: str) -> None:
    assert get_device(name) is DEVICES["mi300x"]


def test_lookup_ignores_spaces_and_dashes_inside_the_name() -> None:
    assert get_device("RX 7900-XTX") is DEVICES["rx7900xtx"]


def test_unknown_device_error_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown device 'mi400x'") as excinfo:
        get_device("mi400x")
    assert all(name in str(excinfo.value) for name in EXPECTED)


def test_mi300x_figures_match_the_rocm_architecture_doc() -> None:
    spec = get_device("mi300x")
    assert spec.peak_tflops == {
        "fp32": 163.4,
        "tf32": 653.7,
        "fp16": 1307.4,
        "bf16": 1307.4,
        "fp8": 2614.9,
    }
    assert (spec.memory_gb, spec.bandwidth_gbs, spec.arch) == (192, 5300, "gfx942")


def test_h100_figures_are_the_dense_sxm_rates() -> None:
    spec = get_device("h100")
    assert spec.peak_tflops == {
        "fp32": 67,
        "tf32": 494.7,
        "fp16": 989.4,
        "bf16": 989.4,
        "fp8": 1978.9,
    }
    assert (spec.memory_gb, spec.bandwidth_gbs, spec.arch) == (80, 3350, "sm_90")


def test_mi250x_entry_is_one_gcd() -> None:
    spec = get_device("mi250x")
    assert (spec.peak_tflops["bf16"], spec.memory_gb, spec.bandwidth_gbs) == (191.5, 64, 1638.4)


def test_mi325x_shares_the_mi300x_compute_with_more_memory() -> None:
    mi300x, mi325x = get_device("mi300x"), get_device("mi325x")
    assert mi325x.peak_tflops == mi300x.peak_tflops
    assert mi325x.memory_gb > mi300x.memory_gb


@pytest.mark.parametrize("name", ["mi250x", "rx7900xtx", "a100", "cpu"])
def test_fp8_is_absent_without_fp8_hardware(name: str) -> None:
    assert "fp8" not in get_device(name).peak_tflops


@pytest.mark.parametrize("name", ["mi300x", "mi325x", "mi355x", "h100", "h200"])
def test_fp8_is_listed_where_the_hardware_has_it(name: str) -> None:
    assert "fp8" in get_device(name).peak_tflops


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_precision_rates_are_ordered(name: str) -> None:
    peaks = get_device(name).peak_tflops
    assert peaks["fp32"] <= peaks.get("tf32", peaks["fp32"]) <= peaks["bf16"]
    assert peaks["bf16"] <= peaks.get("fp8", peaks["bf16"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_flash_attention_exists_on_instinct_and_cuda_only(name: str) -> None:
    spec = get_device(name)
    assert spec.has_flash_attention == (spec.platform in ("rocm-instinct", "cuda"))


@pytest.mark.parametrize("name", sorted(EXPECTED - {"cpu"}))
def test_every_gpu_cites_https_sources(name: str) -> None:
    sources = get_device(name).sources
    assert sources and all(url.startswith("https://") for url in sources)


def test_cpu_is_labelled_as_a_placeholder() -> None:
    assert "placeholder" in get_device("cpu").display_name.lower()


def test_info_describes_a_simulated_device() -> None:
    info = get_device("mi300x").info()
    assert info.kind == "simulated"
    assert (info.name, info.platform, info.memory_gb, info.arch) == (
        "AMD Instinct MI300X",
        "rocm-instinct",
        192,
        "gfx942",
    )


def test_spec_is_frozen() -> None:
    with pytest.raises(ValidationError):
        get_device("h100").memory_gb = 1  # type: ignore[misc]


def test_spec_rejects_an_unknown_precision_key() -> None:
    with pytest.raises(ValidationError, match="unknown precision keys"):
        _spec(peak_tflops={"fp32": 1.0, "bf16": 2.0, "int8": 4.0})


def test_spec_requires_fp32_and_bf16_rates() -> None:
    with pytest.raises(ValidationError, match="needs"):
        _spec(peak_tflops={"fp32": 1.0})


def test_spec_rejects_a_non_https_source() -> None:
    with pytest.raises(ValidationError, match="https"):
        _spec(sources=["http://example.com/toy"])


def test_spec_rejects_an_uppercase_name() -> None:
    with pytest.raises(ValidationError, match="lowercase"):
        _spec(name="Toy")
