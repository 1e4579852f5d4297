"""What the worker records about its device: usable UUIDs, memory units (CPU only)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")

from pytest_goblin.runner.detect import detect, first_discrete, usable_uuid
from pytest_goblin.runner.options import parse_selector

ONE = "GPU-5c3e8f0a-1b2c-4d5e-8f90-0123456789ab"
TWO = "GPU-7d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"


def test_a_distinct_uuid_names_the_device() -> None:
    assert usable_uuid(ONE, [ONE, TWO])


@pytest.mark.parametrize(
    "uuid", ["", "00000000-0000-0000-0000-000000000000", "GPU-00000000-0000-0000-0000-000000000000"]
)
def test_an_empty_or_zero_uuid_is_not_an_identity(uuid: str) -> None:
    assert not usable_uuid(uuid, [uuid])


def test_a_uuid_two_visible_devices_share_is_not_an_identity() -> None:
    # MI300X partitions reported the package's UUID for each partition before ROCm 7.12
    assert not usable_uuid(ONE, [ONE, ONE, TWO])


def test_the_cpus_memory_is_in_gib() -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert detect(parse_selector("cpu")).info.memory_gb == pytest.approx(total / 2**30)


def test_auto_passes_over_an_apus_integrated_gpu() -> None:
    assert first_discrete([True, False, False]) == 1
    assert first_discrete([False, True]) == 0
    assert first_discrete([True]) == 0  # nothing else: the integrated GPU it is
