"""How the worker classifies a failed run: OOM by type or message, sticky device errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pytest_goblin.runner.worker import failure_kind  # noqa: E402


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "HIPBLAS_STATUS_ALLOC_FAILED when calling `hipblasLtMatmul(...)`",
        "HIP error: hipErrorOutOfMemory",
        "MIOPEN_STATUS_ALLOC_FAILED",
    ],
)
def test_a_library_allocation_failure_is_an_oom(message: str) -> None:
    assert failure_kind(RuntimeError(message)) == ("oom", False)


def test_the_torch_oom_type_is_an_oom() -> None:
    assert failure_kind(torch.OutOfMemoryError("Tried to allocate 2.00 GiB")) == ("oom", False)


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: an illegal memory access was encountered",
        "HIP error: an illegal memory access was encountered",
        "CUDA error: device-side assert triggered",
        "CUDA error: unspecified launch failure",
        "CUDA error: misaligned address",
        "Memory access fault by GPU node-2 (Agent handle: 0x55) on address 0x7f. Reason: "
        "Page not present or supervisor privilege.",
    ],
)
def test_a_sticky_device_error_is_fatal(message: str) -> None:
    assert failure_kind(RuntimeError(message)) == ("error", True)


def test_an_ordinary_error_is_neither() -> None:
    assert failure_kind(ValueError("shape mismatch")) == ("error", False)
