"""The device catalogue: published peak rates, memory and bandwidth per device.

The analytic model (``runner/analytic.py``) turns FLOPs and bytes into seconds with these
figures, and MFU is computed against the dense BF16 peak listed here. Every
figure is a vendor datasheet number (dense, no sparsity, max boost clock) or is
derived from one in the way the comment next to it says; ``sources`` lists where
they come from.

Conventions:

- ``peak_tflops["fp32"]`` is the matrix-core / tensor-core FP32 rate where the
  hardware has one (CDNA), else the vector FP32 rate (NVIDIA, RDNA, CPU).
- ``tf32`` and ``fp8`` appear only on devices whose matrix units execute them.
- One entry is one PyTorch device: an MI250X OAM module is two GCDs, each a
  separate device, so the ``mi250x`` entry holds per-GCD figures.
- GB are 10^9 bytes, GB/s are 10^9 bytes per second (HBM or GDDR peak).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_goblin.schemas import DeviceInfo

PRECISION_KEYS: frozenset[str] = frozenset({"fp32", "tf32", "fp16", "bf16", "fp8"})
REQUIRED_PRECISIONS: frozenset[str] = frozenset({"fp32", "bf16"})


class DeviceSpec(BaseModel):
    """Published capabilities of one accelerator (or a generic CPU), for projection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="catalogue key, lowercase, e.g. mi300x")
    display_name: str
    kind: Literal["rocm", "cuda", "cpu"]
    platform: Literal["rocm-instinct", "rocm-radeon", "cuda", "cpu"]
    arch: str = Field(description="LLVM gfx target, CUDA sm_XX, or the CPU ISA")
    peak_tflops: dict[str, float] = Field(
        description="dense peak TFLOP/s by precision (fp32, tf32, fp16, bf16, fp8)"
    )
    memory_gb: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0, description="peak device-memory bandwidth, GB/s")
    has_flash_attention: bool
    sources: list[str] = Field(default_factory=list)
    compute_units: int | None = Field(
        default=None,
        gt=0,
        description="CUs (AMD) or SMs (NVIDIA) of the whole device, as torch's "
        "multi_processor_count reports them: with arch and memory, how a live GPU is identified",
    )
    boost_clock_mhz: float | None = Field(
        default=None,
        gt=0,
        description="the maximum engine clock the peak rates assume, as torch's clock_rate "
        "reports it (kHz there): a live device's peak is scaled by its own over this",
    )

    @field_validator("name")
    @classmethod
    def _lowercase_key(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError(f"device name {value!r} must be lowercase")
        return value

    @field_validator("peak_tflops")
    @classmethod
    def _known_precisions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - PRECISION_KEYS
        if unknown:
            raise ValueError(
                f"unknown precision keys {sorted(unknown)}; use {sorted(PRECISION_KEYS)}"
            )
        missing = REQUIRED_PRECISIONS - set(value)
        if missing:
            raise ValueError(f"peak_tflops needs {sorted(missing)}: the runner falls back to them")
        if any(rate <= 0 for rate in value.values()):
            raise ValueError("peak rates must be positive")
        return value

    @field_validator("sources")
    @classmethod
    def _https_only(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith("https://"):
                raise ValueError(f"source {url!r} is not an https URL")
        return value

    def info(self) -> DeviceInfo:
        """The device as a report names it: simulated, since nothing ran on it."""
        return DeviceInfo(
            kind="simulated",
            name=self.display_name,
            platform=self.platform,
            memory_gb=self.memory_gb,
            arch=self.arch,
            compute_units=self.compute_units,
            catalogue_key=self.name,
        )


_MI300_ARCH_DOC = "https://rocm.docs.amd.com/en/latest/conceptual/gpu-arch/mi300.html"

_CATALOGUE: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        name="mi250x",
        display_name="AMD Instinct MI250X (one GCD)",
        kind="rocm",
        platform="rocm-instinct",
        arch="gfx90a",
        # OAM totals halved: 383 TF bf16/fp16, 95.7 TF fp32 matrix, 128 GB, 3.2768 TB/s.
        peak_tflops={"fp32": 47.9, "fp16": 191.5, "bf16": 191.5},
        memory_gb=64,
        bandwidth_gbs=1638.4,
        # 220 CUs per OAM module, 110 per GCD; 1700 MHz peak engine clock.
        compute_units=110,
        boost_clock_mhz=1700,
        has_flash_attention=True,
        sources=[
            "https://www.amd.com/en/products/accelerators/instinct/mi200/mi250x.html",
            "https://rocm.docs.amd.com/en/latest/conceptual/gpu-arch/mi250.html",
        ],
    ),
    DeviceSpec(
        name="mi300x",
        display_name="AMD Instinct MI300X",
        kind="rocm",
        platform="rocm-instinct",
        arch="gfx942",
        # 304 CU x 2048 bf16 FLOP/clk/CU x 2.1 GHz.
        peak_tflops={"fp32": 163.4, "tf32": 653.7, "fp16": 1307.4, "bf16": 1307.4, "fp8": 2614.9},
        memory_gb=192,
        bandwidth_gbs=5300,
        compute_units=304,
        boost_clock_mhz=2100,
        has_flash_attention=True,
        sources=[
            _MI300_ARCH_DOC,
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
        ],
    ),
    DeviceSpec(
        name="mi325x",
        display_name="AMD Instinct MI325X",
        kind="rocm",
        platform="rocm-instinct",
        arch="gfx942",
        # Same CDNA3 die and clocks as MI300X; more and faster HBM3E.
        peak_tflops={"fp32": 163.4, "tf32": 653.7, "fp16": 1307.4, "bf16": 1307.4, "fp8": 2614.9},
        memory_gb=256,
        bandwidth_gbs=6000,
        compute_units=304,
        boost_clock_mhz=2100,
        has_flash_attention=True,
        sources=[
            _MI300_ARCH_DOC,
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html",
        ],
    ),
    DeviceSpec(
        name="mi355x",
        display_name="AMD Instinct MI355X",
        kind="rocm",
        platform="rocm-instinct",
        arch="gfx950",
        # Derived: 256 CU x 4096 bf16 FLOP/clk/CU x 2.4 GHz (AMD markets 2.5 PF);
        # fp8 8192 FLOP/clk/CU. CDNA4 has no TF32 matrix rate.
        peak_tflops={"fp32": 157.3, "fp16": 2516.6, "bf16": 2516.6, "fp8": 5033.2},
        memory_gb=288,
        bandwidth_gbs=8000,
        compute_units=256,
        boost_clock_mhz=2400,
        has_flash_attention=True,
        sources=[
            "https://www.amd.com/en/products/accelerators/instinct/mi350/mi355x.html",
            "https://www.amd.com/content/dam/amd/en/documents/instinct-tech-docs/white-papers/amd-cdna-4-architecture-whitepaper.pdf",
        ],
    ),
    DeviceSpec(
        name="rx7900xtx",
        display_name="AMD Radeon RX 7900 XTX",
        kind="rocm",
        platform="rocm-radeon",
        arch="gfx1100",
        # fp32 is the dual-issue vector peak; fp16/bf16 run on WMMA at 122.8 TF.
        peak_tflops={"fp32": 61.4, "fp16": 122.8, "bf16": 122.8},
        memory_gb=24,
        bandwidth_gbs=960,
        # 96 CUs; 2500 MHz boost clock.
        compute_units=96,
        boost_clock_mhz=2500,
        has_flash_attention=False,
        sources=[
            "https://www.amd.com/en/products/graphics/desktops/radeon/7000-series/amd-radeon-rx-7900xtx.html",
        ],
    ),
    DeviceSpec(
        name="a100",
        display_name="NVIDIA A100 SXM 80GB",
        kind="cuda",
        platform="cuda",
        arch="sm_80",
        peak_tflops={"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312},
        memory_gb=80,
        bandwidth_gbs=2039,
        # 108 SMs at 1410 MHz boost.
        compute_units=108,
        boost_clock_mhz=1410,
        has_flash_attention=True,
        sources=["https://www.nvidia.com/en-us/data-center/a100/"],
    ),
    DeviceSpec(
        name="h100",
        display_name="NVIDIA H100 SXM",
        kind="cuda",
        platform="cuda",
        arch="sm_90",
        # Dense rates: NVIDIA's headline tensor figures are 2:4-sparse (2x).
        peak_tflops={"fp32": 67, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9},
        memory_gb=80,
        bandwidth_gbs=3350,
        # 132 SMs; 1980 MHz max SM clock (NVML / cudaDeviceProp.clockRate).
        compute_units=132,
        boost_clock_mhz=1980,
        has_flash_attention=True,
        sources=["https://www.nvidia.com/en-us/data-center/h100/"],
    ),
    DeviceSpec(
        name="h200",
        display_name="NVIDIA H200 SXM",
        kind="cuda",
        platform="cuda",
        arch="sm_90",
        # Same GH100 compute as H100 SXM; 141 GB HBM3E at 4.8 TB/s.
        peak_tflops={"fp32": 67, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "fp8": 1978.9},
        memory_gb=141,
        bandwidth_gbs=4800,
        compute_units=132,
        boost_clock_mhz=1980,
        has_flash_attention=True,
        sources=["https://www.nvidia.com/en-us/data-center/h200/"],
    ),
    DeviceSpec(
        name="cpu",
        display_name="Generic x86-64 CPU (placeholder)",
        kind="cpu",
        platform="cpu",
        arch="x86_64",
        # A generic placeholder, not a product: projections on it show directions, not
        # timings. The peak is a placeholder; the bandwidth is calibrated, not a datasheet
        # figure: what sets the ratio of memory-bound to compute-bound work is the balance
        # of the two, and 25 GB/s against 2 TFLOP/s projects eager -> SDPA attention on
        # benchmarks/calibration.py at 1.77x where a 2-core x86_64 VM measured 1.81x
        # (docs/dev/performance.md); with 100 GB/s the model projected 1.27x. The other
        # knobs of that script stay within 20% of their measured ratios.
        peak_tflops={"fp32": 2.0, "bf16": 2.0},
        memory_gb=64,
        bandwidth_gbs=25,
        has_flash_attention=False,
        sources=[],
    ),
)

DEVICES: dict[str, DeviceSpec] = {spec.name: spec for spec in _CATALOGUE}


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " -_")


