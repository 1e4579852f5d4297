"""Specification of TrainingArguments args files and TRL CLI configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import hf_args
from pytest_goblin.workload.read import plan_patch

TRL = "trl/qwen25_05b_sft.yaml"
CLM = "hf/phi3_mini_clm_args.json"
TRL_MINIMAL = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: tickets\nmax_length: 512\n"
HF_MINIMAL = {
    "model_name_or_path": "mistralai/Mistral-7B-v0.1",
    "output_dir": "out",
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-5,
    "block_size": 1024,
}


def test_trl_turns_bf16_and_checkpointing_on_by_default(tmp_path: Path) -> None:
    config = write(tmp_path, "w/sft.yaml", TRL_MINIMAL).config
    assert (config.precision, config.gradient_checkpointing) == ("bf16", True)
    assert (config.seq_len, config.lr, config.batch_size) == (512, 2e-5, 8)


def test_trainingarguments_files_take_the_trainers_defaults(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/args.json", json.dumps(HF_MINIMAL))
    assert workload.source.format == "hf-args"
    config = workload.config
    assert (config.precision, config.gradient_checkpointing) == ("fp32", False)
    assert (config.dataloader_workers, config.dataloader_pin_memory) == (0, True)
    assert (config.seq_len, config.optimizer) == (1024, "adamw_torch_fused")


def test_an_args_file_without_a_sequence_length_asks_for_one(tmp_path: Path) -> None:
    text = json.dumps({key: v for key, v in HF_MINIMAL.items() if key != "block_size"})
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/args.json", text)
    assert "the sequence length is unknown" in str(info.value)
    assert info.value.field == "max_length or max_seq_length or block_size or model_max_length"


def test_trl_example_config_is_read_as_trl_with_its_defaults(tmp_path: Path) -> None:
    workload = load(tmp_path, "real/trl/trl_cli_configs_example_config.yaml")
    config = workload.config
    assert workload.source.format == "trl"
    assert (config.seq_len, config.precision, config.gradient_checkpointing) == (1024, "bf16", True)
    assert (config.optimizer, config.lr) == ("adamw_torch_fused", 1e-4)


def test_reads_a_trl_config_with_model_keys_and_env(tmp_path: Path) -> None:
    workload = load(tmp_path, TRL)
    config = workload.config
    assert (config.arch.name, config.attention_impl, config.packing) == (
        "qwen2.5-0.5b",
        "eager",
        True,
    )
    assert config.env_vars == {"TOKENIZERS_PARALLELISM": "false"}
    assert workload.sources["attention_impl"] == "attn_implementation"


def test_a_float16_load_dtype_without_autocast_flags_is_fp16(tmp_path: Path) -> None:
    text = json.dumps({**HF_MINIMAL, "torch_dtype": "float16"}, indent=2)
    workload = write(tmp_path, "w/args.json", text)
    assert workload.config.precision == "fp16"
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    data = json.loads(planned.text)
    assert (data["bf16"], data["torch_dtype"]) == (True, "bfloat16")


def test_fp32_in_trl_needs_an_explicit_bf16_false(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/sft.yaml", TRL_MINIMAL)
    planned = plan_patch(workload, [change(workload, "precision", "fp32")])
    assert yaml.safe_load(planned.text)["bf16"] is False


def test_attention_goes_into_model_init_kwargs_when_the_file_writes_it_there(
    tmp_path: Path,
) -> None:
    text = TRL_MINIMAL + "model_init_kwargs: {attn_implementation: eager, dtype: bfloat16}\n"
    workload = write(tmp_path, "w/sft.yaml", text)
    assert workload.config.attention_impl == "eager"
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert yaml.safe_load(planned.text)["model_init_kwargs"] == {
        "attn_implementation": "flash_attention_2",
        "dtype": "bfloat16",
    }


def test_trl_gets_a_top_level_attn_implementation_when_absent(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/sft.yaml", TRL_MINIMAL)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert yaml.safe_load(planned.text)["attn_implementation"] == "flash_attention_2"


def test_an_env_var_joins_the_env_section_quoted(tmp_path: Path) -> None:
    workload = load(tmp_path, TRL)
    planned = plan_patch(workload, [change(workload, "env_vars.HIP_FORCE_DEV_KERNARG", "1")])
    assert planned.text.endswith('  HIP_FORCE_DEV_KERNARG: "1"\n')


def test_an_args_file_cannot_take_attention_or_packing(tmp_path: Path) -> None:
    workload = load(tmp_path, CLM)
    planned = plan_patch(
        workload,
        [
            change(workload, "attention_impl", "flash"),
            change(workload, "packing", True),
            change(workload, "seq_len", 4096),
        ],
    )
    assert [c.field for c in planned.changes] == ["seq_len"]
    assert json.loads(planned.text)["block_size"] == 4096
    reasons = {c.field: why for c, why in planned.dropped}
    assert "from_pretrained" in reasons["attention_impl"]
    assert "TRL" in reasons["packing"]


def test_the_json_diff_touches_only_changed_members(tmp_path: Path) -> None:
    workload = load(tmp_path, CLM)
    planned = plan_patch(workload, [change(workload, "dataloader_workers", 4)])
    assert [line for line in planned.diff.splitlines() if line[:1] in "+-"] == [
        "--- a/hf/phi3_mini_clm_args.json",
        "+++ b/hf/phi3_mini_clm_args.json",
        '-  "dataloader_num_workers": 0,',
        '+  "dataloader_num_workers": 4,',
    ]


@pytest.mark.parametrize(
    "data",
    [
        {
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "bf16": {"enabled": "auto"},
            "zero_optimization": {"stage": 2},
        },
        {"output_dir": "out", "learning_rate": 1e-4},
        {
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 4096,
            "bf16": True,
            "gradient_accumulation_steps": 1,
            "optim": "x",
        },
    ],
)
def test_other_json_with_training_words_is_not_an_args_file(data: dict) -> None:
    assert not hf_args.detect_hf_args(data)
    assert not hf_args.detect_trl(data)


def test_a_trl_config_is_not_taken_for_a_plain_args_file() -> None:
    data = {
        "model_name_or_path": "x",
        "packing": True,
        "output_dir": "o",
        "per_device_train_batch_size": 2,
        "bf16": True,
    }
    assert hf_args.detect_trl(data)
    assert not hf_args.detect_hf_args(data)


def test_lora_over_an_8_bit_base_in_trl_is_read_as_lora8(tmp_path: Path) -> None:
    text = TRL_MINIMAL + "use_peft: true\nload_in_8bit: true\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.finetune == "lora8"
    assert workload.sources["finetune"] == "load_in_8bit"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("load_in_8bit: true\n", "without a LoRA adapter"),
        ("use_peft: true\nload_in_8bit: true\nload_in_4bit: true\n", "both set"),
    ],
)
def test_an_8_bit_base_trl_refuses_is_an_error_naming_load_in_8bit(
    tmp_path: Path, extra: str, match: str
) -> None:
    with pytest.raises(WorkloadError, match=match) as info:
        write(tmp_path, "w/a.yaml", TRL_MINIMAL + extra)
    assert info.value.field == "load_in_8bit"


@pytest.mark.parametrize(
    ("finetune", "after"),
    [("lora", {"load_in_8bit": False}), ("qlora", {"load_in_8bit": False, "load_in_4bit": True})],
)
def test_a_patch_of_an_8_bit_base_in_trl_writes_the_loading_flags(
    tmp_path: Path, finetune: str, after: dict[str, bool]
) -> None:
    workload = write(tmp_path, "w/a.yaml", TRL_MINIMAL + "use_peft: true\nload_in_8bit: true\n")
    planned = plan_patch(workload, [change(workload, "finetune", finetune)])
    assert [c.field for c in planned.changes] == ["finetune"]
    data = yaml.safe_load(planned.text)
    assert {key: data.get(key) for key in after} == after


def test_a_dora_adapter_in_trl_is_refused_by_use_dora(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="DoRA") as info:
        write(tmp_path, "w/a.yaml", TRL_MINIMAL + "use_peft: true\nuse_dora: true\n")
    assert info.value.field == "use_dora"


def test_use_dora_without_an_adapter_changes_nothing(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", TRL_MINIMAL + "use_dora: true\n").config
    assert config.finetune == "full"


def test_a_dpo_file_checkpoints_by_default_as_dpoconfig_does(tmp_path: Path) -> None:
    # TRL v1.9.0 trl/trainer/base_config.py: _BaseConfig.gradient_checkpointing = True,
    # inherited by DPOConfig (dpo_config.py) as by SFTConfig
    config = write(tmp_path, "w/a.yaml", TRL_MINIMAL + "rpo_alpha: 1.0\n").config
    assert (config.objective, config.gradient_checkpointing) == ("dpo", True)


def test_a_null_max_length_in_trl_truncates_nothing_so_the_length_is_asked_for(
    tmp_path: Path,
) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: tickets\nmax_length: null\n"
    with pytest.raises(WorkloadError, match="TRL truncates nothing") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "max_length"
    (tmp_path / "w/a.goblin.yaml").write_text("seq_len: 4096\n", encoding="utf-8")
    assert write(tmp_path, "w/a.yaml", text).config.seq_len == 4096


def test_a_null_max_length_is_never_patched_into_a_truncation(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("seq_len: 4096\n", encoding="utf-8")
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: tickets\nmax_length: null\n"
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "seq_len", 2048)])
    assert planned.changes == [] and "no truncation" in planned.dropped[0][1]


@pytest.mark.parametrize(
    ("header", "launch"),
    [
        ("# Config for 1 node of 8 H100s with DeepSpeed ZeRO-3\n", ("deepspeed", 8, 3)),
        ("# Config for 16 nodes of 8 H100s with FSDP1\n", ("fsdp", 128, 3)),
        ("# Config for 2 nodes of 8 x H100s (80GB) with DeepSpeed ZeRO-2\n", ("deepspeed", 16, 2)),
    ],
)
def test_an_open_r1_header_comment_states_the_launch(
    tmp_path: Path, header: str, launch: tuple[str, int, int]
) -> None:
    workload = write(tmp_path, "w/a.yaml", header + TRL_MINIMAL)
    config = workload.config
    assert (config.strategy, config.world_size, config.zero_stage) == launch
    assert workload.sources["world_size"] == f"the header comment, line 1: {header[2:].strip()}"


@pytest.mark.parametrize(
    "header",
    [
        "# Config for 1 node of 8 x H100s (80GB)\n",  # no sharding named: not read
        "# Config for 8 nodes, with GBS 128\n",
        "# trailing: model_name_or_path  # Config for 1 node of 8 H100s with FSDP\n",
    ],
)
def test_a_header_without_devices_and_sharding_says_no_launch(tmp_path: Path, header: str) -> None:
    config = write(tmp_path, "w/a.yaml", header + TRL_MINIMAL).config
    assert (config.strategy, config.world_size) == ("single", 1)


@pytest.mark.parametrize(
    ("command", "launch"),
    [
        # open-r1 2a7bb45 recipes/Mistral-Small-24B-Instruct-2501/sft/config_openr1_math.yaml
        (
            "sbatch -N 4 --job-name=mistral_sft slurm/train.slurm Mistral-Small-24B sft numina zero3",
            ("deepspeed", 32, 3),
        ),
        (
            "sbatch --job-name=open_r1 --nodes=1 slurm/train.slurm --model OpenR1-Distill-7B "
            "--task sft --config distill --accelerator zero2",
            ("deepspeed", 8, 2),
        ),
        ("sbatch --nodes 2 slurm/train.slurm M sft c fsdp", ("fsdp", 16, 3)),
    ],
)
def test_an_open_r1_slurm_command_in_a_comment_states_the_launch(
    tmp_path: Path, command: str, launch: tuple[str, int, int]
) -> None:
    text = "# To start the training, run the following command:\n# " + command + "\n"
    workload = write(tmp_path, "w/a.yaml", text + TRL_MINIMAL)
    config = workload.config
    assert (config.strategy, config.world_size, config.zero_stage) == launch
    assert workload.sources["strategy"] == f"the launch comment, line 2: {command}"


def test_a_slurm_command_with_an_unknown_accelerator_says_no_launch(tmp_path: Path) -> None:
    text = "# sbatch -N 4 slurm/train.slurm M sft c mine\n" + TRL_MINIMAL
    assert write(tmp_path, "w/a.yaml", text).config.strategy == "single"
