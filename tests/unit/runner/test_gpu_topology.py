"""GPUs that count, packages that share a lock, and CPU affinity, from recorded sysfs and
/dev trees in tmp_path (no GPU): a container that sees the host's KFD nodes but only some
render nodes, an APU, MI300X partitions, MI250X GCD pairs, NUMA nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_goblin.runner import gpu_topology
from pytest_goblin.runner.gpu_topology import (
    bind_to_gpu,
    discrete_indices,
    lock_dir,
    lock_dir_warning,
    package_id,
    parse_cpulist,
    read_nodes,
    usable_gpus,
)
from pytest_goblin.runner.visible import HIP, Pin, pins, rocm_indices

CPU_NODE = {"cpu_cores_count": 64, "simd_count": 0}
MI250X = 0x740C


def gpu(minor: int, location: int, **extra: int) -> dict[str, int]:
    return {"cpu_cores_count": 0, "simd_count": 440, "drm_render_minor": minor,
            "location_id": location, "domain": 0, **extra}  # fmt: skip


def write_tree(
    root: Path,
    nodes: list[dict[str, int]],
    links: dict[int, list[dict[str, int]]] | None = None,
    openable: set[int] | None = None,
) -> tuple[Path, Path]:
    """KFD nodes (with io_links) under root/nodes and their render nodes under root/dri;
    ``openable``: the render minors passed into the "container" (default: all)."""
    kfd, dri = root / "nodes", root / "dri"
    dri.mkdir(parents=True)
    for number, properties in enumerate(nodes):
        node = kfd / str(number)
        node.mkdir(parents=True)
        node.joinpath("properties").write_text(
            "".join(f"{key} {value}\n" for key, value in properties.items())
        )
        for index, link in enumerate((links or {}).get(number, [])):
            (node / "io_links" / str(index)).mkdir(parents=True)
            (node / "io_links" / str(index) / "properties").write_text(
                "".join(f"{key} {value}\n" for key, value in link.items())
            )
        minor = properties.get("drm_render_minor")
        if minor and (openable is None or minor in openable):
            (dri / f"renderD{minor}").write_text("")
    return kfd, dri


def test_only_render_nodes_this_process_can_open_count(tmp_path: Path) -> None:
    # a container given two of the host's four GPUs: /sys/class/kfd still lists all four
    nodes = [CPU_NODE, *(gpu(128 + i, (0x11 + i) << 8) for i in range(4))]
    kfd, dri = write_tree(tmp_path, nodes, openable={129, 131})
    usable = usable_gpus(read_nodes(kfd), dri)
    assert [node.get("drm_render_minor") for node in usable] == [129, 131]
    assert rocm_indices(kfd, dri) == [0, 1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens a file whatever its mode")
def test_a_render_node_without_permission_does_not_count(tmp_path: Path) -> None:
    kfd, dri = write_tree(tmp_path, [CPU_NODE, gpu(128, 0x1100), gpu(129, 0x1200)])
    (dri / "renderD128").chmod(0)
    assert rocm_indices(kfd, dri) == [0]


def test_an_apus_integrated_gpu_is_skipped_and_keeps_its_runtime_index(tmp_path: Path) -> None:
    apu = {**gpu(128, 0x0300), "cpu_cores_count": 16}  # SIMDs and CPU cores: an APU node
    kfd, dri = write_tree(tmp_path, [apu, gpu(129, 0x0300 + 0x100), gpu(130, 0x0500)])
    usable = usable_gpus(read_nodes(kfd), dri)
    assert [node.is_apu for node in usable] == [True, False, False]
    assert discrete_indices(usable) == [1, 2]
    # xdist pins the runtime's indices of the discrete GPUs, not 0 and 1
    assert pins({}, "rocm", 2, rocm_indices(kfd, dri)) == [Pin(HIP, "1"), Pin(HIP, "2")]


def test_partitions_of_one_device_are_one_package(tmp_path: Path) -> None:
    # MI300X in CPX mode: eight KFD nodes of one PCI device (0000:c1:00.0)
    kfd, _ = write_tree(tmp_path, [CPU_NODE, *(gpu(128 + i, 0xC100) for i in range(8))])
    nodes = read_nodes(kfd)
    assert {node.bdf for node in nodes if node.is_gpu} == {"0000:c1:00.0"}
    assert package_id("0000:c1:00.0", nodes) == "pci-0000:c1:00.0"
    assert package_id("0000:c6:00.0", nodes) == "pci-0000:c6:00.0"  # another GPU


def xgmi(to: int, bandwidth: int) -> dict[str, int]:
    return {"type": gpu_topology.XGMI, "node_to": to, "max_bandwidth": bandwidth}


def test_the_two_gcds_of_an_mi250x_share_one_package(tmp_path: Path) -> None:
    # four GCDs in two packages: in-package peers on four links, others on one
    gcds = [gpu(128 + i, (0xC1 + 5 * i) << 8, device_id=MI250X) for i in range(4)]
    wide, narrow = 200_000, 50_000
    links = {
        1: [xgmi(2, wide), xgmi(3, narrow), xgmi(4, narrow)],
        2: [xgmi(1, wide), xgmi(3, narrow), xgmi(4, narrow)],
        3: [xgmi(4, wide), xgmi(1, narrow), xgmi(2, narrow)],
        4: [xgmi(3, wide), xgmi(1, narrow), xgmi(2, narrow)],
    }
    kfd, _ = write_tree(tmp_path, [CPU_NODE, *gcds], links)
    nodes = read_nodes(kfd)
    first, second, third, _ = (node.bdf for node in nodes if node.is_gpu)
    assert package_id(first, nodes) == package_id(second, nodes) == f"pci-{first}+{second}"
    assert package_id(third, nodes) != package_id(first, nodes)


def test_gpus_that_are_not_dual_gcd_parts_or_tie_are_not_paired(tmp_path: Path) -> None:
    # MI210s joined by a bridge (one GCD each), and MI250X GCDs whose widest peer ties
    mi210 = [gpu(128 + i, (0x11 + i) << 8, device_id=0x740F) for i in range(2)]
    tied = [gpu(130 + i, (0x21 + i) << 8, device_id=MI250X) for i in range(3)]
    links = {1: [xgmi(2, 100)], 2: [xgmi(1, 100)], 3: [xgmi(4, 100), xgmi(5, 100)],
             4: [xgmi(3, 100)], 5: [xgmi(3, 100)]}  # fmt: skip
    kfd, _ = write_tree(tmp_path, [CPU_NODE, *mi210, *tied], links)
    nodes = read_nodes(kfd)
    for node in nodes[1:4]:
        assert package_id(node.bdf, nodes) == f"pci-{node.bdf}"


def test_cpulists_parse_as_the_kernel_writes_them() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpulist("") == set()


def numa_tree(root: Path, bdf: str, node: int, cpulist: str) -> tuple[Path, Path]:
    pci, numa = root / "pci", root / "node"
    (pci / bdf).mkdir(parents=True)
    (pci / bdf / "numa_node").write_text(f"{node}\n")
    (numa / f"node{max(node, 0)}").mkdir(parents=True)
    (numa / f"node{max(node, 0)}" / "cpulist").write_text(cpulist)
    return pci, numa


def test_the_worker_binds_to_its_gpus_numa_node(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    mine = min(before)
    pci, numa = numa_tree(tmp_path, "0000:c1:00.0", 1, f"{mine}")
    try:
        done, warning = bind_to_gpu("0000:c1:00.0", pci, numa)
        assert warning is None and done == "bound to NUMA node 1 of GPU 0000:c1:00.0: 1 CPUs"
        assert os.sched_getaffinity(0) == {mine}
    finally:
        os.sched_setaffinity(0, before)


def test_affinity_is_left_alone_and_said_when_it_cannot_be_set(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    pci, numa = numa_tree(tmp_path, "0000:c1:00.0", 0, f"{max(before) + 1000}")
    done, warning = bind_to_gpu("0000:c1:00.0", pci, numa)
    assert done is None and warning is not None and "none of NUMA node 0's CPUs" in warning
    single, one_node = numa_tree(tmp_path / "one", "0000:c6:00.0", -1, "0")
    done, warning = bind_to_gpu("0000:c6:00.0", single, one_node)
    assert warning is None and done is not None and "one NUMA node" in done
    (one_node / "node1").mkdir()  # two nodes, and the GPU's is not given
    done, warning = bind_to_gpu("0000:c6:00.0", single, one_node)
    assert done is None and warning is not None and "does not say" in warning
    assert "PCI address" in str(bind_to_gpu(None, pci, numa)[1])
    assert os.sched_getaffinity(0) == before


def test_the_lock_directory_is_settable_and_its_absence_in_a_container_is_said() -> None:
    assert lock_dir({"GOBLIN_LOCK_DIR": "/shared/locks"}) == Path("/shared/locks")
    assert lock_dir({}).name == "pytest-goblin-locks"
    warning = lock_dir_warning({}, container=True)
    assert warning is not None and "GOBLIN_LOCK_DIR" in warning
    assert lock_dir_warning({"GOBLIN_LOCK_DIR": "/shared/locks"}, container=True) is None
    assert lock_dir_warning({}, container=False) is None


# --- where the worker and the pytest side use it ---------------------------------------------


def test_the_pci_address_comes_from_torchs_device_properties() -> None:
    pytest.importorskip("torch")
    from types import SimpleNamespace

    from pytest_goblin.runner.detect import pci_bdf

    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0xC1, pci_device_id=0)
    assert pci_bdf(props) == "0000:c1:00.0"
    assert pci_bdf(SimpleNamespace(name="a torch without PCI fields")) is None


class StubWorker:
    """What LiveDevice reads of a started worker: its hello line."""

    def __init__(self, hello: dict[str, object]) -> None:
        self.hello = hello

    def start(self) -> dict[str, object]:
        return self.hello


def test_the_lock_file_is_the_packages_when_the_worker_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from pytest_goblin.runner import measured
    from pytest_goblin.runner.options import MeasureOptions
    from pytest_goblin.schemas import DeviceInfo

    monkeypatch.setattr(measured, "LOCK_DIR", tmp_path)
    info = DeviceInfo(kind="rocm", name="AMD Instinct MI300X", platform="rocm-instinct")
    hello = {"ok": True, "info": info.model_dump(mode="json"), "lock_id": "rocm-GPU-5c1f"}
    for extra, name in (
        ({"package_id": "rocm-pci-0000:c1:00.0"}, "rocm-pci-0000_c1_00.0.lock"),
        ({"package_id": None}, "rocm-GPU-5c1f.lock"),  # a torch that reports no PCI address
    ):
        device = measured.LiveDevice(MeasureOptions(device="rocm"))
        device._start(StubWorker({**hello, **extra}), ())  # type: ignore[arg-type]
        assert device._lock_path == tmp_path / name


def test_a_gpu_worker_without_a_pci_address_says_its_cpus_are_not_placed() -> None:
    torch = pytest.importorskip("torch")
    from pytest_goblin.runner.detect import Detected
    from pytest_goblin.runner.worker import _place
    from pytest_goblin.schemas import DeviceInfo

    gpu = Detected(
        torch.device("cuda", 0), DeviceInfo(kind="cuda", name="GPU", platform="cuda"), "cuda-0"
    )
    warning = _place(gpu)
    assert warning is not None and "CPU affinity not set" in warning
    cpu = Detected(torch.device("cpu"), DeviceInfo(kind="cpu", name="CPU", platform="cpu"), "cpu")
    assert _place(cpu) is None


@pytest.mark.gpu
def test_on_rocm_the_gpus_counted_are_those_the_runtime_numbers() -> None:
    torch = pytest.importorskip("torch")
    if not (torch.version.hip and torch.cuda.is_available()):
        pytest.skip("needs a ROCm device")
    if any(name in os.environ for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                                            "CUDA_VISIBLE_DEVICES")):  # fmt: skip
        pytest.skip("a visible-devices variable narrows what the runtime numbers")
    usable = usable_gpus(read_nodes())
    integrated = sum(node.is_apu for node in usable)
    assert len(usable) == torch.cuda.device_count()
    assert len(rocm_indices()) == torch.cuda.device_count() - integrated
