"""Specification of the torchtune format: builders, nested blocks, and what a recipe cannot say."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin.catalogue.architectures import PRESETS
from pytest_goblin.errors import NotAWorkload, WorkloadError
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
    assert (config.strategy, config.world_size) == ("fsdp", 4)


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


def test_packing_is_not_written_where_the_tokenizer_sets_no_length(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("seq_len: 2048\n", encoding="utf-8")
    text = small(tokenizer="tokenizer:\n  max_seq_len: null\n") + (
        "dataset:\n  _component_: torchtune.datasets.alpaca_dataset\n  packed: False\n"
    )
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert planned.changes == [] and planned.diff == ""
    assert "PackedDataset requires a max_seq_len" in planned.dropped[0][1]


@pytest.mark.parametrize(
    ("packed", "expected"), [(("True", "True"), True), (("False", "False"), False)]
)
def test_a_list_of_datasets_is_packed_when_each_is(
    tmp_path: Path, packed: tuple[str, str], expected: bool
) -> None:
    entries = "".join(f"  - _component_: torchtune.datasets.x\n    packed: {p}\n" for p in packed)
    config = write(tmp_path, "w/a.yaml", small() + "dataset:\n" + entries).config
    assert config.packing is expected


def test_a_list_mixing_packed_and_unpacked_datasets_is_refused(tmp_path: Path) -> None:
    entries = "  - packed: True\n  - packed: False\n"
    with pytest.raises(WorkloadError, match="ConcatDataset refuses the mix") as info:
        write(tmp_path, "w/a.yaml", small() + "dataset:\n" + entries)
    assert info.value.field == "dataset"


@pytest.mark.parametrize(
    ("command", "compile_map", "expected"),
    [
        ("tune run --nproc_per_node 8 full_finetune_distributed", "{loss: True}", True),
        (
            "tune run --nproc_per_node 8 full_finetune_distributed",
            "{model: False, loss: True}",
            False,
        ),
        ("tune run lora_finetune_single_device", "{model: False, loss: True}", True),
    ],
)
def test_a_compile_mapping_compiles_the_model_as_its_recipe_reads_it(
    tmp_path: Path, command: str, compile_map: str, expected: bool
) -> None:
    text = launched(command) + f"compile: {compile_map}\n"
    assert write(tmp_path, "w/a.yaml", text).config.torch_compile is expected


def test_knowledge_distillation_is_refused_by_the_teacher(tmp_path: Path) -> None:
    text = small() + (
        "teacher_model:\n  _component_: torchtune.models.llama3_1.llama3_1_8b\n"
        "kd_loss:\n  _component_: torchtune.modules.loss.ForwardKLWithChunkedOutputLoss\n"
    )
    with pytest.raises(WorkloadError, match="knowledge distillation") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "teacher_model._component_"


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


GENERATION = """\
model:
  _component_: torchtune.models.llama2.llama2_7b
checkpointer:
  _component_: torchtune.training.FullModelHFCheckpointer
  checkpoint_dir: /tmp/Llama-2-7b-hf/
device: cuda
dtype: bf16
max_new_tokens: 300
"""
"""torchtune's generation config (bd2a0fc7 recipes/configs/generation.yaml), shortened."""


def test_a_config_that_does_not_train_is_not_collected_from_a_directory(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", generation=GENERATION)
    result = pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", ".")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_config_that_does_not_train_named_on_the_command_line_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotAWorkload, match="a generation, evaluation or quantization config"):
        write(tmp_path, "configs/generation.yaml", GENERATION)


def test_a_grpo_dev_recipe_which_nests_its_training_keys_is_still_refused_by_name(
    tmp_path: Path,
) -> None:
    text = GENERATION + (
        "training:\n  loss:\n    _component_: torchtune.dev.grpo.loss.GRPOSimpleLoss\n"
    )
    with pytest.raises(WorkloadError, match="GRPO reinforcement learning"):
        write(tmp_path, "configs/grpo.yaml", text)


def test_a_value_given_by_interpolation_is_edited_where_it_is_defined(tmp_path: Path) -> None:
    text = small(batch_size="batch_size: ${micro}\nmicro: 6\n")
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "batch_size", 12)])
    assert "batch_size: ${micro}\nmicro: 12\n" in planned.text


