"""Attention "flash" in the native engine: the flash-attn package when it is installed
(here a fake module in ``sys.modules`` that records its calls and computes what
flash_attn_func computes), else SDPA's flash backend, labelled and warned as such (CPU)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from pytest_goblin.runner import training  # noqa: E402
from pytest_goblin.runner.model import ModelOptions, build  # noqa: E402
from pytest_goblin.runner.training import RunRequest, measure  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
DIMS = {"layers": 1, "hidden": 32, "intermediate": 64, "heads": 4, "kv_heads": 2, "vocab": 128}


def tiny(**fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": DIMS, "batch_size": 2, "seq_len": 16, "lr": 1e-3, "attention_impl": "flash",
    }  # fmt: skip
    return WorkloadConfig(**(values | fields))


class FakeFlashAttn:
    """flash_attn_func's contract (flash-attention v2.7.4): (B, T, heads, hd) in and out,
    fewer k/v heads taken as grouped-query heads, fp16/bf16 only."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, q: Any, k: Any, v: Any, causal: bool = False) -> Any:
        self.calls.append({"q": tuple(q.shape), "k": tuple(k.shape), "dtype": q.dtype,
                           "causal": causal})  # fmt: skip
        if self.fail:
            raise RuntimeError(self.fail)
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise RuntimeError("FlashAttention only support fp16 and bf16 data type")
        groups = q.shape[2] // k.shape[2]
        k, v = (t.repeat_interleave(groups, dim=2).transpose(1, 2) for t in (k, v))
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, is_causal=causal)
        return y.transpose(1, 2)


def install(monkeypatch: pytest.MonkeyPatch, func: FakeFlashAttn) -> None:
    module = types.ModuleType("flash_attn")
    module.flash_attn_func = func  # type: ignore[attr-defined]
    module.__version__ = "2.7.4"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flash_attn", module)


def uninstall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError


def test_flash_runs_the_flash_attn_package_in_its_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeFlashAttn()
    install(monkeypatch, fake)
    run = measure(RunRequest(tiny(precision="bf16"), 2, 1, 0.0), CPU)
    assert run.attention_backend == "flash_attn 2.7.4 (flash_attn_func)"
    assert not any("flash-attn package" in w for w in run.warnings)
    # (batch, seq, heads, head_dim), the 2 k/v heads unrepeated, causal, in bf16
    assert fake.calls and all(call["causal"] for call in fake.calls)
    assert fake.calls[0]["q"] == (1, 16, 4, 8)  # the unsupported_reason probe
    assert fake.calls[-1]["q"] == (2, 16, 4, 8) and fake.calls[-1]["k"] == (2, 16, 2, 8)
    assert {call["dtype"] for call in fake.calls} == {torch.bfloat16}


def test_the_flash_attn_path_computes_what_sdpa_does(monkeypatch: pytest.MonkeyPatch) -> None:
    arch = tiny().arch
    tokens = torch.randint(arch.vocab, (2, 17), generator=torch.Generator().manual_seed(0))
    sdpa, _ = build(arch, 16, ModelOptions(attention="sdpa"), CPU, seed=0)
    install(monkeypatch, FakeFlashAttn())
    flash, _ = build(arch, 16, ModelOptions(attention="flash"), CPU, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = sdpa(tokens[:, :-1], tokens[:, 1:]), flash(tokens[:, :-1], tokens[:, 1:])
    assert got.item() == pytest.approx(expected.item(), rel=1e-2)


def test_without_flash_attn_the_label_and_a_warning_say_sdpa_flash_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uninstall(monkeypatch)
    trainer = training._Trainer(RunRequest(tiny(precision="bf16"), 2, 1, 0.0), CPU)
    assert trainer.attention_backend == "sdpa:flash_attention (forced; flash-attn not installed)"
    assert training.NO_FLASH_ATTN in trainer.warnings
    assert "CPU has no flash-attention kernels" in str(training.unsupported_reason(tiny(), CPU))


def test_flash_attn_refusals_are_the_reason_the_item_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeFlashAttn(fail="FlashAttention only supports Ampere GPUs or newer.")
    package = (fake, "2.7.4")
    reason = training._flash_attn_reason(tiny(precision="fp16"), CPU, torch.float16, package)
    assert reason is not None and "Ampere GPUs or newer" in reason and "head_dim 8" in reason
    fp32 = training._flash_attn_reason(tiny(precision="fp32"), CPU, torch.float32, package)
    assert fp32 == "flash-attn 2.7.4 runs fp16 and bf16 only, not fp32"
    assert training._flash_attn_reason(tiny(precision="bf16"), CPU, torch.bfloat16,
                                       (FakeFlashAttn(), "2.7.4")) is None  # fmt: skip


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a ROCm or CUDA device")
def test_on_a_gpu_flash_is_labelled_with_the_kernel_that_ran() -> None:
    from pytest_goblin.runner.model import flash_attn

    gpu = torch.device("cuda")
    dims = {"layers": 2, "hidden": 256, "intermediate": 688, "heads": 4, "kv_heads": 2,
            "vocab": 1024}  # fmt: skip
    config = tiny(model=dims, seq_len=256, precision="bf16")
    reason = training.unsupported_reason(config, gpu)
    if reason:
        pytest.skip(reason)
    run = measure(RunRequest(config, 2, 1, 0.0), gpu)
    package = flash_attn()
    if package:
        assert run.attention_backend == f"flash_attn {package[1]} (flash_attn_func)"
    else:
        assert run.attention_backend == "sdpa:flash_attention (forced; flash-attn not installed)"
        assert training.NO_FLASH_ATTN in run.warnings
