"""Which of a workload's ``env_vars`` may reach the measured worker's environment.

A workload file is data, not code: it may tune the run it describes, never make the
worker load code of its choosing. ``PYTHONPATH`` pointing at a ``sitecustomize.py``,
``LD_PRELOAD``, ``HSA_TOOLS_LIB`` or ``CUDA_INJECTION64_PATH`` would all run that code
inside the worker, with the user's credentials in its environment. So the worker takes
only variables that tune the runtime, by an allow-list of the libraries that read them,
and a variable that names a library, plugin, tool, path or directory is refused even
under an allowed prefix. Everything else is refused naming the variable; nothing is
dropped silently, since a run without a variable the user set would measure another
workload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

TUNING_PREFIXES: Final = (
    # ROCm: HIP runtime, HSA/ROCr, the AMD kernel libraries, RCCL
    "HIP_",
    "HSA_",
    "ROCR_",
    "ROCM_",
    "AMD_",
    "GPU_MAX_",
    "MIOPEN_",
    "ROCBLAS_",
    "HIPBLASLT_",
    "TENSILE_",
    "RCCL_",
    # CUDA: the runtime and its libraries, NCCL
    "CUDA_",
    "CUBLAS_",
    "CUBLASLT_",
    "CUDNN_",
    "NCCL_",
    "NVIDIA_TF32_",
    # PyTorch, its compiler, Triton
    "PYTORCH_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "TRITON_",
    # host threading and math libraries
    "OMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "GOMP_",
)
"""Name prefixes of the runtime knobs a workload may set (ROCm, CUDA, PyTorch, OpenMP …)."""

TUNING_NAMES: Final = frozenset({"TOKENIZERS_PARALLELISM", "MALLOC_ARENA_MAX"})
"""Single variables outside those prefixes that tune a run."""

_LOADS_CODE: Final = re.compile(
    r"(?:^|_)(?:LIB(?:S|RARY|RARIES)?|PLUGINS?|INJECTION\d*|TOOLS?|PRELOAD|PATHS?|DIRS?|"
    r"FILE(?:NAME)?|HOME)(?=_|$)"
)
"""Parts of a name that say its value is something to load or a place to load from
(``HSA_TOOLS_LIB``, ``NCCL_NET_PLUGIN``, ``CUDA_INJECTION64_PATH``,
``TORCHINDUCTOR_CACHE_DIR``, ``OMP_TOOL_LIBRARIES``): refused under any prefix."""

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_SYSTEM_ALLOCATOR: Final = re.compile(
    r"/(?:usr/)?lib(?:64|32)?(?:/[A-Za-z0-9_.+-]+)?/lib(?:jemalloc|tcmalloc(?:_minimal)?)\.so(?:\.\d+)*"
)
"""The one preload a workload may ask for: jemalloc or tcmalloc from the system's own
library directories (the ``cpu-allocator`` advisory tells users to record it), which only
the administrator can write to."""


def refusal(name: str, value: str) -> str | None:
    """Why ``name=value`` may not enter the measured worker's environment, or None."""
    if not _NAME.fullmatch(name):
        return (
            f"{name!r} is not an environment variable name (letters, digits and '_', "
            "not starting with a digit)"
        )
    if "\0" in value:
        return f"the value of {name} holds a NUL character, which no environment can carry"
    upper = name.upper()
    if upper == "LD_PRELOAD" and _SYSTEM_ALLOCATOR.fullmatch(value):
        return None
    allowed = upper in TUNING_NAMES or upper.startswith(TUNING_PREFIXES)
    if allowed and not _LOADS_CODE.search(upper):
        return None
    return (
        f"{name} is not a variable that tunes the run; a workload's env_vars reach the "
        "measured worker only for ROCm/HIP/HSA, CUDA, NCCL/RCCL, PyTorch/Triton, "
        "OpenMP/MKL/OpenBLAS and tokenizers knobs, and never ones that name a library, "
        "plugin, tool, path or directory (a config is data, never code to run; LD_PRELOAD "
        "only of the system's jemalloc or tcmalloc)"
    )


def check(env_vars: Mapping[str, str]) -> tuple[str, str] | None:
    """The first variable refused, with the reason, or None when all may pass."""
    for name, value in env_vars.items():
        reason = refusal(name, value)
        if reason is not None:
            return name, reason
    return None
