"""Both engines apply a patch's knobs alike, so their verdicts move in the same direction.

A verdict compares a baseline with a patched config; the engines agree on its direction
when flipping a knob changes the same work in both. This records what each engine did in
one optimizer step, deterministically (no timings): how often each decoder layer's
``q_proj`` ran (activation checkpointing runs the forward again in the backward), how
often ``F.scaled_dot_product_attention`` ran (eager attention never calls it), which of
torch's AdamW kernels stepped (``torch/optim/adam.py``: ``_single_tensor_adam``,
``_multi_tensor_adam`` or ``_fused_adam``), the dtype the projections computed in, and
how many parameters trained. It runs for each preset family the hf engine builds, LoRA
and full fine-tuning, with the tutorial's knobs (checkpointing on, non-fused AdamW, eager)
and the patched ones (checkpointing off, fused AdamW, SDPA), beside the native engine. ``packing`` is left at
its default (false), as in the tutorial.
The timings of the same contrast are printed by ``benchmarks/engine_direction.py``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from torch.optim import adam  # noqa: E402

from pytest_goblin.runner import hf_engine, training  # noqa: E402
from pytest_goblin.runner.training import RunRequest  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}
FAMILIES = ("llama-3.2-1b", "qwen2.5-0.5b", "mistral-7b", "gemma-2-2b", "phi-3-mini")
ADAM_KERNELS = ("_single_tensor_adam", "_multi_tensor_adam", "_fused_adam")


@dataclass
class Seen:
    """What one engine did in its optimizer step."""

    projections: int = 0  # calls of the first layer's query projection in the last step
    sdpa: int = 0  # calls of F.scaled_dot_product_attention
    sdpa_calls: set[tuple[bool, bool]] = field(default_factory=set)  # (no mask, is_causal)
    kernels: Counter[str] = field(default_factory=Counter)  # in the last step
    dtypes: set[torch.dtype] = field(default_factory=set)
    trainable: int = 0


def workload(preset: str, finetune: str, patched: bool) -> WorkloadConfig:
    """The tutorial's knobs, or the patch's; LoRA at bf16 (16-bit frozen base), full at fp32."""
    lora = finetune == "lora"
    adapters: dict[str, Any] = (
        {"lora_rank": 4, "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"]} if lora else {}
    )
    return WorkloadConfig(
        **adapters,
        model={**DIMS, "name": preset},
        batch_size=2,
        seq_len=32,
        lr=1e-3,
        precision="bf16" if lora else "fp32",
        finetune=finetune,
        gradient_checkpointing=not patched,
        optimizer="adamw_torch_fused" if patched else "adamw_torch",
        # transformers 5.25 has no SDPA for Gemma 2 (the hf engine refuses it): eager both ways
        attention_impl="sdpa" if patched and not preset.startswith("gemma") else "eager",
    )


def _query_projection(model: torch.nn.Module) -> torch.nn.Module:
    """Layer 0's query projection (Phi-3's fused qkv_proj) in either engine's model."""
    for name, module in model.named_modules():
        parts = name.split(".")
        if parts[-1] in ("q_proj", "qkv_proj") and "0" in parts:
            return module  # PEFT's LoRA layer where there is one: it wraps the base linear
    raise AssertionError("no query projection in layer 0")


def observe(engine: Any, config: WorkloadConfig, monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Run one optimizer step of ``config`` with ``engine`` and record what ran."""
    seen = Seen()
    for name in ADAM_KERNELS:
        kernel = getattr(adam, name)

        def counting(*args: Any, _name: str = name, _kernel: Any = kernel, **kwargs: Any) -> Any:
            if args[0]:  # a parameter group with parameters (the Trainer's no-decay one is empty)
                seen.kernels[_name] += 1
            return _kernel(*args, **kwargs)

        monkeypatch.setattr(adam, name, counting)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting_sdpa(*args: Any, attn_mask: Any = None, is_causal: bool = False, **kw: Any) -> Any:
        seen.sdpa += 1
        seen.sdpa_calls.add((attn_mask is None, is_causal))
        return sdpa(*args, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)

    def projected(module: Any, inputs: Any, output: torch.Tensor) -> None:
        seen.projections += 1
        seen.dtypes.add(output.dtype)

    def hook(step: int, model: torch.nn.Module) -> None:
        # every step starts a count: the last step's is the one compared
        seen.projections = 0
        seen.kernels.clear()
        if not seen.trainable:
            seen.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            _query_projection(model).register_forward_hook(projected)

    engine.measure(RunRequest(config, steps=1, warmup=0, sample_cost_s=0.0), CPU, hook)
    return seen


@pytest.fixture(scope="module")
def native_runs() -> dict[tuple[str, bool], Seen]:
    """The native engine's baseline and patched step, LoRA and full (it builds one
    Llama-style decoder for every family, so one set serves them all)."""
    found: dict[tuple[str, bool], Seen] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for finetune in ("full", "lora"):
            for patched in (False, True):
                with monkeypatch.context() as inner:
                    config = workload("llama-3.2-1b", finetune, patched)
                    found[finetune, patched] = observe(training, config, inner)
    return found


@pytest.mark.parametrize("finetune", ["full", "lora"])
@pytest.mark.parametrize("preset", FAMILIES)
def test_the_patch_changes_the_same_work_in_both_engines(
    preset: str,
    finetune: str,
    native_runs: dict[tuple[str, bool], Seen],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hf: dict[bool, Seen] = {}
    for patched in (False, True):
        with monkeypatch.context() as inner:
            hf[patched] = observe(hf_engine, workload(preset, finetune, patched), inner)
    native = {patched: native_runs[finetune, patched] for patched in (False, True)}
    for engine, arms in (("hf", hf), ("native", native)):
        baseline, patched_arm = arms[False], arms[True]
        # checkpointing on runs every layer's forward twice per micro-batch; off, once
        assert (baseline.projections, patched_arm.projections) == (2, 1), engine
        # AdamW: the patch moves the step from a non-fused kernel to the fused one
        assert len(baseline.kernels) == 1, engine
        assert set(baseline.kernels) < {"_single_tensor_adam", "_multi_tensor_adam"}, engine
        assert set(patched_arm.kernels) == {"_fused_adam"}, engine
        # eager attention never calls SDPA; the patch's SDPA runs in every layer
        assert baseline.sdpa == 0, engine
        if not preset.startswith("gemma"):
            assert patched_arm.sdpa >= DIMS["layers"], engine
            # causal SDPA without a mask (a padding mask would make it compute all T x T)
            assert patched_arm.sdpa_calls == {(True, True)}, engine
    # the same precision: LoRA's bf16 autocast over a bf16 base, full fine-tuning in fp32
    expected = {torch.bfloat16} if finetune == "lora" else {torch.float32}
    for arms in (hf, native):
        assert arms[False].dtypes == arms[True].dtypes == expected
    if finetune == "lora" and not preset.startswith("phi"):
        # PEFT's adapters and the native engine's are the same size (Phi-3 fuses q/k/v)
        assert hf[False].trainable == native[False].trainable
    if finetune == "full":
        assert hf[False].trainable > 0 and native[False].trainable > 0