def get_device(name: str) -> DeviceSpec:
    """The catalogue entry for ``name``, ignoring case, spaces, dashes and underscores.

    So ``MI300X``, ``mi300x`` and ``RX 7900 XTX`` all resolve; anything else is
    a ValueError that lists the valid names, because a typo in a device name
    would otherwise silently project for the wrong hardware.
    """
    spec = DEVICES.get(_normalise(name))
    if spec is None:
        raise ValueError(f"unknown device {name!r}; valid devices: {', '.join(DEVICES)}")
    return spec


MEMORY_TOLERANCE = 0.08
"""How far a device's reported memory may sit below or above its entry's: drivers reserve a
little (an 80 GB H100 reports 79.6 GiB), but another SKU differs by more (H100 NVL 94 GB,
GH200 96 GB)."""


class Identity(BaseModel):
    """What the catalogue says about a live GPU, from its properties rather than its name.

    ``key`` is the entry this device *is* (same arch, the whole device's compute units, its
    memory): per-device budgets apply only then. ``peak_of`` is the entry whose peak rates
    apply once multiplied by ``peak_scale`` (compute units and clock over the entry's): a
    partition, a MIG slice or a cut-down part of a listed chip has a peak but no key.
    """

    model_config = ConfigDict(frozen=True)

    key: str | None
    peak_of: str | None
    peak_scale: float = 1.0
    notes: list[str] = Field(default_factory=list)

    def spec(self) -> DeviceSpec | None:
        """The entry of ``peak_of`` with its peak rates scaled, or None (unknown peak)."""
        if self.peak_of is None:
            return None
        spec = DEVICES[self.peak_of]
        if self.peak_scale == 1.0:
            return spec
        scaled = {p: rate * self.peak_scale for p, rate in spec.peak_tflops.items()}
        return spec.model_copy(update={"peak_tflops": scaled})