def launched(command: str) -> str:
    """A config whose opening comment launches it as the shipped configs do."""
    return (
        "# Config for multi-device finetuning\n"
        "#\n"
        "# To launch, run the following command from root:\n"
        f"#   {command} --config my/config\n"
        "#\n" + small()
    )


@pytest.mark.parametrize(
    ("command", "world_size"),
    [
        ("tune run --nproc_per_node 2 lora_finetune_distributed", 2),
        ("tune run --nnodes 1 --nproc_per_node 4 full_finetune_distributed", 4),
        ("tune run --nproc_per_node=8 qat_lora_finetune_distributed", 8),
        ("tune run --nproc_per_node 4 dev/grpo_full_finetune_distributed", 4),
        ("tune run --nnodes 2 --nproc_per_node 8 full_finetune_distributed", 16),
        ("tune run --nnodes=4 --nproc-per-node=8 lora_finetune_distributed", 32),
        ("tune run --nnodes 2:2 --nproc_per_node 4 full_finetune_distributed", 8),
        # torchtune's recipes/full_finetune_multinode.slurm (bd2a0fc7): rendezvous options
        # take values too, and the recipe comes after them
        (
            "tune run --nnodes 2 --nproc_per_node 8 --rdzv_id 101 --rdzv_backend c10d "
            '--rdzv_endpoint "$head_node_ip:29500" full_finetune_distributed',
            16,
        ),
        ("tune run --standalone --nproc_per_node 2 lora_finetune_distributed", 2),
    ],
)
def test_a_distributed_recipes_launch_comment_gives_fsdp_over_its_processes(
    tmp_path: Path, command: str, world_size: int
) -> None:
    workload = write(tmp_path, "w/a.yaml", launched(command))
    config = workload.config
    assert (config.strategy, config.world_size, config.zero_stage) == ("fsdp", world_size, 3)
    assert workload.sources["world_size"] == f"the launch comment, line 4: {command}"
    assert workload.sources["strategy"] == workload.sources["world_size"]


@pytest.mark.parametrize(
    "command",
    [
        "tune run lora_finetune_single_device",
        "tune run full_finetune_distributed",  # no --nproc_per_node: one process
        "tune run --nproc_per_node 1 full_finetune_distributed",
    ],
)
def test_a_single_process_launch_shards_nothing(tmp_path: Path, command: str) -> None:
    config = write(tmp_path, "w/a.yaml", launched(command)).config
    assert (config.strategy, config.world_size) == ("single", 1)


