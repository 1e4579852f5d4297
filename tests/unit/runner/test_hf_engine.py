"""The hf engine in-process on the CPU: each preset family built from a transformers config,
LoRA through PEFT, the HF Trainer's arguments, timing windows, losses and refusals."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import Trainer  # noqa: E402

from pytest_goblin.errors import UnsupportedConfig  # noqa: E402
from pytest_goblin.runner import hf_engine  # noqa: E402
from pytest_goblin.runner.hf_engine import (  # noqa: E402
    build_model,
    family,
    lora_targets,
    measure,
    model_config,
    training_arguments,
    unsupported_reason,
)
from pytest_goblin.runner.measurement import Measurement  # noqa: E402
from pytest_goblin.runner.training import Diverged, RunRequest  # noqa: E402
from pytest_goblin.schemas import WorkloadConfig  # noqa: E402

CPU = torch.device("cpu")
DIMS = {"layers": 2, "hidden": 64, "intermediate": 172, "heads": 4, "kv_heads": 2, "vocab": 256}
FAMILIES = {
    "llama": "llama-3.2-1b",
    "qwen2": "qwen2.5-0.5b",
    "qwen3": "qwen3-0.6b",
    "mistral": "mistral-7b",
    "gemma": "gemma-2b",
    "gemma2": "gemma-2-2b",
    "phi3": "phi-3-mini",
}
"""Each preset family, named as a tiny architecture whose name is its preset's."""


def tiny(name: str = "custom", **fields: Any) -> WorkloadConfig:
    values: dict[str, Any] = {
        "model": {**DIMS, "name": name},
        "batch_size": 2,
        "seq_len": 32,
        "lr": 3e-3,
        "attention_impl": "eager" if name.startswith("gemma") else "sdpa",
    }
    return WorkloadConfig(**(values | fields))


def lora(name: str = "custom", **fields: Any) -> WorkloadConfig:
    adapters = {
        "finetune": "lora",
        "lora_rank": 4,
        "lora_targets": ["q_proj", "v_proj", "gate_proj"],
    }
    return tiny(name, **(adapters | fields))


def run(config: WorkloadConfig, steps: int = 4, warmup: int = 1, **request: Any) -> Measurement:
    return measure(
        RunRequest(config, steps=steps, warmup=warmup, sample_cost_s=0.0, **request), CPU
    )


@pytest.mark.parametrize(("expected", "preset"), FAMILIES.items())
def test_each_preset_family_is_built_from_its_transformers_config(
    expected: str, preset: str
) -> None:
    config = tiny(preset)
    assert family(config) == expected
    hf_config = model_config(config)
    assert type(hf_config) is hf_engine.FAMILIES[expected]
    assert hf_config.num_hidden_layers == 2 and hf_config.hidden_size == 64
    assert hf_config.num_key_value_heads == 2 and hf_config.vocab_size == 256
    assert hf_config.head_dim == 16  # hidden / heads, even where the family's default is not
    assert model_config(config, layers=1).num_hidden_layers == 1


def test_the_family_comes_from_the_model_id_when_the_dims_are_explicit() -> None:
    assert family(tiny(model_name="Qwen/Qwen2.5-7B-Instruct")) == "qwen2"
    assert family(tiny(model_name="Qwen/Qwen3-8B")) == "qwen3"
    assert family(tiny(model_name="google/gemma-2-9b-it")) == "gemma2"
    assert family(tiny(model_name="google/gemma-7b")) == "gemma"
    assert family(tiny(model_name="microsoft/phi-4")) == "phi3"
    assert family(tiny(model_name="google/gemma-3-1b-it")) == "gemma3"
    assert family(tiny(model_name="mistralai/Ministral-8B-Instruct-2410")) == "mistral"
    assert family(tiny(model_name="stabilityai/stablelm-2-1_6b")) == "stablelm"
    assert family(tiny()) == "llama"
    assert family(tiny(model={**DIMS, "qkv_bias": True})) == "qwen2"


