"""Identifying a live GPU from its recorded properties, not its marketing name (no torch).

The property sets are what ``torch.cuda.get_device_properties`` reports on these parts
(``gcnArchName`` / ``sm_XY``, ``multi_processor_count``, ``total_memory`` in GiB, the
maximum clock); the names are the unhelpful ones drivers are known to report.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_goblin.catalogue.devices import DEVICES, resolve_identity
from pytest_goblin.schemas import DeviceInfo


def gpu(kind: Any, arch: str, units: int | None, memory_gb: float, **more: Any) -> DeviceInfo:
    fields: dict[str, Any] = {"name": "", "platform": "x", **more}
    return DeviceInfo(kind=kind, arch=arch, compute_units=units, memory_gb=memory_gb, **fields)


@pytest.mark.parametrize("name", ["", "AMD Radeon Graphics", "AMD Instinct MI300X"])
def test_an_mi300x_is_known_whatever_its_driver_calls_it(name: str) -> None:
    identity = resolve_identity(gpu("rocm", "gfx942", 304, 191.98, name=name))
    assert (identity.key, identity.peak_of, identity.peak_scale) == ("mi300x", "mi300x", 1.0)
    assert identity.notes == []


def test_mi300x_and_mi325x_share_a_die_and_are_told_apart_by_memory() -> None:
    assert resolve_identity(gpu("rocm", "gfx942", 304, 255.98)).key == "mi325x"


def test_an_mi300x_cpx_partition_gets_an_eighth_of_the_peak_and_no_key() -> None:
    identity = resolve_identity(gpu("rocm", "gfx942", 38, 47.98, name="AMD Instinct MI300X"))
    assert identity.key is None and identity.peak_of == "mi300x"
    assert identity.peak_scale == pytest.approx(38 / 304)
    spec = identity.spec()
    assert spec is not None
    assert spec.peak_tflops["bf16"] == pytest.approx(DEVICES["mi300x"].peak_tflops["bf16"] / 8)
    assert any("38 compute units" in note for note in identity.notes)


def test_an_h100_pcie_is_scaled_by_sms_and_clock_from_the_sxm_entry() -> None:
    identity = resolve_identity(
        gpu("cuda", "sm_90", 114, 79.6, name="NVIDIA H100 PCIe", clock_mhz=1755)
    )
    assert identity.key is None and identity.peak_of == "h100"
    assert identity.peak_scale == pytest.approx(114 / 132 * 1755 / 1980)
    spec = identity.spec()
    assert spec is not None
    # NVIDIA's datasheet: 756 TFLOP/s dense bf16 for H100 PCIe
    assert spec.peak_tflops["bf16"] == pytest.approx(756, rel=0.01)


def test_a_gh200_is_not_an_h200_although_its_name_contains_it() -> None:
    identity = resolve_identity(gpu("cuda", "sm_90", 132, 94.5, name="NVIDIA GH200 480GB"))
    assert identity.key is None
    assert identity.peak_of == "h200"  # the least memory that holds 94.5 GiB
    assert identity.peak_scale == 1.0


def test_a_mig_slice_is_scaled_to_its_sms() -> None:
    identity = resolve_identity(gpu("cuda", "sm_90", 16, 9.75, name="NVIDIA H100 80GB HBM3"))
    assert identity.key is None and identity.peak_scale == pytest.approx(16 / 132)


def test_an_unlisted_arch_has_no_peak() -> None:
    identity = resolve_identity(gpu("cuda", "sm_89", 128, 23.6, name="NVIDIA GeForce RTX 4090"))
    assert identity.key is None and identity.spec() is None
    assert "not in the device catalogue" in identity.notes[0]


def test_a_clock_at_the_entrys_boost_leaves_the_peak_alone() -> None:
    identity = resolve_identity(gpu("cuda", "sm_90", 132, 79.6, clock_mhz=1980))
    assert identity.key == "h100" and identity.peak_scale == 1.0


def test_a_lower_maximum_clock_scales_the_peak_but_keeps_the_key() -> None:
    identity = resolve_identity(gpu("cuda", "sm_90", 132, 139.8, clock_mhz=1785))
    assert identity.key == "h200"
    assert identity.peak_scale == pytest.approx(1785 / 1980)


def test_every_listed_gpu_records_its_compute_units_and_clock() -> None:
    for spec in DEVICES.values():
        if spec.kind != "cpu":
            assert spec.compute_units and spec.boost_clock_mhz, spec.name


def test_a_simulated_device_carries_its_catalogue_key() -> None:
    info = DEVICES["mi300x"].info()
    assert info.catalogue_key == "mi300x" and info.compute_units == 304