def test_a_config_without_a_launch_comment_is_one_unsharded_device(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", small()).config
    assert (config.strategy, config.world_size, config.zero_stage) == ("single", 1, None)


def test_only_the_first_launch_command_of_the_comments_counts(tmp_path: Path) -> None:
    text = launched("tune run lora_finetune_single_device").replace(
        "--config my/config\n#\n",
        "--config my/config\n# or, on 8 devices: tune run --nproc_per_node 8 x_distributed\n",
    )
    assert write(tmp_path, "w/a.yaml", text).config.strategy == "single"


def test_a_launch_command_outside_a_comment_is_not_read(tmp_path: Path) -> None:
    text = small() + 'output_dir: "tune run --nproc_per_node 8 full_finetune_distributed"\n'
    assert write(tmp_path, "w/a.yaml", text).config.strategy == "single"


def test_the_sidecars_world_size_replaces_the_comments_process_count(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("world_size: 16\n", encoding="utf-8")
    command = "tune run --nproc_per_node 2 lora_finetune_distributed"
    workload = write(tmp_path, "w/a.yaml", launched(command))
    assert (workload.config.strategy, workload.config.world_size) == ("fsdp", 16)
    assert workload.sources["world_size"] == "w/a.goblin.yaml"


def test_a_sidecar_cannot_unshard_a_distributed_recipe(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("strategy: single\n", encoding="utf-8")
    with pytest.raises(WorkloadError, match="the launch comment, line 4") as info:
        write(tmp_path, "w/a.yaml", launched("tune run --nproc_per_node 2 x_distributed"))
    assert info.value.field == "strategy"


def test_reshard_after_forward_false_keeps_parameters_gathered(tmp_path: Path) -> None:
    text = launched("tune run --nproc_per_node 4 full_finetune_distributed")
    config = write(tmp_path, "w/a.yaml", text + "fsdp_reshard_after_forward: False\n").config
    assert (config.strategy, config.zero_stage) == ("fsdp", 2)


def test_torchtune_0_2s_fsdp_wrap_key_marks_a_sharded_recipe(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", small() + "memory_efficient_fsdp_wrap: True\n").config
    assert (config.strategy, config.zero_stage) == ("fsdp", 3)


def test_an_elastic_node_range_counts_one_node(tmp_path: Path) -> None:
    command = "tune run --nnodes 1:4 --nproc_per_node 8 full_finetune_distributed"
    config = write(tmp_path, "w/a.yaml", launched(command)).config
    assert (config.strategy, config.world_size) == ("fsdp", 8)


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("tensor_parallel_dim", "tensor parallelism"),
        ("context_parallel_dim", "context parallelism"),
        ("data_parallel_replicate_dim", "hybrid sharding"),
    ],
)
def test_a_device_mesh_beyond_fsdp_is_refused_by_its_key(
    tmp_path: Path, key: str, what: str
) -> None:
    text = launched("tune run --nnodes 2 --nproc_per_node 8 full_finetune_distributed")
    with pytest.raises(WorkloadError, match=f"{key}: 8 is {what}") as info:
        write(tmp_path, "w/a.yaml", text + f"{key}: 8\n")
    assert info.value.field == key
    assert f"set {key}: 1" in str(info.value)


@pytest.mark.parametrize("key", ["tensor_parallel_dim", "context_parallel_dim"])
def test_a_mesh_dimension_of_one_is_plain_fsdp(tmp_path: Path, key: str) -> None:
    text = launched("tune run --nproc_per_node 8 full_finetune_distributed")
    config = write(tmp_path, "w/a.yaml", text + f"{key}: 1\n").config
    assert (config.strategy, config.world_size) == ("fsdp", 8)


def test_launch_reads_the_recipe_and_the_process_count() -> None:
    text = "# a\n#   tune run --nnodes 1 --nproc_per_node 4 lora_finetune_distributed --config x\n"
    found = torchtune.launch(text)
    assert found is not None
    assert (found.recipe, found.nproc, found.line, found.distributed) == (
        "lora_finetune_distributed",
        4,
        2,
        True,
    )
    assert torchtune.launch("batch_size: 2\n") is None


def test_every_builder_maps_to_a_preset() -> None:
    assert set(torchtune.BUILDER_PRESETS.values()) <= set(PRESETS)


@pytest.mark.parametrize(
    ("builder", "preset", "finetune"),
    [
        ("torchtune.models.qwen3.lora_qwen3_8b_instruct", "qwen3-8b", "lora"),
        ("torchtune.models.qwen3.qwen3_0_6b_base", "qwen3-0.6b", "full"),
        ("torchtune.models.qwen2_5.lora_qwen2_5_72b_instruct", "qwen2.5-72b", "lora"),
        ("torchtune.models.llama2.qlora_llama2_70b", "llama-2-70b", "qlora"),
        ("torchtune.models.llama3_3.qlora_llama3_3_70b", "llama-3.3-70b", "qlora"),
        ("torchtune.models.gemma.lora_gemma_2b", "gemma-2b", "lora"),
        ("torchtune.models.gemma2.gemma2_27b", "gemma-2-27b", "full"),
        ("torchtune.models.phi4.qlora_phi4_14b", "phi-4", "qlora"),
    ],
)
def test_a_builder_gives_its_preset_and_method(
    tmp_path: Path, builder: str, preset: str, finetune: str
) -> None:
    config = write(tmp_path, "w/a.yaml", small(model=f"model:\n  _component_: {builder}\n")).config
    assert (config.arch.name, config.finetune) == (preset, finetune)


@pytest.mark.parametrize(
    ("builder", "kind"),
    [
        ("torchtune.models.llama4.lora_llama4_scout_17b_16e", "Llama 4 mixture-of-experts"),
        ("torchtune.models.llama3_2_vision.qlora_llama3_2_vision_11b", "Llama 3.2 Vision"),
    ],
)
def test_a_moe_or_vision_builder_is_refused_as_an_unsupported_architecture(
    tmp_path: Path, builder: str, kind: str
) -> None:
    text = small(model=f"model:\n  _component_: {builder}\n")
    with pytest.raises(WorkloadError, match="this architecture is not supported") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "model._component_"
    assert kind in str(info.value) and "not a preset" not in str(info.value)


def test_a_moe_checkpoint_behind_a_generic_builder_is_named_not_asked_for_dims(
    tmp_path: Path,
) -> None:
    text = small(
        model="model:\n  _component_: torchtune.models.qwen3.qwen3\n",
        checkpointer="checkpointer:\n  _component_: torchtune.training.FullModelHFCheckpointer\n"
        "  checkpoint_dir: /tmp/Qwen3-30B-A3B\n",
    )
    with pytest.raises(WorkloadError, match="mixture-of-experts") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "checkpointer.checkpoint_dir"


def test_a_grpo_recipe_is_refused_naming_its_loss(tmp_path: Path) -> None:
    text = small() + (
        "orchestration:\n  loss:\n    _component_: torchtune.dev.rl.linear_grpo_loss.LinearGRPOLoss\n"
    )
    with pytest.raises(WorkloadError, match="GRPO reinforcement learning") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "orchestration.loss._component_"


def test_gradient_accumulation_is_not_patched_beside_optimizer_in_backward(
    tmp_path: Path,
) -> None:
    text = small() + "gradient_accumulation_steps: 1\noptimizer_in_bwd: True\n"
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(
        workload, [change(workload, "batch_size", 4), change(workload, "grad_accum_steps", 2)]
    )
    assert [c.field for c in planned.changes] == ["batch_size"]
    ((dropped, why),) = planned.dropped
    assert dropped.field == "grad_accum_steps" and "optimizer_in_bwd" in why


def test_compile_beside_optimizer_in_backward_leaves_the_optimizer_step_alone(
    tmp_path: Path,
) -> None:
    text = launched("tune run --nproc_per_node 8 full_finetune_distributed") + (
        "compile: False\noptimizer_in_bwd: True\n"
    )
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "torch_compile", True)])
    compiled = yaml.safe_load(planned.text)["compile"]
    assert compiled == {"model": True, "loss": True, "optimizer_step": False}
    assert [c.field for c in planned.changes] == ["torch_compile"]


