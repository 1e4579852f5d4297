"""The device catalogue: published peak rates, memory and bandwidth per device.

The analytic runner (``fake.py``) turns FLOPs and bytes into seconds with these
figures, and MFU is computed against the dense BF16 peak listed here. Every
figure is a vendor datasheet number (dense, no sparsity, max boost clock) or is
derived from one in the way the comment next to it says; ``sources`` lists where
they come from (see also ``shared/reference/tuning-rules.md`` §3.3).

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
        has_flash_attention=True,
        sources=["https://www.nvidia.com/en-us/data-center/h200/"],
    ),
    DeviceSpec(
        name="cpu",
        display_name="Generic x86-64 CPU (placeholder)",
        kind="cpu",
        platform="cpu",
        arch="x86_64",
        # A generic placeholder, not a product: a many-core server socket with
        # bf16 dot-product units. Projections on it show directions, not timings.
        peak_tflops={"fp32": 2.0, "bf16": 2.0},
        memory_gb=64,
        bandwidth_gbs=100,
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