def resolve_identity(info: DeviceInfo) -> Identity:
    """Which catalogue entry a live GPU is, from its arch, compute units, memory and clock.

    The marketing name is not used: ROCm reports a generic or empty one where libdrm's
    ``amdgpu.ids`` is missing (``AMD Radeon Graphics``), and the same name covers parts
    with different peaks (MI300X in CPX mode, 38 of its 304 CUs; MIG slices; H100 PCIe
    and NVL beside SXM), while ``GH200`` contains ``h200``. ``info.memory_gb`` is in GiB
    (what ``total_memory`` holds over 2^30), the unit vendors size device memory in.
    """
    label = f"{info.name or 'a device with an empty name'} ({info.arch or 'unknown arch'})"
    same_arch = [s for s in DEVICES.values() if s.kind == info.kind and s.arch == info.arch]
    if not same_arch:
        return Identity(
            key=None,
            peak_of=None,
            notes=[f"{label} is not in the device catalogue: MFU is unknown"],
        )
    units, memory = info.compute_units, info.memory_gb

    def memory_fits(spec: DeviceSpec) -> bool:
        return memory is not None and abs(memory - spec.memory_gb) <= (
            MEMORY_TOLERANCE * spec.memory_gb
        )

    whole = [
        s for s in same_arch if units is not None and s.compute_units == units and memory_fits(s)
    ]
    notes: list[str] = []
    if whole:
        spec = min(whole, key=lambda s: abs(s.memory_gb - (memory or 0.0)))
        key: str | None = spec.name
    else:
        # a part of a listed chip: the entry with the least memory that still holds this
        # device's, else the largest; its rates scaled by the compute units
        holding = [s for s in same_arch if memory is not None and s.memory_gb >= memory * 0.92]
        spec = (
            min(holding, key=lambda s: s.memory_gb)
            if holding
            else max(same_arch, key=lambda s: s.memory_gb)
        )
        key = None
    scale = 1.0
    if units is not None and spec.compute_units is not None and units != spec.compute_units:
        scale *= units / spec.compute_units
        notes.append(
            f"{label} has {units} compute units where {spec.name} has {spec.compute_units} "
            "(a partition, a MIG slice or another part of the chip): peak rates scaled to match"
        )
    elif units is None:
        notes.append(f"{label} reports no compute-unit count: {spec.name}'s peak taken whole")
    if (
        info.clock_mhz is not None
        and spec.boost_clock_mhz is not None
        and info.clock_mhz < spec.boost_clock_mhz * 0.97
    ):
        scale *= info.clock_mhz / spec.boost_clock_mhz
        notes.append(
            f"{label} clocks at most {info.clock_mhz:g} MHz where {spec.name}'s peak assumes "
            f"{spec.boost_clock_mhz:g} MHz: peak rates scaled to match"
        )
    if key is None:
        shown = f"{memory:.1f} GiB" if memory is not None else "unknown memory"
        notes.append(
            f"{label} with {units} compute units and {shown} is not a whole catalogue "
            f"device: its peak is {spec.name}'s x{scale:.3f}, and budgets given per device "
            "do not apply to it"
        )
    return Identity(key=key, peak_of=spec.name, peak_scale=scale, notes=notes)
