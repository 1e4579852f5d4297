"""Specification of the axolotl format: axolotl's keys and defaults, patches in its vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import axolotl
from pytest_goblin.workload.read import plan_patch

SUPPORT = "axolotl/qwen25-7b-support-qlora.yml"
FAQ = "axolotl/llama32-1b-faq-lora.yaml"
BARE = """\
base_model: meta-llama/Meta-Llama-3-8B
datasets:
  - path: ./data.jsonl
    type: alpaca
num_epochs: 1
"""
MINIMAL = BARE + "micro_batch_size: 1\ngradient_accumulation_steps: 1\n"
"""A small file axolotl accepts: it requires two of its three batch keys."""


def test_reads_the_keys_of_an_axolotl_file(tmp_path: Path) -> None:
    config = load(tmp_path, SUPPORT).config
    assert (config.model_name, config.arch.name) == ("Qwen/Qwen2.5-7B", "qwen2.5-7b")
    assert (config.batch_size, config.grad_accum_steps, config.seq_len) == (1, 16, 4096)
    assert (config.precision, config.optimizer, config.gradient_checkpointing) == (
        "fp16",
        "paged_adamw_8bit",
        True,
    )
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("qlora", 64, 32)
    assert config.lr == 1e-4


def test_lora_target_linear_means_every_linear_layer(tmp_path: Path) -> None:
    targets = load(tmp_path, SUPPORT).config.lora_targets
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_records_the_key_each_field_came_from(tmp_path: Path) -> None:
    sources = load(tmp_path, SUPPORT).sources
    assert sources["batch_size"] == "micro_batch_size"
    assert sources["precision"] == "fp16"
    assert sources["lora_targets"] == "lora_target_linear"
    assert "attention_impl" not in sources


def test_unset_keys_take_axolotls_defaults(tmp_path: Path) -> None:
    config = write(tmp_path, "w/minimal.yml", MINIMAL).config
    assert (config.batch_size, config.seq_len, config.grad_accum_steps) == (1, 512, 1)
    assert config.optimizer == "adamw_torch_fused"
    assert config.precision == "bf16"
    assert config.attention_impl == "sdpa"
    assert not config.gradient_checkpointing
    assert (config.dataloader_workers, config.dataloader_pin_memory) == (1, True)
    assert config.dataloader_prefetch_factor == 256
    assert config.finetune == "full"


def test_batch_size_without_accumulation_accumulates_nothing(tmp_path: Path) -> None:
    """The schema's gradient_accumulation_steps default 1 wins over batch_size in
    normalize_config (axolotl v0.18.0 utils/config/__init__.py)."""
    text = BARE + "micro_batch_size: 4\nbatch_size: 32\n"
    config = write(tmp_path, "w/a.yml", text).config
    assert (config.batch_size, config.grad_accum_steps) == (4, 1)


def test_accumulation_beside_batch_size_is_refused_as_axolotl_refuses_it(
    tmp_path: Path,
) -> None:
    """check_gas_bsz (axolotl v0.18.0 schemas/validation.py)."""
    text = BARE + "micro_batch_size: 4\nbatch_size: 32\ngradient_accumulation_steps: 2\n"
    with pytest.raises(WorkloadError, match="together with batch_size") as info:
        write(tmp_path, "w/a.yml", text)
    assert info.value.field == "batch_size"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "micro_batch_size"),
        ("micro_batch_size: 2\n", "gradient_accumulation_steps"),
        ("batch_size: 32\n", "micro_batch_size"),
        ("gradient_accumulation_steps: 4\n", "micro_batch_size"),
        ("micro_batch_size: 2\ngradient_accumulation_steps: 0\n", "gradient_accumulation_steps"),
    ],
)
def test_fewer_than_two_batch_keys_are_refused_as_axolotl_refuses_them(
    tmp_path: Path, text: str, field: str
) -> None:
    """check_batch_size_fields (axolotl v0.18.0 schemas/validation.py): a key counts when it
    is truthy, so an accumulation of 0 is not one."""
    with pytest.raises(WorkloadError, match="'At least two of micro_batch_size") as info:
        write(tmp_path, "w/a.yml", BARE + text)
    assert info.value.field == field
    assert "set micro_batch_size and gradient_accumulation_steps" in str(info.value)


def test_accumulation_and_batch_size_without_a_micro_batch_are_refused(tmp_path: Path) -> None:
    """Two keys pass check_batch_size_fields; check_gas_bsz still refuses this pair."""
    text = BARE + "batch_size: 32\ngradient_accumulation_steps: 2\n"
    with pytest.raises(WorkloadError, match="please set only one of") as info:
        write(tmp_path, "w/a.yml", text)
    assert info.value.field == "batch_size"


def test_micro_batch_and_accumulation_are_read_as_given(tmp_path: Path) -> None:
    text = BARE + "micro_batch_size: 3\ngradient_accumulation_steps: 5\n"
    config = write(tmp_path, "w/a.yml", text).config
    assert (config.batch_size, config.grad_accum_steps) == (3, 5)


def test_legacy_attention_flags_are_read(tmp_path: Path) -> None:
    assert (
        write(tmp_path, "w/a.yml", MINIMAL + "flash_attention: true\n").config.attention_impl
        == "flash"
    )
    assert (
        write(tmp_path, "w/b.yml", MINIMAL + "eager_attention: true\n").config.attention_impl
        == "eager"
    )


def test_flash_attention_goes_into_the_legacy_flag_when_the_file_uses_them(tmp_path: Path) -> None:
    text = MINIMAL + "eager_attention: true   # debugging\nflash_attention:\n"
    workload = write(tmp_path, "w/a.yml", text)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert "-eager_attention: true   # debugging" in planned.diff.splitlines()
    assert "+eager_attention: false   # debugging" in planned.diff.splitlines()
    assert "+flash_attention: true" in planned.diff.splitlines()
    assert "attn_implementation" not in planned.text


def test_flash_attention_goes_into_attn_implementation_in_current_files(tmp_path: Path) -> None:
    workload = load(tmp_path, FAQ)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert yaml.safe_load(planned.text)["attn_implementation"] == "flash_attention_2"
    assert "# debugging a NaN, never switched back" in planned.text


def test_a_file_with_no_attention_key_gets_attn_implementation(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yml", MINIMAL)
    planned = plan_patch(workload, [change(workload, "attention_impl", "eager")])
    assert yaml.safe_load(planned.text)["attn_implementation"] == "eager"


def test_bf16_is_written_as_bf16_true_and_fp16_false(tmp_path: Path) -> None:
    workload = load(tmp_path, SUPPORT)
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    data = yaml.safe_load(planned.text)
    assert (data["bf16"], data["fp16"]) == (True, False)
    assert "+fp16: false   # the old V100 box" in planned.diff.splitlines()


def test_pure_half_precision_files_are_patched_with_the_pure_flags(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yml", MINIMAL + "float16: true\n")
    assert workload.config.precision == "fp16"
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    data = yaml.safe_load(planned.text)
    assert (data["bfloat16"], data["float16"]) == (True, False)


def test_persistent_workers_cannot_be_written_and_say_why(tmp_path: Path) -> None:
    workload = load(tmp_path, FAQ)
    planned = plan_patch(
        workload,
        [
            change(workload, "dataloader_persistent_workers", True),
            change(workload, "optimizer", "adamw_torch_fused"),
        ],
    )
    assert [c.field for c in planned.changes] == ["optimizer"]
    ((dropped, why),) = planned.dropped
    assert dropped.field == "dataloader_persistent_workers"
    assert "no dataloader_persistent_workers key" in why


def test_an_adapter_it_cannot_model_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yml", MINIMAL + "adapter: ia3\n")
    assert info.value.field == "adapter"
    assert "'ia3'" in str(info.value)


def test_an_unknown_attention_implementation_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yml", MINIMAL + "attn_implementation: paged_magic\n")
    assert info.value.field == "attn_implementation"


@pytest.mark.parametrize(
    "data",
    [
        {"base_model": "x"},
        {"micro_batch_size": 2, "sequence_len": 512},
        {"model_name_or_path": "x", "cutoff_len": 1024},
    ],
)
def test_needs_base_model_and_an_axolotl_key_to_be_detected(data: dict) -> None:
    assert not axolotl.detect(data)


def test_a_patch_never_sets_accumulation_beside_batch_size(tmp_path: Path) -> None:
    """axolotl refuses both keys (check_gas_bsz): a new micro-batch leaves accumulation
    alone, and a new accumulation unsets batch_size."""
    workload = write(tmp_path, "w/a.yml", BARE + "micro_batch_size: 4\nbatch_size: 32\n")
    data = yaml.safe_load(plan_patch(workload, [change(workload, "batch_size", 8)]).text)
    assert (data["micro_batch_size"], data["batch_size"]) == (8, 32)
    assert "gradient_accumulation_steps" not in data
    data = yaml.safe_load(plan_patch(workload, [change(workload, "grad_accum_steps", 4)]).text)
    assert (data["gradient_accumulation_steps"], data["batch_size"]) == (4, None)


def test_lora_over_an_8_bit_base_is_read_as_lora8(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yml", MINIMAL + "adapter: lora\nload_in_8bit: true\n")
    assert workload.config.finetune == "lora8"
    assert workload.sources["finetune"] == "load_in_8bit"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("load_in_8bit: true\n", "without a LoRA adapter"),
        ("adapter: qlora\nload_in_8bit: true\nload_in_4bit: true\n", "validate_qlora"),
    ],
)
def test_an_8_bit_base_axolotl_refuses_is_an_error_naming_load_in_8bit(
    tmp_path: Path, extra: str, match: str
) -> None:
    with pytest.raises(WorkloadError, match=match) as info:
        write(tmp_path, "w/a.yml", MINIMAL + extra)
    assert info.value.field == "load_in_8bit"


@pytest.mark.parametrize(
    ("before", "finetune", "after"),
    [
        (
            "adapter: lora\nload_in_8bit: true\n",
            "lora",
            {"adapter": "lora", "load_in_8bit": False},
        ),
        (
            "adapter: lora\nload_in_8bit: true\nload_in_4bit: false\n",
            "qlora",
            {"adapter": "qlora", "load_in_8bit": False, "load_in_4bit": True},
        ),
        (
            "adapter: qlora\nload_in_4bit: true\n",
            "lora",
            {"adapter": "lora", "load_in_4bit": False},
        ),
    ],
)
def test_a_patch_of_the_base_writes_adapter_and_loading_flags(
    tmp_path: Path, before: str, finetune: str, after: dict[str, object]
) -> None:
    workload = write(tmp_path, "w/a.yml", MINIMAL + before)
    planned = plan_patch(workload, [change(workload, "finetune", finetune)])
    assert [c.field for c in planned.changes] == ["finetune"]
    data = yaml.safe_load(planned.text)
    assert {key: data.get(key) for key in after} == after
    assert "load_in_4bit" in data or finetune != "qlora"


def test_full_fine_tuning_is_not_a_patch_of_the_base() -> None:
    with pytest.raises(axolotl.Unpatchable, match="only LoRA's base"):
        axolotl.edits({"adapter": "lora"}, "finetune", "full")


def test_load_in_8bit_false_is_a_16_bit_lora(tmp_path: Path) -> None:
    text = MINIMAL + "adapter: lora\nload_in_8bit: false\n"
    assert write(tmp_path, "w/a.yml", text).config.finetune == "lora"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("attn_implementation: s2\n", "attn_implementation", "one of eager, flash_attention_2"),
        ("attn_implementation: flash\n", "attn_implementation", "its name is flash_attention_2"),
        ("attn_implementation: sdp\n", "attn_implementation", "its name is sdpa"),
        ("s2_attention: true\n", "s2_attention", "no longer supported by axolotl"),
    ],
)
def test_attention_axolotl_refuses_is_an_error_naming_the_key(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(WorkloadError, match=message) as info:
        write(tmp_path, "w/a.yml", MINIMAL + text)
    assert info.value.field == field


def test_a_hub_kernel_path_is_flash_attention(tmp_path: Path) -> None:
    text = MINIMAL + "attn_implementation: kernels-community/flash-attn3\n"
    assert write(tmp_path, "w/a.yml", text).config.attention_impl == "flash"


def test_the_first_legacy_flag_in_axolotls_priority_order_wins(tmp_path: Path) -> None:
    """xformers before flash before sdp (v0.18.0 LEGACY_ATTN_FLAG_TO_IMPL)."""
    text = MINIMAL + "sdp_attention: true\nflash_attention: true\n"
    found = write(tmp_path, "w/a.yml", text)
    assert (found.config.attention_impl, found.sources["attention_impl"]) == (
        "flash",
        "flash_attention",
    )


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("reward_model: true\n", "reward_model", "TRL's RewardTrainer"),
        ("process_reward_model: true\n", "process_reward_model", "TRL's PRMTrainer"),
        ("lisa_n_layers: 4\nlisa_step_interval: 20\n", "lisa_n_layers", "LISA trains 4"),
        ("tensor_parallel_size: 2\n", "tensor_parallel_size", "tensor parallelism"),
        ("context_parallel_size: 8\n", "context_parallel_size", "context parallelism"),
        ("sequence_parallel_degree: 4\n", "sequence_parallel_degree", "sequence parallelism"),
        (
            "plugins:\n  - axolotl.integrations.expert_parallel.ExpertParallelPlugin\n"
            "expert_parallel_size: 2\n",
            "expert_parallel_size",
            "expert_parallel_size: 2 is expert parallelism",
        ),
    ],
)
def test_training_that_is_not_one_devices_causal_lm_step_is_refused_by_name(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(WorkloadError, match=message) as info:
        write(tmp_path, "w/a.yml", MINIMAL + text)
    assert info.value.field == field


def test_parallel_sizes_of_one_are_plain_data_parallel(tmp_path: Path) -> None:
    text = MINIMAL + "tensor_parallel_size: 1\ncontext_parallel_size: 1\nreward_model: false\n"
    assert write(tmp_path, "w/a.yml", text).config.objective == "sft"


def test_expert_parallel_size_without_its_plugin_is_dropped_as_axolotl_drops_it(
    tmp_path: Path,
) -> None:
    """The key belongs to the ExpertParallelPlugin's arguments (v0.18.0
    integrations/expert_parallel/args.py); without the plugin the schema ignores it."""
    text = MINIMAL + "expert_parallel_size: 2\n"
    assert write(tmp_path, "w/a.yml", text).config.finetune == "full"


def test_lisa_without_a_step_interval_is_not_switched_on(tmp_path: Path) -> None:
    """axolotl builds the LISA callback only when both keys are set (v0.18.0 causal.py)."""
    assert write(tmp_path, "w/a.yml", MINIMAL + "lisa_n_layers: 4\n").config.finetune == "full"


def test_a_fractional_warmup_steps_is_refused_as_axolotl_refuses_it(tmp_path: Path) -> None:
    """axolotl's ``warmup_steps: int | None`` (v0.18.0 schemas/config.py) rejects 0.1, as
    four of its own examples (expert_parallel/, llama-3/diffusion/sft-1b.yaml) write it."""
    with pytest.raises(WorkloadError, match=r"warmup_ratio: 0\.1") as info:
        write(tmp_path, "w/a.yml", MINIMAL + "warmup_steps: 0.1\n")
    assert info.value.field == "warmup_steps"


def test_torch_compile_auto_is_on(tmp_path: Path) -> None:
    """check_torch_compile_auto turns it on for torch >= 2.5.1; axolotl v0.18.0 needs 2.11."""
    workload = write(tmp_path, "w/a.yml", MINIMAL + "torch_compile: auto\n")
    assert (workload.config.torch_compile, workload.sources["torch_compile"]) == (
        True,
        "torch_compile",
    )


def test_a_4_bit_base_without_an_adapter_is_refused_as_axolotl_refuses_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkloadError, match="adapter: qlora") as info:
        write(tmp_path, "w/a.yml", MINIMAL + "load_in_4bit: true\n")
    assert info.value.field == "load_in_4bit"


def test_adapter_lora_with_load_in_4bit_is_a_16_bit_lora(tmp_path: Path) -> None:
    """Only adapter: qlora builds the 4-bit BitsAndBytesConfig (v0.18.0 loaders/model.py)."""
    text = MINIMAL + "adapter: lora\nload_in_4bit: true\n"
    assert write(tmp_path, "w/a.yml", text).config.finetune == "lora"
