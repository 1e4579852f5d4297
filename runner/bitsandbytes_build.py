"""Whether the installed bitsandbytes has the native library this torch build loads.

bitsandbytes picks its library by torch's platform: ``libbitsandbytes_rocm<ver>.so`` on a
ROCm build of torch (``torch.version.hip`` set), ``libbitsandbytes_cuda<ver>.so`` on a CUDA
one, from its package directory (bitsandbytes 0.49.2 bitsandbytes/cextension.py,
``get_cuda_bnb_library_path``: ``prefix = "rocm" if torch.version.hip else "cuda"``). A
CUDA-only wheel on a ROCm machine imports, so "is it installed" passes, and then has no GPU
kernels: 4-bit quantisation or the 8-bit optimizer fails at the first step. Read from the
package's files, without importing it (bitsandbytes prints its setup and loads a library
on import).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROCM_LIBRARY = "libbitsandbytes_rocm*"
NATIVE_LIBRARIES = "libbitsandbytes_*"


def package_dir() -> Path | None:
    """Where the installed bitsandbytes package lives, or None when it is not installed."""
    spec = importlib.util.find_spec("bitsandbytes")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def rocm_reason(hip_version: str | None, directory: Path | None) -> str | None:
    """Why the bitsandbytes in ``directory`` cannot run on a ROCm torch (``hip_version``),
    or None: it can, torch is not a ROCm build, or bitsandbytes is not installed (which
    the callers say themselves)."""
    if not hip_version or directory is None:
        return None
    if any(directory.glob(ROCM_LIBRARY)):
        return None
    found = sorted(path.name for path in directory.glob(NATIVE_LIBRARIES))
    return (
        f"bitsandbytes in {directory} has no ROCm library ({ROCM_LIBRARY}; it has "
        f"{', '.join(found) or 'none'}): this torch is a ROCm build (HIP {hip_version}), on "
        "which a CUDA-only bitsandbytes has no GPU kernels and fails at the first step; "
        "install bitsandbytes' ROCm build"
    )


def installed_reason() -> str | None:
    """``rocm_reason`` for this process's torch and installed bitsandbytes."""
    import torch

    return rocm_reason(torch.version.hip, package_dir())
