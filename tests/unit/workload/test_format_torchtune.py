"""Specification of the torchtune format: builders, nested blocks, and what a recipe cannot say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import torchtune
from pytest_goblin.workload.read import plan_patch

FULL = "torchtune/llama32_1b_full_single_device.yaml"
LORA = "torchtune/qwen25_7b_lora_distributed.yaml"


def small(**overrides: str) -> str:
    lines = {
        "model": "model:\n  _component_: torchtune.models.llama3_2.llama3_2_1b\n",
        "tokenizer": "tokenizer:\n  _component_: torchtune.models.llama3.llama3_tokenizer\n"
        "  max_seq_len: 1024\n",
        "optimizer": "optimizer:\n  _component_: torch.optim.AdamW\n  lr: 3e-4\n",
        "batch_size": "batch_size: 8\n",
    }
    lines.update(overrides)
    return "".join(lines.values())


def test_the_builder_gives_the_architecture_and_the_method(tmp_path: Path) -> None:
    config = load(tmp_path, LORA).config
    assert config.arch.name == "qwen2.5-7b"
    assert config.model_name == "Qwen2.5-7B-Instruct"
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("lora", 32, 64)


def test_lora_modules_use_hugging_face_names(tmp_path: Path) -> None:
    assert load(tmp_path, LORA).config.lora_targets == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]


def test_reads_nested_keys(tmp_path: Path) -> None:
    config = load(tmp_path, LORA).config
    assert (config.seq_len, config.batch_size, config.grad_accum_steps) == (4096, 2, 4)
    assert (config.precision, config.optimizer, config.packing) == (
        "bf16",
        "adamw_torch_fused",
        True,
    )
    assert (config.lr, config.warmup_steps, config.torch_compile) == (2e-4, 50, True)
    assert config.strategy == "fsdp"


def test_the_dataloader_and_attention_are_what_the_recipes_really_use(tmp_path: Path) -> None:
    config = load(tmp_path, FULL).config
    assert (config.dataloader_workers, config.dataloader_pin_memory) == (0, False)
    assert config.attention_impl == "sdpa"


def test_dtype_fp32_is_fp32_and_an_unset_dtype_too(tmp_path: Path) -> None:
    assert load(tmp_path, FULL).config.precision == "fp32"
    assert write(tmp_path, "w/a.yaml", small()).config.precision == "fp32"


def test_interpolations_of_other_keys_are_resolved(tmp_path: Path) -> None:
    text = small(batch_size="batch_size: ${micro}\nmicro: 6\n")
    assert write(tmp_path, "w/a.yaml", text).config.batch_size == 6


NO_TRUNCATION = small(
    tokenizer="tokenizer:\n  _component_: torchtune.models.llama3."
    "llama3_tokenizer\n  max_seq_len: null\n"
)


def test_a_null_max_seq_len_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", NO_TRUNCATION)
    assert info.value.field == "tokenizer.max_seq_len"


def test_the_null_max_seq_len_error_names_both_fixes_and_the_sidecar_path(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", NO_TRUNCATION)
    assert str(info.value).endswith(
        "set tokenizer.max_seq_len, or give `seq_len:` in the sidecar w/a.goblin.yaml"
    )


def test_a_sidecar_seq_len_gives_the_sequence_length_a_null_max_seq_len_leaves_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("seq_len: 3072\n")
    assert write(tmp_path, "w/a.yaml", NO_TRUNCATION).config.seq_len == 3072


def test_a_patch_never_writes_the_sidecar_seq_len_into_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("seq_len: 3072\n")
    workload = write(tmp_path, "w/a.yaml", NO_TRUNCATION)
    planned = plan_patch(
        workload, [change(workload, "seq_len", 1024), change(workload, "batch_size", 4)]
    )
    assert [c.field for c in planned.changes] == ["batch_size"]
    assert [c.field for c, _ in planned.dropped] == ["seq_len"]
    assert "max_seq_len: null" in planned.text
    assert (tmp_path / "w/a.goblin.yaml").read_text() == "seq_len: 3072\n"


def test_fp16_is_an_error_because_the_recipes_reject_it(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="bf16 or fp32") as info:
        write(tmp_path, "w/a.yaml", small() + "dtype: fp16\n")
    assert info.value.field == "dtype"


def test_the_fused_optimizer_is_written_inside_the_optimizer_block(tmp_path: Path) -> None:
    workload = load(tmp_path, FULL)
    planned = plan_patch(workload, [change(workload, "optimizer", "adamw_torch_fused")])
    lines = planned.diff.splitlines()
    at = lines.index("-  fused: False")
    assert lines[at - 2 : at + 3] == [
        "   _component_: torch.optim.AdamW",
        "   lr: 2e-5",
        "-  fused: False",
        "+  fused: True",
        " optimizer_in_bwd: False",
    ]


def test_packing_is_written_into_the_dataset_block(tmp_path: Path) -> None:
    workload = load(tmp_path, FULL)
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert yaml.safe_load(planned.text)["dataset"]["packed"] is True
    assert "  packed: True  # True increases speed" in planned.text


def test_dataloader_changes_are_reported_not_written(tmp_path: Path) -> None:
    workload = load(tmp_path, FULL)
    planned = plan_patch(
        workload, [change(workload, "dataloader_workers", 4), change(workload, "precision", "bf16")]
    )
    assert [c.field for c in planned.changes] == ["precision"]
    ((dropped, why),) = planned.dropped
    assert dropped.field == "dataloader_workers"
    assert "DataLoader" in why


def test_attention_cannot_be_patched(tmp_path: Path) -> None:
    workload = load(tmp_path, FULL)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert planned.changes == [] and planned.diff == ""
    assert "SDPA" in planned.dropped[0][1]


def test_turning_checkpointing_off_also_turns_offloading_off(tmp_path: Path) -> None:
    text = small() + "enable_activation_checkpointing: True\nenable_activation_offloading: True\n"
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    data = yaml.safe_load(planned.text)
    assert (data["enable_activation_checkpointing"], data["enable_activation_offloading"]) == (
        False,
        False,
    )


@pytest.mark.parametrize(
    "data",
    [
        {"model": {"_target_": "torchtune.models.llama3_2.llama3_2_1b"}},
        {"model": {"_component_": "mylib.models.Tiny"}, "batch_size": 4},
        {"_component_": "torchtune.models.llama3_2.llama3_2_1b"},
    ],
)
def test_needs_a_torchtune_component_to_be_detected(data: dict) -> None:
    assert not torchtune.detect(data)


def test_a_value_given_by_interpolation_is_edited_where_it_is_defined(tmp_path: Path) -> None:
    text = small(batch_size="batch_size: ${micro}\nmicro: 6\n")
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "batch_size", 12)])
    assert "batch_size: ${micro}\nmicro: 12\n" in planned.text
