"""Specification of the LLaMA-Factory v1 format (``USE_V1=1 llamafactory-cli sft``): what the v1
trainer at ff6d4d1 runs for each key, its defaults, its refusals and its patches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, write
from pytest_goblin import formats
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import llamafactory_v1, native
from pytest_goblin.formats.base import ALL_LINEAR
from pytest_goblin.formats.vocabulary import LLAMAFACTORY, LLAMAFACTORY_V1
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import load_workload, plan_patch

MINIMAL = "model: Qwen/Qwen3-4B\nmodel_class: llm\ntrain_dataset: data/v1_sft_demo.yaml\n"
LORA = (
    MINIMAL
    + "peft_config:\n  name: lora\n  r: 16\n  lora_alpha: 32\n  target_modules: all\n"
    + "dist_config:\n  name: fsdp2\n  dcp_path: null\n"
    + "micro_batch_size: 2\ncutoff_len: 4096\n"
)


def test_the_markers_are_keys_neither_goblin_nor_llamafactory_v0_has() -> None:
    assert llamafactory_v1.MARKERS <= LLAMAFACTORY_V1
    assert not llamafactory_v1.MARKERS & set(WorkloadConfig.model_fields)
    assert not llamafactory_v1.MARKERS & LLAMAFACTORY
    assert native.SETTINGS_KEY not in LLAMAFACTORY_V1


def test_a_v1_file_is_detected_as_v1_never_as_goblin(tmp_path: Path) -> None:
    data = yaml.safe_load(LORA)
    assert not native.detect(data) or formats.detect(data, ".yaml") is not None
    fmt = formats.detect(data, ".yaml")
    assert fmt is not None and fmt.name == "llamafactory-v1"
    assert write(tmp_path, "w/a.yaml", LORA).source.format == "llamafactory-v1"


def test_a_goblin_workload_with_model_is_still_goblin(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", "model: qwen3-4b\nbatch_size: 2\nseq_len: 512\n")
    assert workload.source.format == "goblin"


def test_a_v1_file_with_a_key_v1_refuses_names_it_and_the_framework(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", MINIMAL + "micro_batch_sise: 2\n")
    message = str(info.value)
    assert "LLaMA-Factory v1 refuses micro_batch_sise" in message
    assert "WorkloadConfig" not in message


def test_unset_keys_take_the_v1_trainers_defaults(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", MINIMAL)
    config = workload.config
    assert config.arch.name == "qwen3-4b"
    assert (config.finetune, config.batch_size, config.grad_accum_steps) == ("full", 1, 1)
    assert (config.seq_len, config.lr, config.optimizer) == (2048, 1e-4, "adamw_torch")
    assert config.gradient_checkpointing
    assert (config.attention_impl, config.packing, config.dataloader_workers) == ("sdpa", False, 16)
    # no dist_config: a full fine-tune is cast to float32 and nothing autocasts
    assert (config.precision, config.strategy, config.objective) == ("fp32", "single", "sft")
    assert config.ddp_find_unused_parameters is False
    assert set(workload.sources) == {"model_name"}


def test_each_key_is_read_with_its_source(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", LORA + "enable_activation_checkpointing: false\n")
    config = workload.config
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("lora", 16, 32)
    assert config.lora_targets == ALL_LINEAR
    assert (config.batch_size, config.seq_len, config.gradient_checkpointing) == (2, 4096, False)
    assert (config.strategy, config.zero_stage, config.precision) == ("fsdp", 3, "bf16")
    assert workload.sources["lora_rank"] == "peft_config.r"
    assert workload.sources["strategy"] == "dist_config.name"
    assert workload.sources["gradient_checkpointing"] == "enable_activation_checkpointing"


def test_lora_defaults_are_rank_8_alpha_16_on_all_linear_layers(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", MINIMAL + "peft_config:\n  name: lora\n").config
    assert (config.lora_rank, config.lora_alpha, config.lora_targets) == (8, 16, ALL_LINEAR)
    # LoRA keeps the checkpoint's dtype (dtype="auto"), bf16 for Qwen3
    assert config.precision == "bf16"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("dist_config:\n  name: fsdp2\nbf16: false\n", ("fsdp", 3, "fp32", False)),
        (
            "dist_config:\n  name: fsdp2\n  reshard_after_forward: false\n  offload_params: true\n",
            ("fsdp", 2, "bf16", True),
        ),
        (
            "dist_config:\n  name: deepspeed\n  config_file: examples/deepspeed/ds_z2_config.json\n",
            ("deepspeed", 2, "bf16", False),
        ),
    ],
)
def test_dist_config_is_the_sharding(
    tmp_path: Path, extra: str, expected: tuple[object, ...]
) -> None:
    config = write(tmp_path, "w/a.yaml", MINIMAL + extra).config
    assert (config.strategy, config.zero_stage, config.precision, config.offload_params) == expected


def test_a_deepspeed_file_it_cannot_see_is_bf16_and_its_stage_unknown(tmp_path: Path) -> None:
    text = MINIMAL + "dist_config:\n  name: deepspeed\n  config_file: my/ds.json\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert (workload.config.strategy, workload.config.zero_stage) == ("deepspeed", None)
    assert workload.config.precision == "bf16"
    assert workload.sources["precision"] == "dist_config.config_file"


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ("name: bnb\n  quantization_bit: 4\n", ("qlora", "fp16")),
        ("name: bnb\n", ("qlora", "fp16")),
        ("name: bnb\n  quantization_bit: 4\n  compute_dtype: bfloat16\n", ("qlora", "bf16")),
        ("name: auto\n  quantization_bit: 8\n", ("lora8", "bf16")),
        ("name: auto\n", ("lora", "bf16")),
    ],
)
def test_quant_config_is_bitsandbytes_under_lora(
    tmp_path: Path, quant: str, expected: tuple[str, str]
) -> None:
    text = MINIMAL + "peft_config:\n  name: lora\nquant_config:\n  " + quant
    config = write(tmp_path, "w/a.yaml", text).config
    assert (config.finetune, config.precision) == expected


def test_global_batch_size_accumulates_over_dp_ranks(tmp_path: Path) -> None:
    text = MINIMAL + "micro_batch_size: 2\nglobal_batch_size: 32\ndp_size: 4\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.grad_accum_steps == 4
    assert workload.sources["grad_accum_steps"] == "global_batch_size"
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/b.yaml", text.replace("dp_size: 4\n", ""))
    assert info.value.field == "global_batch_size"
    assert "give `grad_accum_steps:` and `world_size:`" in str(info.value)


def test_kernels_and_batching_strategies(tmp_path: Path) -> None:
    text = MINIMAL + "kernel_config:\n  name: auto, liger_kernel\nbatching_strategy: padding_free\n"
    workload = write(tmp_path, "w/a.yaml", text + "flash_attn: flash_attention_2\n")
    assert workload.config.extras == {"use_liger_kernel": True}
    assert workload.sources["extras.use_liger_kernel"] == "kernel_config.name"
    assert (workload.config.packing, workload.config.attention_impl) == (True, "flash")
    # kernel_config auto applies kernels on Ascend NPUs only: nothing to record on a GPU
    assert (
        write(tmp_path, "w/b.yaml", MINIMAL + "kernel_config:\n  name: auto\n").config.extras == {}
    )


def test_the_objective_is_the_commands_unless_a_preference_key_says_dpo(tmp_path: Path) -> None:
    lora = MINIMAL + "peft_config:\n  name: lora\n"
    config = write(tmp_path, "w/a.yaml", lora + "pref_beta: 0.1\n").config
    assert (config.objective, config.reference) == ("dpo", "adapter")
    config = write(tmp_path, "w/b.yaml", MINIMAL + "pref_loss: simpo\n").config
    assert (config.objective, config.reference) == ("dpo", "none")
    pairs = lora.replace("v1_sft_demo", "v1_dpo_demo")
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/c.yaml", pairs)
    assert info.value.field == "train_dataset"
    assert "give `objective:`" in str(info.value)
    (tmp_path / "w" / "c.goblin.yaml").write_text("objective: dpo\n")
    assert load_workload(tmp_path / "w" / "c.yaml").config.objective == "dpo"


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("peft_config:\n  name: freeze\n", "peft_config.name", "'freeze' is not one"),
        ("model_class: cls\n", "model_class", "reward) head"),
        ("cp_size: 2\n", "cp_size", "context parallelism"),
        ("mp_replicate_size: 2\n", "mp_replicate_size", "hybrid sharding"),
        ("dist_config:\n  name: fsdpturbo\n", "dist_config.name", "fsdpturbo"),
        ("dist_config:\n  name: deepspeed\n", "dist_config.config_file", "config_file"),
        ("quant_config:\n  name: bnb\n", "quant_config", "without a LoRA peft_config"),
        (
            "peft_config:\n  name: lora\nquant_config:\n  name: hqq\n",
            "quant_config.name",
            "'hqq'",
        ),
        ("flash_attn: fa2\n", "flash_attn", "unknown flash_attn"),
        ("pref_loss: ipo\n", "pref_loss", "unknown pref_loss"),
        (
            "peft_config:\n  name: lora\n  export_dir: out\n",
            "peft_config.export_dir",
            "llamafactory-cli merge",
        ),
        ("dist_config: fsdp2\n", "dist_config", "a mapping with a `name`"),
    ],
)
def test_what_v1_runs_but_goblin_cannot_model_is_refused_by_key(
    tmp_path: Path, extra: str, field: str, message: str
) -> None:
    text = MINIMAL.replace("model_class: llm\n", "") + extra
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == field
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "key", "written"),
    [
        ("batch_size", 4, "micro_batch_size", 4),
        ("seq_len", 1024, "cutoff_len", 1024),
        ("gradient_checkpointing", False, "enable_activation_checkpointing", False),
        ("dataloader_workers", 4, "batching_workers", 4),
        ("attention_impl", "flash", "flash_attn", "flash_attention_2"),
        ("precision", "fp32", "bf16", False),
    ],
)
def test_a_patch_writes_the_v1_key_and_reads_back(
    tmp_path: Path, field: str, value: object, key: str, written: object
) -> None:
    workload = write(tmp_path, "w/a.yaml", LORA)
    planned = plan_patch(workload, [change(workload, field, value)])
    assert not planned.dropped
    assert yaml.safe_load(planned.text)[key] == written
    patched = tmp_path / "w" / "b.yaml"
    patched.write_text(planned.text)
    assert getattr(load_workload(patched).config, field) == value


def test_lora_rank_is_patched_inside_peft_config(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", LORA)
    planned = plan_patch(workload, [change(workload, "lora_rank", 32)])
    assert yaml.safe_load(planned.text)["peft_config"]["r"] == 32
    patched = tmp_path / "w" / "b.yaml"
    patched.write_text(planned.text)
    assert load_workload(patched).config.lora_rank == 32


@pytest.mark.parametrize(
    ("text", "field", "value", "reason"),
    [
        (MINIMAL, "precision", "bf16", "without dist_config a full fine-tune trains in fp32"),
        (LORA, "packing", True, "needs flash_attn: flash_attention_2"),
        (LORA, "torch_compile", True, "have no key for torch_compile"),
        (LORA, "finetune", "qlora", "existing quant_config"),
        (MINIMAL + "global_batch_size: 8\ndp_size: 1\n", "batch_size", 2, "global_batch_size"),
    ],
)
def test_a_change_v1_has_no_key_for_is_dropped_with_the_reason(
    tmp_path: Path, text: str, field: str, value: object, reason: str
) -> None:
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, field, value)])
    assert not planned.changes
    assert reason in planned.dropped[0][1]
