"""A CUDA-only bitsandbytes on a ROCm torch is refused before a run, from the package's
native libraries (recorded file names in a tmp_path package directory, no GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.runner import bitsandbytes_build
from pytest_goblin.runner.bitsandbytes_build import rocm_reason


def package(tmp_path: Path, *libraries: str) -> Path:
    directory = tmp_path / "bitsandbytes"
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    for name in libraries:
        (directory / name).write_bytes(b"\x7fELF")
    return directory


def test_a_cuda_only_build_on_rocm_torch_is_refused_naming_what_it_has(tmp_path: Path) -> None:
    directory = package(tmp_path, "libbitsandbytes_cuda121.so", "libbitsandbytes_cpu.so")
    reason = rocm_reason("6.2.41133", directory)
    assert reason is not None
    assert "no ROCm library" in reason and "HIP 6.2.41133" in reason
    assert "libbitsandbytes_cpu.so, libbitsandbytes_cuda121.so" in reason


def test_a_rocm_build_passes_and_cuda_torch_is_not_asked(tmp_path: Path) -> None:
    rocm = package(tmp_path, "libbitsandbytes_rocm62.so")
    assert rocm_reason("6.2.41133", rocm) is None
    cuda_only = tmp_path / "other"
    cuda_only.mkdir()
    (cuda_only / "libbitsandbytes_cuda121.so").write_bytes(b"")
    assert rocm_reason(None, cuda_only) is None  # a CUDA torch loads the CUDA library
    assert rocm_reason("6.2", None) is None  # not installed: the callers say so


@pytest.fixture
def cuda_only_on_rocm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """bitsandbytes "installed" as a CUDA-only build, torch "a ROCm build"."""
    torch = pytest.importorskip("torch")
    directory = package(tmp_path, "libbitsandbytes_cuda121.so")
    find_spec = importlib.util.find_spec

    def fake_find_spec(name: str, *args: Any) -> Any:
        if name == "bitsandbytes":
            return importlib.util.spec_from_file_location(
                name, directory / "__init__.py", submodule_search_locations=[str(directory)]
            )
        return find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    monkeypatch.setattr(torch.version, "hip", "6.2.41133")
    return directory


def test_the_native_engines_8bit_optimizer_is_refused(cuda_only_on_rocm: Path) -> None:
    from pytest_goblin.runner.optimizers import unsupported_reason

    assert bitsandbytes_build.package_dir() == cuda_only_on_rocm
    reason = unsupported_reason("adamw_bnb_8bit")
    assert reason is not None and "no ROCm library" in reason


def test_the_hf_engines_qlora_and_8bit_optimizer_are_refused(cuda_only_on_rocm: Path) -> None:
    pytest.importorskip("transformers")
    import torch

    from pytest_goblin.runner import hf_engine
    from pytest_goblin.schemas import WorkloadConfig

    dims = {"layers": 1, "hidden": 32, "intermediate": 64, "heads": 2, "kv_heads": 1,
            "vocab": 128}  # fmt: skip
    base: dict[str, Any] = {"model": dims, "batch_size": 1, "seq_len": 16, "lr": 1e-3}
    for fields in ({"finetune": "qlora", "lora_rank": 8}, {"optimizer": "paged_adamw_8bit"}):
        config = WorkloadConfig(**(base | fields))
        reason = hf_engine.unsupported_reason(config, torch.device("cpu"))
        assert reason is not None and "no ROCm library" in reason, fields
