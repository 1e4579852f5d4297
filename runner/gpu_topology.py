"""Which GPUs a process can use, which of them interfere, and where their CPUs are: read
from sysfs and /dev without torch, so that the pytest process can count GPUs and the
measuring worker can place itself.

- **Usable GPUs (ROCm).** ``/sys/class/kfd`` is not namespaced: a container sees every
  GPU of the host there, and an APU's integrated GPU besides. The ROCm runtime uses a KFD
  node only when its render node ``/dev/dri/renderD<drm_render_minor>`` opens (ROCm
  ROCR-Runtime libhsakmt/src/topology.c, ``topology_sysfs_check_node_supported``), and
  numbers the usable GPU nodes in KFD order; so is this. A node with both SIMDs and CPU
  cores is an APU (linux drivers/gpu/drm/amd/amdkfd/kfd_topology.c,
  ``kfd_debug_print_topology`` and ``kfd_is_acpi_crat_invalid``): it shares the host's
  memory and power and is not what a training job runs on, so it is not counted.
- **One lock per physical package.** GPUs in one package share power and HBM: MI300X
  partitions (DPX/CPX) are KFD nodes of one PCI device, so they share ``location_id``
  (the PCI bus/device/function, kfd_topology.c ``node_show``); an MI250/MI250X package
  holds two GCDs, two PCI devices, joined by more xGMI links than join packages (AMD
  CDNA2 white paper: four in-package links), so the pair is the two gfx90a dual-GCD
  nodes (PCI device 0x7408/0x740c) that are each other's widest xGMI peer in the
  ``io_links``. A MIG slice has its GPU's PCI address, so slices of one GPU share a lock.
- **Locks other containers can see.** The lock files live in ``GOBLIN_LOCK_DIR`` when set,
  else in the temp directory, which is private to a container: jobs in two containers that
  share a GPU exclude each other only through a directory both mount.
- **CPU affinity.** The measuring worker binds itself (and the DataLoader workers it
  starts) to the CPUs of the GPU's NUMA node: ``/sys/bus/pci/devices/<bdf>/numa_node`` and
  ``/sys/devices/system/node/node<N>/cpulist``, within the CPUs it was allowed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KFD_NODES = Path("/sys/class/kfd/kfd/topology/nodes")
DEV_DRI = Path("/dev/dri")
PCI_DEVICES = Path("/sys/bus/pci/devices")
NUMA_NODES = Path("/sys/devices/system/node")
LOCK_DIR_ENV = "GOBLIN_LOCK_DIR"
"""A directory for the device lock files that every job sharing the GPUs can see."""

XGMI = 11
"""io_link type of an xGMI link (HSA_IOLINK_TYPE_XGMI; libhsakmt TOPO_IOLINK_TYPE_XGMI)."""
DUAL_GCD_DEVICE_IDS = frozenset({0x7408, 0x740C})
"""PCI device ids of Aldebaran parts with two GCDs in a package (MI250X, MI250); MI210
(0x740F) has one."""
CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))


@dataclass(frozen=True)
class KfdNode:
    """One KFD topology node: its number, its ``properties`` and its io_links'."""

    number: int
    properties: Mapping[str, int]
    links: tuple[Mapping[str, int], ...] = field(default=())

    def get(self, key: str) -> int:
        return self.properties.get(key, 0)

    @property
    def is_gpu(self) -> bool:
        return self.get("simd_count") > 0

    @property
    def is_apu(self) -> bool:
        """SIMDs and CPU cores in one node: an APU's integrated GPU."""
        return self.is_gpu and self.get("cpu_cores_count") > 0

    @property
    def bdf(self) -> str:
        """The PCI address: ``location_id`` is bus << 8 | devfn, ``domain`` the segment."""
        location = self.get("location_id")
        bus, slot, function = location >> 8, (location >> 3) & 0x1F, location & 0x7
        return f"{self.get('domain'):04x}:{bus:02x}:{slot:02x}.{function}"


