"""Finding the device a selector names, and describing it, inside the worker process.

ROCm builds of PyTorch expose AMD GPUs through the ``cuda`` device type; they
are told apart by ``torch.version.hip``. The report's ``device.kind`` is
``rocm``, ``cuda`` or ``cpu``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from pytest_goblin.catalogue.devices import resolve_identity
from pytest_goblin.errors import GoblinError
from pytest_goblin.runner import gpu_topology
from pytest_goblin.runner.options import DeviceSelector
from pytest_goblin.runner.visible import physical_id
from pytest_goblin.schemas import DeviceInfo

GIB = 2**30
"""Device memory is sized in binary units: an "80 GB" H100 reports 85.0e9 bytes, 79.2 GiB
(80 GiB less what the driver keeps), so ``memory_gb`` is ``total_memory`` over 2^30."""


class DeviceUnavailable(GoblinError):
    """The selector names a device this machine or this PyTorch build does not have."""


@dataclass(frozen=True)
class Detected:
    device: torch.device
    info: DeviceInfo
    lock_id: str
    """Names the physical device, so that every process locks the same file for it."""
    pci_bdf: str | None = None
    """The GPU's PCI address (``0000:c1:00.0``) where torch reports it: its NUMA node."""
    package_id: str | None = None
    """Names the physical package (``gpu_topology.package_id``): GPUs that share power and
    memory (MI300X partitions, an MI250X's two GCDs, MIG slices) share one lock."""


def detect(selector: DeviceSelector) -> Detected:
    """The torch device for ``selector`` and what the report says about it."""
    gpu_kind = "rocm" if torch.version.hip else "cuda"
    if selector.kind == "cpu" or (selector.kind == "auto" and not torch.cuda.is_available()):
        return _cpu()
    if selector.kind in ("cuda", "rocm") and selector.kind != gpu_kind:
        build = (
            f"ROCm (HIP {torch.version.hip})"
            if torch.version.hip
            else (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only")
        )
        raise DeviceUnavailable(
            f"--goblin-device {selector}: this PyTorch {torch.__version__} is a {build} build"
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"--goblin-device {selector}: PyTorch sees no {gpu_kind} device")
    count = torch.cuda.device_count()
    index = selector.index
    if index is None:
        integrated = [bool(getattr(torch.cuda.get_device_properties(i), "is_integrated", 0))
                      for i in range(count)]  # fmt: skip
        index = first_discrete(integrated)
    if index >= count:
        raise DeviceUnavailable(
            f"--goblin-device {selector}: only {count} {gpu_kind} device(s) are visible"
        )
    return _gpu(gpu_kind, index, count)


def _gpu(kind: str, index: int, count: int) -> Detected:
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)  # CUDA events and streams go to the current device
    props = torch.cuda.get_device_properties(index)
    if kind == "rocm":
        arch = props.gcnArchName.split(":", 1)[0]  # gfx942:sramecc+:xnack- → gfx942
        platform_tag = "rocm-radeon" if arch.startswith("gfx1") else "rocm-instinct"
    else:
        arch = f"sm_{props.major}{props.minor}"
        platform_tag = "cuda"
    # clock_rate (kHz, the device's maximum engine clock) is in torch's properties from 2.6
    clock_khz = getattr(props, "clock_rate", 0)
    info = DeviceInfo(
        kind=kind,  # type: ignore[arg-type]  # "rocm" or "cuda"
        name=props.name,
        platform=platform_tag,
        memory_gb=props.total_memory / GIB,
        arch=arch,
        torch_version=torch.__version__,
        rocm_version=torch.version.hip,
        cuda_version=torch.version.cuda,
        driver_version=_driver_version(kind),
        compute_units=props.multi_processor_count or None,
        clock_mhz=clock_khz / 1e3 if clock_khz else None,
    )
    info = info.model_copy(update={"catalogue_key": resolve_identity(info).key})
    lock_id, bdf, package = _names(kind, index, count)
    return Detected(device, info, lock_id, bdf, package)


def _names(kind: str, index: int, count: int) -> tuple[str, str | None, str | None]:
    """``(lock_id, PCI address, package id)`` of visible GPU ``index`` of ``count``."""
    uuids = [str(getattr(torch.cuda.get_device_properties(i), "uuid", "")) for i in range(count)]
    # without a usable UUID, the index followed through the visible-devices variables: a
    # pinned xdist worker sees its GPU as index 0
    uuid = uuids[index]
    lock_id = f"{kind}-{uuid}" if usable_uuid(uuid, uuids) else physical_id(kind, index, os.environ)
    bdf = pci_bdf(torch.cuda.get_device_properties(index))
    package = gpu_topology.package_id(bdf, gpu_topology.read_nodes()) if bdf else None
    return lock_id, bdf, f"{kind}-{package}" if package else None


def gpu_lock_names(ranks: int) -> list[str]:
    """The lock names of visible GPUs 0 to ``ranks - 1`` (the devices a multi-rank run
    takes), each as ``LiveDevice`` names a worker's own: its package, else the device."""
    kind = "rocm" if torch.version.hip else "cuda"
    count = torch.cuda.device_count()
    names = []
    for index in range(min(ranks, count)):
        lock_id, _, package = _names(kind, index, count)
        names.append(package or lock_id)
    return names


def pci_bdf(props: object) -> str | None:
    """The PCI address in torch's device properties (``pci_domain_id``, ``pci_bus_id``,
    ``pci_device_id``), or None where this torch does not report them."""
    bus, slot = getattr(props, "pci_bus_id", None), getattr(props, "pci_device_id", None)
    if not isinstance(bus, int) or not isinstance(slot, int):
        return None
    domain = getattr(props, "pci_domain_id", 0)
    return f"{domain if isinstance(domain, int) else 0:04x}:{bus:02x}:{slot:02x}.0"


def first_discrete(integrated: list[bool]) -> int:
    """The first device that is not an APU's integrated GPU (which shares the host's memory
    and power, and is not what a training job runs on), else device 0."""
    return next((i for i, shared in enumerate(integrated) if not shared), 0)


def usable_uuid(uuid: str, visible: list[str]) -> bool:
    """Whether ``uuid`` names one physical device: not empty, not all zeros (devices and
    drivers that have none report zeros), and not shared with another visible device (MI300X
    partitions reported one UUID for the whole package before ROCm 7.12)."""
    digits = "".join(ch for ch in uuid if ch.isalnum()).removeprefix("GPU").removeprefix("MIG")
    if not digits or set(digits) <= {"0"}:
        return False
    return visible.count(uuid) == 1


def _driver_version(kind: str) -> str | None:
    """The kernel driver's version where the OS exposes it, else None."""
    path = Path("/sys/module/amdgpu/version" if kind == "rocm" else "/proc/driver/nvidia/version")
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if kind == "cuda":
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar ..."
        words = text.splitlines()[0].split()
        return next((w for w in words if w[:1].isdigit() and "." in w), None)
    return text or None


def _cpu() -> Detected:
    info = DeviceInfo(
        kind="cpu",
        name=_cpu_name(),
        platform="cpu",
        memory_gb=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB,
        arch=platform.machine(),
        torch_version=torch.__version__,
    )
    return Detected(torch.device("cpu"), info, "cpu")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
