"""The analytic runner: each tuning knob moves the projection the way the hardware would."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from helpers.workloads import LLAMA_LORA
from pytest_goblin.catalogue.devices import DEVICES, get_device
from pytest_goblin.errors import OutOfMemory
from pytest_goblin.runner.analytic import AnalyticModel, MemoryEstimate
from pytest_goblin.schemas import RunMetrics, WorkloadConfig

# A small full fine-tune, where host-side costs are visible.
QWEN_FULL: dict[str, Any] = {
    "model": "qwen2.5-0.5b",
    "precision": "bf16",
    "attention_impl": "sdpa",
    "batch_size": 8,
    "seq_len": 512,
    "dataloader_workers": 0,
}

TINY_ARCH: dict[str, int] = {
    "layers": 2,
    "hidden": 256,
    "intermediate": 512,
    "heads": 4,
    "vocab": 1000,
}


def config(base: dict[str, Any], **changes: Any) -> WorkloadConfig:
    return WorkloadConfig(**{**base, **changes})


def run(base: dict[str, Any], device: str = "mi300x", **changes: Any) -> RunMetrics:
    return AnalyticModel(get_device(device)).run(config(base, **changes), steps=10)


def speedup(slow: RunMetrics, fast: RunMetrics) -> float:
    return fast.tokens_per_sec / slow.tokens_per_sec


def memory(base: dict[str, Any], device: str = "mi300x", **changes: Any) -> MemoryEstimate:
    return AnalyticModel(get_device(device)).memory(config(base, **changes))


VARIED_CONFIGS: list[dict[str, Any]] = [
    LLAMA_LORA,
    {
        **LLAMA_LORA,
        "precision": "fp32",
        "attention_impl": "eager",
        "dataloader_workers": 0,
        "batch_size": 2,
    },
    {**LLAMA_LORA, "gradient_checkpointing": True, "optimizer": "adamw_torch", "batch_size": 1},
    {**LLAMA_LORA, "finetune": "qlora", "grad_accum_steps": 4},
    {**LLAMA_LORA, "world_size": 8, "strategy": "ddp", "precision": "fp8"},
    QWEN_FULL,
    {**QWEN_FULL, "dataloader_pin_memory": False, "torch_compile": True},
]


# --- the metrics record ------------------------------------------------------------------


def test_run_reports_projected_fake_metrics() -> None:
    metrics = run(LLAMA_LORA)
    assert (metrics.projected, metrics.runner_kind, metrics.device) == (True, "fake", "mi300x")
    assert metrics.steps == 10
    assert metrics.tokens_per_step == 4 * 2048


def test_run_is_deterministic() -> None:
    assert run(LLAMA_LORA) == run(LLAMA_LORA)


def test_samples_hold_the_one_projected_throughput() -> None:
    metrics = run(LLAMA_LORA)
    assert metrics.samples == [metrics.tokens_per_sec]


def test_tokens_per_sec_is_tokens_per_step_over_step_time() -> None:
    metrics = run(LLAMA_LORA, grad_accum_steps=2)
    assert metrics.tokens_per_sec == pytest.approx(metrics.tokens_per_step / metrics.step_time_s)


def test_config_hash_is_a_sha256_prefix_of_the_config_json() -> None:
    cfg = config(LLAMA_LORA)
    expected = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
    assert AnalyticModel(get_device("mi300x")).run(cfg, steps=1).config_hash == expected


def test_hbm_peak_is_the_memory_estimate_total() -> None:
    assert run(LLAMA_LORA).hbm_peak_gb == pytest.approx(memory(LLAMA_LORA).total_gb)


def test_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="steps"):
        AnalyticModel(get_device("mi300x")).run(config(LLAMA_LORA), steps=0)


@pytest.mark.parametrize("base", VARIED_CONFIGS)
def test_waste_budget_sums_to_the_step_time(base: dict[str, Any]) -> None:
    metrics = run(base)
    assert metrics.waste_budget.total == pytest.approx(metrics.step_time_s)


@pytest.mark.parametrize("base", VARIED_CONFIGS)
def test_waste_buckets_are_never_negative(base: dict[str, Any]) -> None:
    assert min(run(base).waste_budget.model_dump().values()) >= 0


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_every_catalogued_device_projects_a_small_lora(device: str) -> None:
    metrics = run({**QWEN_FULL, "finetune": "lora"}, device=device)
    assert math.isfinite(metrics.tokens_per_sec) and metrics.tokens_per_sec > 0
    assert 0 < metrics.mfu_pct < 100


# --- sanity against published figures ----------------------------------------------------


def test_llama_lora_on_mi300x_has_a_realistic_mfu() -> None:
    assert 25 <= run(LLAMA_LORA).mfu_pct <= 55


def test_llama_lora_on_mi300x_runs_thousands_of_tokens_per_second() -> None:
    assert 1_000 <= run(LLAMA_LORA).tokens_per_sec <= 100_000


def test_well_tuned_llama_lora_wastes_almost_nothing() -> None:
    budget = run(LLAMA_LORA).waste_budget
    assert budget.useful_gpu / budget.total > 0.95


# --- precision ---------------------------------------------------------------------------


def test_fp32_is_slower_than_bf16_on_matrix_cores() -> None:
    assert speedup(run(LLAMA_LORA, precision="fp32"), run(LLAMA_LORA)) > 1.10


def test_fp32_eager_without_workers_is_at_least_3x_slower() -> None:
    tuned = run(LLAMA_LORA, batch_size=2)
    untuned = run(
        LLAMA_LORA, batch_size=2, precision="fp32", attention_impl="eager", dataloader_workers=0
    )
    assert speedup(untuned, tuned) >= 3


def test_fp32_time_lands_in_the_precision_path_bucket() -> None:
    budget = run(LLAMA_LORA, precision="fp32").waste_budget
    assert budget.precision_path > budget.useful_gpu


def test_mfu_is_quoted_against_the_bf16_peak_whatever_the_precision() -> None:
    fp32, bf16 = run(LLAMA_LORA, precision="fp32"), run(LLAMA_LORA)
    assert fp32.mfu_pct / bf16.mfu_pct == pytest.approx(fp32.tokens_per_sec / bf16.tokens_per_sec)


def test_tf32_on_rocm_is_modelled_as_fp32_with_a_warning() -> None:
    tf32 = run(LLAMA_LORA, precision="tf32")
    assert tf32.tokens_per_sec == pytest.approx(run(LLAMA_LORA, precision="fp32").tokens_per_sec)
    assert any("TF32" in warning for warning in tf32.warnings)


def test_tf32_on_cuda_beats_fp32() -> None:
    small = {**LLAMA_LORA, "batch_size": 1}
    assert speedup(run(small, "h100", precision="fp32"), run(small, "h100", precision="tf32")) > 2


def test_fp8_beats_bf16_where_the_hardware_has_it() -> None:
    gain = speedup(run(LLAMA_LORA), run(LLAMA_LORA, precision="fp8"))
    assert 1.1 < gain < 2


def test_fp8_falls_back_to_bf16_without_fp8_hardware() -> None:
    small = {**LLAMA_LORA, "batch_size": 1}
    fp8 = run(small, "a100", precision="fp8")
    assert fp8.tokens_per_sec == pytest.approx(run(small, "a100").tokens_per_sec)
    assert any("fp8" in warning for warning in fp8.warnings)


def test_fp16_is_slightly_slower_than_bf16_on_instinct() -> None:
    gain = speedup(run(LLAMA_LORA, precision="fp16"), run(LLAMA_LORA))
    assert 1.0 < gain < 1.1


def test_fp16_matches_bf16_on_cuda() -> None:
    small = {**LLAMA_LORA, "batch_size": 1}
    assert run(small, "h100", precision="fp16").tokens_per_sec == pytest.approx(
        run(small, "h100").tokens_per_sec
    )


# --- attention ---------------------------------------------------------------------------


def test_eager_attention_is_slower_than_flash_at_seq_2048() -> None:
    assert speedup(run(LLAMA_LORA, attention_impl="eager"), run(LLAMA_LORA)) > 1.10


def test_eager_penalty_grows_with_sequence_length() -> None:
    def gain(seq_len: int) -> float:
        single = {**LLAMA_LORA, "batch_size": 1, "seq_len": seq_len}
        return speedup(run(single, attention_impl="eager"), run(single))

    assert gain(4096) > gain(2048) > gain(512)


def test_eager_attention_time_lands_in_the_kernel_shape_bucket() -> None:
    eager, flash = run(LLAMA_LORA, attention_impl="eager"), run(LLAMA_LORA)
    assert eager.waste_budget.kernel_shape == pytest.approx(eager.step_time_s - flash.step_time_s)


def test_sdpa_sits_between_eager_and_flash_on_gpus() -> None:
    eager, sdpa, flash = (run(LLAMA_LORA, attention_impl=a) for a in ("eager", "sdpa", "flash"))
    assert eager.tokens_per_sec < sdpa.tokens_per_sec < flash.tokens_per_sec


def test_sdpa_is_the_best_attention_on_cpu() -> None:
    base = {**QWEN_FULL, "model": TINY_ARCH, "batch_size": 4}
    sdpa = run(base, "cpu")
    assert run(base, "cpu", attention_impl="eager").tokens_per_sec < sdpa.tokens_per_sec
    assert run(base, "cpu", attention_impl="flash").tokens_per_sec == pytest.approx(
        sdpa.tokens_per_sec
    )


def test_flash_on_a_device_without_it_warns() -> None:
    metrics = run({**QWEN_FULL, "model": TINY_ARCH}, "cpu", attention_impl="flash")
    assert any("flash-attn is not available" in warning for warning in metrics.warnings)


def test_radeon_sdpa_falls_back_to_math_without_the_aotriton_flag() -> None:
    base = {**QWEN_FULL, "finetune": "lora", "seq_len": 1024, "batch_size": 4}
    fallback = run(base, "rx7900xtx")
    fused = run(base, "rx7900xtx", env_vars={"TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL": "1"})
    assert fused.tokens_per_sec > fallback.tokens_per_sec
    assert any("MATH backend" in warning for warning in fallback.warnings)


# --- optimizer ---------------------------------------------------------------------------


def test_fused_adamw_barely_matters_for_lora() -> None:
    assert speedup(run(LLAMA_LORA, optimizer="adamw_torch"), run(LLAMA_LORA)) < 1.05


def test_fused_adamw_speeds_up_full_finetuning() -> None:
    foreach, fused = run(QWEN_FULL), run(QWEN_FULL, optimizer="adamw_torch_fused")
    assert speedup(foreach, fused) > 1.02


def test_unfused_optimizer_time_lands_in_kernel_shape() -> None:
    foreach, fused = run(QWEN_FULL), run(QWEN_FULL, optimizer="adamw_torch_fused")
    excess = foreach.waste_budget.kernel_shape - fused.waste_budget.kernel_shape
    assert excess == pytest.approx(foreach.step_time_s - fused.step_time_s)


def test_unknown_optimizer_is_priced_as_adamw_with_a_warning() -> None:
    odd = run(QWEN_FULL, optimizer="lion_32bit")
    assert odd.tokens_per_sec == pytest.approx(run(QWEN_FULL).tokens_per_sec)
    assert any("lion_32bit" in warning for warning in odd.warnings)


def test_eight_bit_adamw_keeps_a_quarter_of_the_state() -> None:
    adamw = memory(QWEN_FULL).optimizer_gb
    assert memory(QWEN_FULL, optimizer="adamw_bnb_8bit").optimizer_gb == pytest.approx(adamw / 4)


def test_sgd_keeps_no_optimizer_state() -> None:
    assert memory(QWEN_FULL, optimizer="sgd").optimizer_gb == 0


# --- data loading and host -----------------------------------------------------------------


def test_data_loading_without_workers_costs_a_small_model_over_10_percent() -> None:
    metrics = run(QWEN_FULL)
    assert metrics.waste_budget.data_wait / metrics.step_time_s > 0.10


def test_dataloader_workers_hide_the_data_stall() -> None:
    metrics = run(QWEN_FULL, dataloader_workers=4)
    assert metrics.waste_budget.data_wait / metrics.step_time_s < 0.01


def test_data_stall_is_a_few_percent_at_most_for_an_8b_model() -> None:
    metrics = run(QWEN_FULL, model="llama-3-8b")
    assert metrics.waste_budget.data_wait / metrics.step_time_s < 0.05


def test_unpinned_memory_is_slightly_slower_on_gpus() -> None:
    gain = speedup(run(QWEN_FULL, dataloader_pin_memory=False), run(QWEN_FULL))
    assert 1.0 < gain < 1.05


def test_host_overhead_is_charged_every_step() -> None:
    assert run(LLAMA_LORA).waste_budget.host_gap > 0


def test_torch_compile_gives_about_torchtitans_gain() -> None:
    assert 1.08 < speedup(run(LLAMA_LORA), run(LLAMA_LORA, torch_compile=True)) < 1.20


# --- batch and memory --------------------------------------------------------------------------


def test_bigger_batch_raises_throughput_until_saturation() -> None:
    rates = [run(LLAMA_LORA, batch_size=b).tokens_per_sec for b in (1, 2, 4, 8)]
    assert rates == sorted(rates)
    assert rates[3] / rates[2] < 1.02


def test_small_micro_batches_land_in_memory_headroom() -> None:
    assert run(LLAMA_LORA, batch_size=1).waste_budget.memory_headroom > 0
    assert run(LLAMA_LORA, batch_size=4).waste_budget.memory_headroom == 0


def test_gradient_checkpointing_saves_memory() -> None:
    assert memory(LLAMA_LORA, gradient_checkpointing=True).total_gb < memory(LLAMA_LORA).total_gb


def test_gradient_checkpointing_costs_time_in_memory_headroom() -> None:
    plain, ckpt = run(LLAMA_LORA), run(LLAMA_LORA, gradient_checkpointing=True)
    assert ckpt.step_time_s > plain.step_time_s
    assert ckpt.waste_budget.memory_headroom == pytest.approx(ckpt.step_time_s - plain.step_time_s)


def test_mfu_excludes_recompute() -> None:
    plain, ckpt = run(LLAMA_LORA), run(LLAMA_LORA, gradient_checkpointing=True)
    assert ckpt.mfu_pct / plain.mfu_pct == pytest.approx(ckpt.tokens_per_sec / plain.tokens_per_sec)


def test_llama_70b_full_finetune_on_one_mi300x_is_projected_oom() -> None:
    expected = r"projected OOM on AMD Instinct MI300X: needs .* of 192 GB"
    with pytest.raises(OutOfMemory, match=expected):
        run(
            {
                **LLAMA_LORA,
                "model": "llama-3.1-70b",
                "finetune": "full",
                "lora_rank": None,
                "batch_size": 1,
            }
        )


def test_projected_oom_carries_the_memory_estimate() -> None:
    with pytest.raises(OutOfMemory) as excinfo:
        run(QWEN_FULL, model="llama-3.1-70b")
    assert excinfo.value.memory.total_gb > 192
    assert "weights" in str(excinfo.value)


def test_memory_components_sum_to_the_total() -> None:
    estimate = memory(QWEN_FULL)
    parts = (
        estimate.weights_gb
        + estimate.grads_gb
        + estimate.optimizer_gb
        + estimate.activations_gb
        + estimate.workspace_gb
    )
    assert parts == pytest.approx(estimate.total_gb)


def test_full_finetune_keeps_16_bytes_of_model_state_per_parameter() -> None:
    estimate = memory(QWEN_FULL, model="llama-3-8b")
    state = estimate.weights_gb + estimate.grads_gb + estimate.optimizer_gb
    assert state == pytest.approx(16 * 8.03, rel=0.01)


def test_lora_needs_far_less_memory_than_full_finetuning() -> None:
    full = memory({**LLAMA_LORA, "finetune": "full", "lora_rank": None}, optimizer="adamw_torch")
    assert memory(LLAMA_LORA).total_gb < full.total_gb / 2


def test_qlora_needs_less_memory_than_lora() -> None:
    assert memory(LLAMA_LORA, finetune="qlora").weights_gb < memory(LLAMA_LORA).weights_gb / 2


def test_qlora_dequantisation_costs_time() -> None:
    assert run(LLAMA_LORA, finetune="qlora").step_time_s > run(LLAMA_LORA).step_time_s


def test_eager_attention_keeps_the_score_matrix_in_memory() -> None:
    eager = memory(LLAMA_LORA, attention_impl="eager")
    assert eager.activations_gb > 2 * memory(LLAMA_LORA).activations_gb


def test_fp32_doubles_the_layer_activations() -> None:
    flat = {**LLAMA_LORA, "attention_impl": "sdpa"}
    bf16, fp32 = memory(flat), memory(flat, precision="fp32")
    assert 1.8 < fp32.activations_gb / bf16.activations_gb <= 2


def test_all_linear_lora_trains_more_adapters_than_the_default_targets() -> None:
    all_linear = memory(LLAMA_LORA, lora_targets=["all-linear"])
    assert all_linear.grads_gb > 3 * memory(LLAMA_LORA).grads_gb


def test_lora_targets_that_match_nothing_warn() -> None:
    metrics = run(LLAMA_LORA, lora_targets=["c_attn"])
    assert any("c_attn" in warning for warning in metrics.warnings)


# --- multi-device ------------------------------------------------------------------------------


def test_ddp_all_reduce_lands_in_comm_excess() -> None:
    full = {**QWEN_FULL, "dataloader_workers": 4}
    assert run(full).waste_budget.comm_excess == 0
    assert run(full, world_size=8, strategy="ddp").waste_budget.comm_excess > 0


def test_ddp_counts_every_rank_in_throughput_but_not_in_mfu() -> None:
    full = {**QWEN_FULL, "dataloader_workers": 4}
    one, eight = run(full), run(full, world_size=8, strategy="ddp")
    assert eight.tokens_per_sec > 6 * one.tokens_per_sec
    assert eight.mfu_pct < one.mfu_pct


def test_fsdp_shards_the_model_state() -> None:
    full = {**QWEN_FULL, "model": "llama-3-8b"}
    sharded = memory(full, world_size=8, strategy="fsdp")
    assert sharded.optimizer_gb == pytest.approx(memory(full).optimizer_gb / 8)


# --- refusals ----------------------------------------------------------------------------------


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision is unknown"):
        run(LLAMA_LORA, precision="unknown")


def test_unknown_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="attention_impl is unknown"):
        run(LLAMA_LORA, attention_impl="unknown")


def test_config_without_an_architecture_is_refused() -> None:
    cfg = WorkloadConfig(model_name="someone/mystery-model", precision="bf16")
    with pytest.raises(ValueError, match="no architecture"):
        AnalyticModel(get_device("mi300x")).run(cfg, steps=1)