def _read_properties(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def _numbered(directory: Path) -> list[Path]:
    try:
        children = [child for child in directory.iterdir() if child.name.isdigit()]
    except OSError:
        return []
    return sorted(children, key=lambda child: int(child.name))


def read_nodes(root: Path = KFD_NODES) -> list[KfdNode]:
    """The KFD topology's nodes in their order (none where there is no KFD)."""
    return [
        KfdNode(
            int(node.name),
            _read_properties(node / "properties"),
            tuple(_read_properties(link / "properties") for link in _numbered(node / "io_links")),
        )
        for node in _numbered(root)
    ]


def openable(path: Path) -> bool:
    """Whether this process can open ``path`` for reading and writing (a render node: not
    passed into the container, or not permitted, is not usable)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def usable_gpus(nodes: list[KfdNode], dev_dri: Path = DEV_DRI) -> list[KfdNode]:
    """The GPU nodes the ROCm runtime will use, in its order: their render node opens."""
    return [
        node
        for node in nodes
        if node.is_gpu and openable(dev_dri / f"renderD{node.get('drm_render_minor')}")
    ]


def discrete_indices(usable: list[KfdNode]) -> list[int]:
    """The runtime's indices (``HIP_VISIBLE_DEVICES``) of the usable GPUs that are not an
    APU's integrated GPU."""
    return [index for index, node in enumerate(usable) if not node.is_apu]


def package_id(bdf: str, nodes: list[KfdNode]) -> str:
    """The physical package of the GPU at PCI address ``bdf``: one name for MI300X
    partitions (one PCI device), for the two GCDs of an MI250/MI250X, and for MIG slices;
    the PCI address itself otherwise (and for a GPU the KFD does not list)."""
    mine = [node for node in nodes if node.is_gpu and node.bdf == bdf]
    if not mine:
        return f"pci-{bdf}"
    peer = _package_peer(mine[0], nodes)
    return f"pci-{min(bdf, peer.bdf)}+{max(bdf, peer.bdf)}" if peer else f"pci-{bdf}"


def _package_peer(node: KfdNode, nodes: list[KfdNode]) -> KfdNode | None:
    """The other GCD of a dual-GCD package: the single widest xGMI peer, when that peer's
    single widest peer is this node."""
    by_number = {other.number: other for other in nodes}

    def widest(of: KfdNode) -> KfdNode | None:
        if of.get("device_id") not in DUAL_GCD_DEVICE_IDS:
            return None
        links = [
            link
            for link in of.links
            if link.get("type") == XGMI and link.get("node_to") in by_number
            and by_number[link.get("node_to", -1)].bdf != of.bdf
        ]  # fmt: skip
        if not links:
            return None
        top = max(link.get("max_bandwidth", 0) for link in links)
        best = [link for link in links if link.get("max_bandwidth", 0) == top]
        return by_number[best[0].get("node_to", -1)] if top > 0 and len(best) == 1 else None

    peer = widest(node)
    if peer is None:
        return None
    back = widest(peer)
    return peer if back is not None and back.bdf == node.bdf else None


def parse_cpulist(text: str) -> set[int]:
    """``0-3,8,10-11`` → {0, 1, 2, 3, 8, 10, 11} (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def numa_cpus(
    bdf: str, pci_devices: Path = PCI_DEVICES, numa_nodes: Path = NUMA_NODES
) -> tuple[int, set[int]] | None:
    """The NUMA node of the PCI device at ``bdf`` and that node's CPUs; None when the
    kernel does not say (``numa_node`` -1 on a one-node machine, or no such device)."""
    try:
        node = int((pci_devices / bdf / "numa_node").read_text().strip())
        if node < 0:
            return None
        cpus = parse_cpulist((numa_nodes / f"node{node}" / "cpulist").read_text())
    except (OSError, ValueError):
        return None
    return node, cpus


def bind_to_gpu(
    bdf: str | None, pci_devices: Path = PCI_DEVICES, numa_nodes: Path = NUMA_NODES
) -> tuple[str | None, str | None]:
    """Bind this process to the CPUs of the GPU's NUMA node, within those it may use.

    Returns (what was done, a warning): the warning when the GPU's node is unknown or
    none of its CPUs are allowed here, so the host work of the run (the DataLoader, the
    launch queue) may cross the socket interconnect.
    """
    if bdf is None:
        return None, (
            "CPU affinity not set: this torch does not report the GPU's PCI address, so "
            "its NUMA node is unknown"
        )
    found = numa_cpus(bdf, pci_devices, numa_nodes)
    if found is None:
        if len(list(numa_nodes.glob("node[0-9]*"))) > 1:
            return None, (
                f"CPU affinity not set: the kernel does not say which of this machine's NUMA "
                f"nodes GPU {bdf} is on, so its host work may cross the socket interconnect"
            )
        return f"GPU {bdf}: one NUMA node, CPU affinity left as it was", None
    node, cpus = found
    allowed = os.sched_getaffinity(0)
    wanted = cpus & allowed
    if not wanted:
        return None, (
            f"CPU affinity not set: none of NUMA node {node}'s CPUs (GPU {bdf}) are allowed "
            "to this process, so its host work may cross the socket interconnect"
        )
    if wanted != allowed:
        os.sched_setaffinity(0, wanted)
    return f"bound to NUMA node {node} of GPU {bdf}: {len(wanted)} CPUs", None


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the device lock files live: ``GOBLIN_LOCK_DIR``, else the temp directory."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(LOCK_DIR_ENV)
    if chosen:
        return Path(chosen)
    return Path(tempfile.gettempdir()) / "pytest-goblin-locks"


def in_container(markers: tuple[Path, ...] = CONTAINER_MARKERS) -> bool:
    """Whether this process runs in a Docker/Podman container (their marker files)."""
    return any(marker.exists() for marker in markers)


def lock_dir_warning(
    environ: Mapping[str, str] | None = None, container: bool | None = None
) -> str | None:
    """Said in a GPU run's warnings when its lock lives where no other container sees it."""
    environ = os.environ if environ is None else environ
    if environ.get(LOCK_DIR_ENV) or not (in_container() if container is None else container):
        return None
    return (
        f"the device lock is in this container's temp directory ({lock_dir(environ)}): jobs in "
        f"other containers sharing this GPU do not wait for it; set {LOCK_DIR_ENV} to a "
        "directory they all mount"
    )