@pytest.mark.parametrize(
    ("preset", "expected", "model_class"),
    [
        ("gemma-3-1b", "gemma3", "Gemma3ForCausalLM"),
        ("stablelm-2-1.6b", "stablelm", "StableLmForCausalLM"),
        ("ministral-8b", "mistral", "MistralForCausalLM"),
        ("mistral-nemo-12b", "mistral", "MistralForCausalLM"),
        ("phi-3-medium", "phi3", "Phi3ForCausalLM"),
    ],
)
def test_a_full_size_preset_builds_the_checkpoints_class_with_its_parameter_count(
    preset: str, expected: str, model_class: str
) -> None:
    # on the meta device: shapes without memory, so a 12B model costs nothing to build
    from transformers import AutoModelForCausalLM

    config = WorkloadConfig(model=preset, seq_len=512)
    assert family(config) == expected
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(config))
    assert type(model).__name__ == model_class
    built = sum(p.numel() for p in model.parameters())
    # exact but for norms the preset does not count (Gemma 3's q/k and pre/post-MLP norms,
    # StableLM's LayerNorm biases): under 0.01%
    assert built == pytest.approx(config.arch.total_params, rel=1e-4)
    if expected == "stablelm":
        assert model_config(config).use_qkv_bias is True


@pytest.mark.parametrize("preset", FAMILIES.values())
@pytest.mark.parametrize("make", [tiny, lora], ids=["full", "lora"])
def test_every_family_trains_full_and_lora_with_checkpointing_and_fused_adamw(
    preset: str, make: Any
) -> None:
    config = make(preset, gradient_checkpointing=True, optimizer="adamw_torch_fused")
    measurement = run(config, steps=4)
    assert measurement.layers == 2
    # every step's loss: warmup, the untimed step before window 0, the timed steps
    assert sum(measurement.window_steps) == 4 and len(measurement.losses) == 1 + 1 + 4
    assert all(math.isfinite(loss) for loss in measurement.losses)
    if config.finetune == "full":  # LoRA's zero-initialised B needs more steps to show
        assert measurement.losses[-1] < measurement.losses[0]
    assert all(seconds > 0 for seconds in measurement.window_seconds)
    assert measurement.peak_memory_gb > 0


def test_lora_trains_only_peft_adapters_and_phi3_targets_its_fused_linears() -> None:
    model = build_model(lora("llama-3.2-1b"), CPU)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert any("q_proj" in name for name in trainable)
    assert lora_targets(lora("phi-3-mini")) == ["gate_up_proj", "qkv_proj"]
    phi = build_model(lora("phi-3-mini"), CPU)
    assert any("qkv_proj.lora_A" in name for name, _ in phi.named_parameters())


def test_lora_freezes_a_16_bit_base_and_full_fine_tuning_keeps_fp32_master_weights() -> None:
    model = build_model(lora(precision="bf16"), CPU)
    dtypes = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert dtypes == {torch.bfloat16}
    full = build_model(tiny(precision="bf16"), CPU)
    assert {p.dtype for p in full.parameters()} == {torch.float32}


def test_same_seed_same_data_so_checkpointing_does_not_change_the_losses() -> None:
    plain = run(tiny(gradient_checkpointing=False)).losses
    checkpointed = run(tiny(gradient_checkpointing=True)).losses
    assert checkpointed == pytest.approx(plain, rel=1e-4)


def test_the_trainer_arguments_follow_the_workload(tmp_path: Any) -> None:
    config = tiny(
        batch_size=3,
        grad_accum_steps=2,
        precision="bf16",
        optimizer="adamw_torch_fused",
        gradient_checkpointing=True,
        dataloader_workers=2,
        dataloader_prefetch_factor=4,
        dataloader_persistent_workers=True,
        warmup_steps=2,
    )
    args = training_arguments(config, RunRequest(config, 5, 2, 0.0), CPU, str(tmp_path))
    assert args.per_device_train_batch_size == 3 and args.gradient_accumulation_steps == 2
    # warmup, the drain of 2 workers x 4 prefetched batches (2 per step), timed steps
    assert args.max_steps == 2 + 4 + 5 and args.warmup_steps == 2 and args.learning_rate == 3e-3
    assert args.bf16 and not args.fp16 and args.optim == "adamw_torch_fused"
    assert args.dataloader_num_workers == 2 and args.dataloader_prefetch_factor == 4
    assert args.dataloader_persistent_workers
    assert args.save_strategy == "no" and args.report_to == []
    given = config.model_copy(update={"extras": {"gradient_checkpointing_kwargs": {"a": 1}}})
    args = training_arguments(given, RunRequest(given, 5, 2, 0.0), CPU, str(tmp_path))
    assert {"a": 1} in (
        getattr(args, "activation_checkpointing_kwargs", None),
        args.gradient_checkpointing_kwargs,
    )