def test_qlora_to_lora_swaps_the_builder_for_its_lora_twin(tmp_path: Path) -> None:
    text = small(
        model="model:\n  _component_: torchtune.models.llama3_1.qlora_llama3_1_8b\n  lora_rank: 8\n"
    )
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.finetune == "qlora"
    planned = plan_patch(workload, [change(workload, "finetune", "lora")])
    model = yaml.safe_load(planned.text)["model"]
    assert model == {"_component_": "torchtune.models.llama3_1.lora_llama3_1_8b", "lora_rank": 8}


def test_a_written_quantize_base_is_turned_off_for_lora(tmp_path: Path) -> None:
    text = small(
        model="model:\n  _component_: torchtune.models.llama3_2.lora_llama3_2_1b\n"
        "  quantize_base: True\n"
    )
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "finetune", "lora")])
    assert yaml.safe_load(planned.text)["model"]["quantize_base"] is False
    assert [c.field for c in planned.changes] == ["finetune"]


def test_a_dora_adapter_is_refused_by_its_key(tmp_path: Path) -> None:
    text = small(
        model="model:\n  _component_: torchtune.models.llama3.lora_llama3_8b\n  use_dora: True\n"
    )
    with pytest.raises(WorkloadError, match="DoRA") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "model.use_dora"
