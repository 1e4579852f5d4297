"""Specification of how the readers take what the frameworks do to save memory or padding:
torchtune's activation offloading and optimizer in the backward, TRL's padding-free batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, write
from pytest_goblin.api import project
from pytest_goblin.errors import WorkloadError
from pytest_goblin.workload.read import plan_patch

TORCHTUNE = (
    "model:\n  _component_: torchtune.models.llama3_2.llama3_2_1b\n"
    "tokenizer:\n  _component_: torchtune.models.llama3.llama3_tokenizer\n"
    "  max_seq_len: 1024\n"
    "optimizer:\n  _component_: torch.optim.AdamW\n  lr: 3e-4\n"
    "batch_size: 8\ndtype: bf16\n"
)
LORA = TORCHTUNE.replace("llama3_2.llama3_2_1b", "llama3_2.lora_llama3_2_1b")


def test_torchtune_activation_offloading_is_read(tmp_path: Path) -> None:
    text = TORCHTUNE + "enable_activation_checkpointing: True\nenable_activation_offloading: True\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.activation_offloading
    assert workload.sources["activation_offloading"] == "enable_activation_offloading"
    plain = write(tmp_path, "w/b.yaml", TORCHTUNE + "enable_activation_checkpointing: True\n")
    assert not plain.config.activation_offloading


def test_torchtune_offloading_without_checkpointing_is_refused_as_the_recipes_do(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkloadError, match="should only be True when") as info:
        write(tmp_path, "w/a.yaml", TORCHTUNE + "enable_activation_offloading: True\n")
    assert info.value.field == "enable_activation_offloading"


def test_a_checkpointing_off_patch_also_reads_back_with_offloading_off(tmp_path: Path) -> None:
    text = TORCHTUNE + "enable_activation_checkpointing: True\nenable_activation_offloading: True\n"
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    assert [c.field for c in planned.changes] == ["gradient_checkpointing"]
    data = yaml.safe_load(planned.text)
    assert data["enable_activation_offloading"] is False


def test_torchtune_optimizer_in_backward_is_read_for_full_fine_tuning(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", TORCHTUNE + "optimizer_in_bwd: True\n")
    assert workload.config.optimizer_in_backward
    assert workload.sources["optimizer_in_backward"] == "optimizer_in_bwd"
    # the LoRA recipes never read the key
    lora = write(tmp_path, "w/b.yaml", LORA + "optimizer_in_bwd: True\n")
    assert not lora.config.optimizer_in_backward


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("gradient_accumulation_steps: 4\n", "gradient_accumulation_steps"),
        ("clip_grad_norm: 1.0\n", "clip_grad_norm"),
    ],
)
def test_torchtune_optimizer_in_backward_is_refused_where_the_recipes_refuse_it(
    tmp_path: Path, extra: str, field: str
) -> None:
    with pytest.raises(WorkloadError, match="not supported with optimizer_in_bwd") as info:
        write(tmp_path, "w/a.yaml", TORCHTUNE + "optimizer_in_bwd: True\n" + extra)
    assert info.value.field == field


def test_the_real_llama3_1_8b_single_device_config_fits_with_its_optimizer_in_backward(
    tmp_path: Path,
) -> None:
    text = (
        TORCHTUNE.replace("llama3_2.llama3_2_1b", "llama3_1.llama3_1_8b")
        + "optimizer_in_bwd: True\nenable_activation_checkpointing: True\n"
    ).replace("batch_size: 8", "batch_size: 2")
    workload = write(tmp_path, "w/a.yaml", text)
    without = workload.config.model_copy(update={"optimizer_in_backward": False})
    assert project(workload.config, "h100").hbm_peak_gb < project(without, "h100").hbm_peak_gb


TRL = "model_name_or_path: Qwen/Qwen2.5-0.5B\nper_device_train_batch_size: 4\n"


def test_trl_padding_free_reads_as_packing_and_projects_like_it(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/free.goblin.yaml").write_text("seq_len: 2048\n", encoding="utf-8")
    free = write(tmp_path, "w/free.yaml", TRL + "padding_free: true\nmax_length: null\n")
    packed = write(tmp_path, "w/packed.yaml", TRL + "packing: true\nmax_length: 2048\n")
    assert free.config.packing and free.sources["packing"] == "padding_free"
    assert free.config.tokens_per_step == packed.config.tokens_per_step
    assert project(free.config, "h100").step_time_s == project(packed.config, "h100").step_time_s


def test_trl_padding_free_without_packing_under_a_max_length_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="max_length` is not enforced") as info:
        write(tmp_path, "w/a.yaml", TRL + "padding_free: true\n")
    assert info.value.field == "padding_free"
    packed = write(tmp_path, "w/b.yaml", TRL + "padding_free: true\npacking: true\n")
    assert packed.config.packing


def test_dpo_padding_free_is_not_packing(tmp_path: Path) -> None:
    text = TRL + "beta: 0.1\nloss_type: sigmoid\npadding_free: true\nrpo_alpha: 0.5\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.objective == "dpo"
    assert not workload.config.packing
