"""Specification of the LLaMA-Factory format: its own defaults and its inverted keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import llamafactory
from pytest_goblin.workload.read import plan_patch

CONTRACTS = "llamafactory/llama3_8b_contracts_lora.yaml"
GEMMA = "llamafactory/gemma2_2b_full_ds2.yaml"
MINIMAL = "model_name_or_path: Qwen/Qwen2.5-7B-Instruct\nstage: sft\ntemplate: qwen\n"


def test_reads_a_lora_config(tmp_path: Path) -> None:
    config = load(tmp_path, CONTRACTS).config
    assert config.arch.name == "llama-3-8b"
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("lora", 16, 32)
    assert config.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (config.seq_len, config.batch_size, config.grad_accum_steps) == (4096, 2, 8)
    assert (config.precision, config.attention_impl) == ("fp16", "eager")


def test_unset_keys_take_llamafactorys_defaults(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", MINIMAL).config
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("lora", 8, 16)
    assert len(config.lora_targets) == 7
    assert config.gradient_checkpointing
    assert (config.seq_len, config.batch_size) == (2048, 8)
    assert config.attention_impl == "sdpa"
    assert not config.packing


def test_packing_is_on_by_default_only_for_pretraining(tmp_path: Path) -> None:
    text = MINIMAL.replace("stage: sft", "stage: pt")
    assert write(tmp_path, "w/a.yaml", text).config.packing


def test_disable_gradient_checkpointing_turns_it_off(tmp_path: Path) -> None:
    workload = load(tmp_path, GEMMA)
    assert not workload.config.gradient_checkpointing
    assert workload.sources["gradient_checkpointing"] == "disable_gradient_checkpointing"
    assert workload.config.strategy == "deepspeed"


def test_checkpointing_is_patched_through_the_inverted_key(tmp_path: Path) -> None:
    workload = load(tmp_path, CONTRACTS)
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    assert yaml.safe_load(planned.text)["disable_gradient_checkpointing"] is True


def test_flash_attention_is_written_as_fa2_keeping_the_comment(tmp_path: Path) -> None:
    workload = load(tmp_path, CONTRACTS)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert "+flash_attn: fa2  # fa2 wheel missing on the old image" in planned.diff.splitlines()


def test_a_new_training_key_goes_into_the_train_section(tmp_path: Path) -> None:
    workload = load(tmp_path, GEMMA)
    planned = plan_patch(workload, [change(workload, "optimizer", "adamw_torch_fused")])
    lines = planned.text.splitlines()
    assert lines.index("optim: adamw_torch_fused") > lines.index("### train")


def test_bf16_replaces_fp16(tmp_path: Path) -> None:
    workload = load(tmp_path, CONTRACTS)
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    data = yaml.safe_load(planned.text)
    assert (data["bf16"], data["fp16"]) == (True, False)


def test_four_bit_quantization_is_qlora(tmp_path: Path) -> None:
    config = write(tmp_path, "w/a.yaml", MINIMAL + "quantization_bit: 4\n").config
    assert config.finetune == "qlora"


def test_a_method_it_cannot_model_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/a.yaml", MINIMAL + "finetuning_type: freeze\n")
    assert info.value.field == "finetuning_type"


def test_lora_targets_are_written_as_llamafactorys_comma_string(tmp_path: Path) -> None:
    workload = load(tmp_path, CONTRACTS)
    planned = plan_patch(workload, [change(workload, "lora_targets", ["q_proj", "v_proj"])])
    assert yaml.safe_load(planned.text)["lora_target"] == "q_proj,v_proj"


@pytest.mark.parametrize(
    "data",
    [
        {"model_name_or_path": "x", "max_length": 1024},
        {"stage": "sft", "template": "llama3"},
    ],
)
def test_needs_model_name_or_path_and_a_llamafactory_key_to_be_detected(data: dict) -> None:
    assert not llamafactory.detect(data)


def test_a_new_rank_keeps_the_alpha_the_old_rank_implied(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", MINIMAL + "lora_rank: 16\n")
    assert workload.config.lora_alpha == 32
    planned = plan_patch(workload, [change(workload, "lora_rank", 64)])
    assert [c.field for c in planned.changes] == ["lora_rank"]
    assert yaml.safe_load(planned.text)["lora_alpha"] == 32


@pytest.mark.parametrize(("bits", "finetune"), [(4, "qlora"), (8, "lora8")])
@pytest.mark.parametrize(
    "method", ["", "quantization_method: bnb\n", "quantization_method: bitsandbytes\n"]
)
def test_a_bitsandbytes_base_is_read_by_its_width(
    tmp_path: Path, bits: int, finetune: str, method: str
) -> None:
    text = MINIMAL + f"quantization_bit: {bits}\n" + method
    assert write(tmp_path, "w/a.yaml", text).config.finetune == finetune


def test_a_width_bitsandbytes_cannot_quantize_to_is_an_error_naming_the_key(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkloadError, match="8 or 4 bits only") as info:
        write(tmp_path, "w/a.yaml", MINIMAL + "quantization_bit: 2\n")
    assert info.value.field == "quantization_bit"


@pytest.mark.parametrize("method", ["hqq", "eetq"])
def test_an_hqq_or_eetq_base_is_an_error_naming_the_method(tmp_path: Path, method: str) -> None:
    text = MINIMAL + f"quantization_bit: 8\nquantization_method: {method}\n"
    with pytest.raises(WorkloadError, match=method.upper()) as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "quantization_method"


@pytest.mark.parametrize(("finetune", "bits"), [("lora", None), ("qlora", 4)])
def test_an_8_bit_base_is_patched_through_quantization_bit(
    tmp_path: Path, finetune: str, bits: int | None
) -> None:
    workload = write(tmp_path, "w/a.yaml", MINIMAL + "quantization_bit: 8\n")
    planned = plan_patch(workload, [change(workload, "finetune", finetune)])
    assert [c.field for c in planned.changes] == ["finetune"]
    assert yaml.safe_load(planned.text)["quantization_bit"] == bits


def test_a_full_fine_tune_is_not_a_patch_of_the_base() -> None:
    with pytest.raises(llamafactory.Unpatchable, match="only LoRA's base"):
        llamafactory.edits({"quantization_bit": 8}, "finetune", "full")


def test_keys_of_llamafactory_main_are_known(tmp_path: Path) -> None:
    text = MINIMAL + "kt_cpu_activation: recompute\nhyper_parallel_cp_size: 1\n"
    assert write(tmp_path, "w/a.yaml", text).config.finetune == "lora"


def test_hyper_parallel_context_parallelism_is_refused_by_its_key(tmp_path: Path) -> None:
    """hyper_parallel_cp_size counts only under use_hyper_parallel (main ff6d4d1
    train/hyper_parallel/workflow.py _prepare_hp_args)."""
    text = MINIMAL + "use_hyper_parallel: true\nhyper_parallel_cp_size: 4\n"
    with pytest.raises(WorkloadError, match="hyper_parallel_cp_size: 4 is context par") as error:
        write(tmp_path, "w/a.yaml", text)
    assert error.value.field == "hyper_parallel_cp_size"
    text = MINIMAL + "hyper_parallel_cp_size: 4\n"
    assert write(tmp_path, "w/b.yaml", text).config.finetune == "lora"


def test_ktransformers_training_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="KTransformers") as error:
        write(tmp_path, "w/a.yaml", MINIMAL + "use_kt: true\n")
    assert error.value.field == "use_kt"


def test_megatron_switches_in_the_file_do_not_change_the_trainer_path(tmp_path: Path) -> None:
    # LLaMA-Factory picks Megatron from USE_MCA / USE_MEGATRON_BRIDGE, not from these keys
    text = MINIMAL + "use_mca: true\nuse_megatron_bridge: true\n"
    assert write(tmp_path, "w/a.yaml", text).config.finetune == "lora"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("finetuning_type: lora\n", ("bf16", None)),
        ("finetuning_type: lora\nquantization_bit: 4\n", ("bf16", None)),
        ("finetuning_type: lora\nbf16: false\ntf32: true\n", ("bf16", None)),
        ("finetuning_type: full\n", ("fp32", None)),
        ("finetuning_type: full\nbf16: false\n", ("fp32", "bf16")),
        ("finetuning_type: full\ntf32: true\n", ("tf32", "tf32")),
        ("finetuning_type: full\nfp16: true\n", ("fp16", "fp16")),
    ],
)
def test_without_bf16_or_fp16_lora_still_runs_its_base_in_half_precision(
    tmp_path: Path, text: str, expected: tuple[str, str | None]
) -> None:
    """The model loads in infer_optim_dtype (bf16 for a bf16 checkpoint) and only trainable
    weights are upcast (LLaMA-Factory ff6d4d1 model/patcher.py, model/adapter.py)."""
    workload = write(tmp_path, "w/a.yaml", MINIMAL + text)
    assert (workload.config.precision, workload.sources.get("precision")) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("infer_backend: huggingface\n", "infer_backend"),
        ("export_dir: saves/merged\nexport_size: 5\n", "export_dir"),
        ("do_predict: true\npredict_with_generate: true\n", "do_predict"),
        ("do_train: false\ndo_eval: true\n", "do_eval"),
    ],
)
def test_a_prediction_or_export_config_is_not_a_training_run(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(WorkloadError, match=f"config \\({key}, no do_train: true\\)") as info:
        write(tmp_path, "w/a.yaml", MINIMAL + text)
    assert info.value.field == "do_train"


def test_do_train_with_evaluation_keys_is_a_training_run(tmp_path: Path) -> None:
    text = MINIMAL + "do_train: true\ndo_eval: true\npredict_with_generate: false\n"
    assert write(tmp_path, "w/a.yaml", text).config.finetune == "lora"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("finetuning_type: full\nuse_badam: true\n", "use_badam", "one block of layers"),
        ("finetuning_type: full\nuse_asft_loss: true\n", "use_asft_loss", "frozen copy"),
        ("mixture_of_depths: convert\n", "mixture_of_depths", "mixture-of-depths"),
    ],
)
def test_a_step_the_workload_cannot_describe_is_an_error_naming_the_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    with pytest.raises(WorkloadError, match=message) as info:
        write(tmp_path, "w/a.yaml", MINIMAL + text)
    assert info.value.field == key


def test_those_switches_set_false_change_nothing(tmp_path: Path) -> None:
    text = MINIMAL + "use_badam: false\nuse_asft_loss: false\n"
    assert write(tmp_path, "w/a.yaml", text).config.finetune == "lora"


@pytest.mark.parametrize("value", ["flash", "eager", "flash_attention_2"])
def test_a_flash_attn_value_llamafactory_refuses_is_an_error(tmp_path: Path, value: str) -> None:
    """flash_attn parses into AttentionFunction: auto, disabled, sdpa, fa2, fa3 (ff6d4d1)."""
    with pytest.raises(WorkloadError, match="not one LLaMA-Factory accepts") as info:
        write(tmp_path, "w/a.yaml", MINIMAL + f"flash_attn: {value}\n")
    assert info.value.field == "flash_attn"


def test_a_quantized_full_fine_tune_is_refused_as_llamafactory_refuses_it(tmp_path: Path) -> None:
    text = MINIMAL + "finetuning_type: full\nquantization_bit: 4\n"
    with pytest.raises(WorkloadError, match="only under LoRA or OFT") as info:
        write(tmp_path, "w/a.yaml", text)
    assert info.value.field == "quantization_bit"