@pytest.mark.parametrize(("optim", "fused"), [("adamw_torch", None), ("adamw_torch_fused", True)])
def test_the_optimizer_is_the_one_the_trainer_builds_for_the_name(
    optim: str, fused: bool | None, tmp_path: Any
) -> None:
    config = tiny(optimizer=optim)
    model = build_model(config, CPU)
    args = training_arguments(config, RunRequest(config, 2, 0, 0.0), CPU, str(tmp_path))
    optimizer = Trainer(model=model, args=args).create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["fused"] is fused


def test_tokens_and_windows_count_optimizer_steps_with_accumulation() -> None:
    measurement = run(tiny(grad_accum_steps=3), steps=7, warmup=2)
    assert measurement.warmup_steps == 2 and len(measurement.losses) == 2 + 1 + 7
    assert measurement.window_steps == [2, 2, 1, 1, 1]
    assert measurement.tokens_per_step == 3 * 2 * 32


@pytest.mark.parametrize("packing", [False, True])
def test_samples_fill_the_sequence_so_sdpa_runs_causal_without_a_mask(
    packing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = hf_engine._Tokens(tiny(packing=packing), 8, 0.0, seed=0)
    sample = tokens[3]
    assert sample["input_ids"].shape == (32,)
    assert bool(sample["attention_mask"].all()) and torch.equal(
        sample["labels"], sample["input_ids"]
    )
    assert torch.equal(sample["input_ids"], hf_engine._Tokens(tiny(), 8, 0.0, 0)[3]["input_ids"])
    calls: list[tuple[bool, bool]] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args: Any, attn_mask: Any = None, is_causal: bool = False, **kwargs: Any) -> Any:
        calls.append((attn_mask is None, is_causal))
        return sdpa(*args, attn_mask=attn_mask, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    run(tiny(packing=packing), steps=1, warmup=0)
    # an all-ones mask is dropped for is_causal, as the native engine calls SDPA
    assert calls and set(calls) == {(True, True)}


def test_the_step_hook_sees_every_step_and_the_model() -> None:
    seen: list[int] = []
    measure(
        RunRequest(tiny(), steps=3, warmup=1, sample_cost_s=0.0),
        CPU,
        lambda step, model: seen.append(step) or model.get_input_embeddings(),
    )
    assert seen == [0, 1, 2, 3, 4]  # warmup, drain, timed


def test_a_diverging_loss_fails_the_run() -> None:
    def poison(step: int, model: Any) -> None:
        if step == 1:
            with torch.no_grad():
                model.get_input_embeddings().weight.fill_(float("nan"))

    with pytest.raises(Diverged, match="at step 2"):
        measure(RunRequest(tiny(), steps=3, warmup=0, sample_cost_s=0.0), CPU, poison)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (tiny("gemma-2-2b", attention_impl="sdpa"), "Gemma2ForCausalLM .* no sdpa attention"),
        (tiny(attention_impl="flash"), "CPU has no flash-attention kernels"),
        (tiny(optimizer="adamw_hf"), "not an optim the installed transformers accepts"),
        (lora(finetune="lora8"), "bitsandbytes' Linear8bitLt"),
        (tiny(world_size=2, strategy="fsdp"), "Trainer's FSDP runs on GPUs only"),
        (tiny(precision="fp8"), "fp8"),
        (tiny(precision="fp16"), "fp16 on the CPU in fp32"),
    ],
    ids=["gemma2-sdpa", "flash-cpu", "adamw_hf", "lora8", "fsdp-cpu", "fp8", "fp16-cpu"],
)
def test_what_the_engine_cannot_run_is_refused_with_the_reason(
    config: WorkloadConfig, reason: str
) -> None:
    found = unsupported_reason(config, CPU)
    assert found is not None
    assert re.search(reason, found)
    with pytest.raises(UnsupportedConfig):
        run(config)


@pytest.mark.parametrize(
    ("installed", "version", "reason"),
    [
        (False, None, "needs bitsandbytes .* not installed"),
        (True, "0.49.2", "CPU needs bitsandbytes 0.50.2 or later.* 0.49.2 is measured on a ROCm"),
        (True, "0.50.2", None),
    ],
    ids=["no-bitsandbytes", "before-cpu-4bit", "cpu-4bit"],
)
def test_a_4bit_base_on_the_cpu_is_skipped_with_a_reason_naming_bitsandbytes(
    installed: bool, version: str | None, reason: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec

    def fake_find_spec(name: str, *args: Any) -> Any:
        if name == "bitsandbytes":  # a spec is all the check asks for: it never imports it
            return importlib.util.spec_from_loader(name, loader=None) if installed else None
        return find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    monkeypatch.setattr(hf_engine, "_installed_version", lambda package: version)
    monkeypatch.setattr(torch.version, "hip", None)  # not the ROCm-build check
    config = lora(finetune="qlora", precision="bf16")
    found = unsupported_reason(config, CPU)
    if reason is None:
        assert found is None
        return
    assert found is not None and re.search(reason, found)
    with pytest.raises(UnsupportedConfig, match="bitsandbytes"):
        run(config)


def test_qlora_trains_lora_adapters_over_a_4bit_base_on_the_cpu() -> None:
    bnb = pytest.importorskip("bitsandbytes")
    if reason := unsupported_reason(lora(finetune="qlora", precision="bf16"), CPU):
        pytest.skip(reason)  # a bitsandbytes before CPU_4BIT_SINCE
    config = lora(
        finetune="qlora",
        precision="bf16",
        model={**DIMS, "layers": 1, "name": "custom"},
        gradient_checkpointing=True,
    )
    model = build_model(config, CPU)
    linears = {
        name: type(module)
        for name, module in model.named_modules()
        if name.endswith(("q_proj.base_layer", "o_proj", "down_proj"))
    }
    assert len(linears) == 3 and set(linears.values()) == {bnb.nn.Linear4bit}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    measurement = run(config, steps=2)
    assert measurement.layers == 1
    assert len(measurement.losses) >= 3 and all(map(math.isfinite, measurement.losses))


def test_a_config_the_cpu_can_run_has_no_refusal() -> None:
    assert unsupported_reason(tiny(), CPU) is None
    assert unsupported_reason(tiny("gemma-2-2b"), CPU) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a ROCm or CUDA device")
@pytest.mark.parametrize("make", [tiny, lora], ids=["full", "lora"])
@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_torch_fused"])
def test_a_bf16_gpu_run_is_timed_by_events_and_reports_device_memory(
    make: Any, optimizer: str
) -> None:
    gpu = torch.device("cuda")
    config = make(precision="bf16", optimizer=optimizer, gradient_checkpointing=True)
    measurement = measure(RunRequest(config, steps=5, warmup=1, sample_cost_s=0.0), gpu)
    assert all(math.isfinite(loss) for loss in measurement.losses)
    assert all(seconds > 0 for seconds in measurement.window_seconds)
    assert 0 < measurement.peak_memory_gb < torch.cuda.get_device_properties(gpu).total_memory / 1e9


def test_compile_runs_in_the_untimed_warmup_and_is_reported_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hf_engine.training, "COMPILE_BACKEND", "eager")
    measurement = run(tiny(torch_compile=True), steps=2, warmup=0)
    assert measurement.warmup_steps == 1  # at least one step holds the compilation
    assert measurement.compile_time_s is not None and measurement.compile_time_s >= 0
    assert any(w.startswith("compile_time_s is the warmup's time") for w in measurement.warnings)


def test_the_workloads_compile_mode_and_backend_reach_the_trainer(tmp_path: Any) -> None:
    extras = {"torch_compile_mode": "max-autotune", "torch_compile_backend": "eager"}
    config = tiny(torch_compile=True, extras=extras)
    args = training_arguments(config, RunRequest(config, 2, 1, 0.0), CPU, str(tmp_path))
    assert args.torch_compile_mode == "max-autotune" and args.torch_compile_backend == "eager"
    wrong = tiny(torch_compile=True, extras={"torch_compile_mode": "fastest"})
    with pytest.raises(ValueError, match=r"extras.torch_compile_mode 'fastest'"):
        training_arguments(wrong, RunRequest(wrong, 2, 1, 0.0), CPU, str(tmp_path))


def test_tunableop_makes_warmup_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTORCH_TUNABLEOP_ENABLED", "1")
    measurement = run(tiny(), steps=1, warmup=0)
    assert measurement.warmup_steps == 1
    assert any("TunableOp" in w for w in measurement.warnings)


def test_a_run_of_fewer_layers_builds_and_reports_that_many() -> None:
    assert run(tiny("gemma-2-2b"), steps=1, warmup=0, layers=1).layers == 1
