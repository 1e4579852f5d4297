"""Specification of training scripts read from their syntax tree, and patched literal by literal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.format_support import change, load, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats import hf_args, hf_script
from pytest_goblin.workload.read import plan_patch
from pytest_goblin.workload.sidecar import sidecar_path

QLORA = "hf/llama3_qlora_train.py"
PLAIN = """\
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B", torch_dtype=torch.bfloat16)
args = TrainingArguments(output_dir="out", per_device_train_batch_size=4)
Trainer(model=model, args=args).train()
"""


def script(tmp_path: Path, text: str, name: str = "train.py", seq_len: int | None = 1024):
    """The script read as the plugin reads it; TrainingArguments has no sequence length, so
    the sidecar gives one unless ``seq_len`` is None."""
    if seq_len is not None:
        sidecar = sidecar_path(tmp_path / "w" / name)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(f"seq_len: {seq_len}\n", encoding="utf-8")
    return write(tmp_path, f"w/{name}", text)


def test_a_trainer_script_without_a_sequence_length_asks_for_one(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, PLAIN, seq_len=None)
    assert "TrainingArguments has no sequence length" in str(info.value)
    assert "give `seq_len:` in the sidecar w/train.goblin.yaml" in str(info.value)


def test_reads_the_args_call_the_model_lora_and_quantization(tmp_path: Path) -> None:
    config = load(tmp_path, QLORA).config
    assert (config.model_name, config.arch.name) == ("meta-llama/Meta-Llama-3-8B", "llama-3-8b")
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("qlora", 32, 16)
    assert (config.seq_len, config.optimizer, config.gradient_checkpointing) == (
        4096,
        "paged_adamw_32bit",
        True,
    )


def test_names_resolve_in_keyword_arguments(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    assert workload.config.attention_impl == "eager"
    assert workload.sources["attention_impl"] == (
        "from_pretrained(attn_implementation=) via ATTENTION, line 13"
    )


def test_dict_splats_give_keyword_arguments(tmp_path: Path) -> None:
    config = load(tmp_path, QLORA).config
    assert (config.batch_size, config.grad_accum_steps) == (1, 16)


def test_environment_assignments_are_read(tmp_path: Path) -> None:
    assert load(tmp_path, QLORA).config.env_vars == {"WANDB_PROJECT": "support-qlora"}


def test_the_load_dtype_decides_precision_without_autocast_flags(tmp_path: Path) -> None:
    assert script(tmp_path, PLAIN).config.precision == "bf16"
    fp32 = PLAIN.replace("torch.bfloat16", "torch.float32")
    assert script(tmp_path, fp32, "b.py").config.precision == "fp32"


def test_trainingarguments_scripts_take_the_trainers_defaults(tmp_path: Path) -> None:
    config = script(tmp_path, PLAIN).config
    assert (config.gradient_checkpointing, config.dataloader_pin_memory, config.finetune) == (
        False,
        True,
        "full",
    )
    assert config.attention_impl == "sdpa"


def test_re_compile_is_not_torch_compile(tmp_path: Path) -> None:
    text = "import re\nPATTERN = re.compile('x')\n" + PLAIN
    assert not script(tmp_path, text).config.torch_compile


@pytest.mark.parametrize("call", ["model = torch.compile(model)", "model.compile()"])
def test_compiling_the_model_is_torch_compile(tmp_path: Path, call: str) -> None:
    text = PLAIN.replace("args = ", f"{call}\nargs = ")
    workload = script(tmp_path, text)
    assert workload.config.torch_compile
    assert "compile" in workload.sources["torch_compile"]


def test_gradient_checkpointing_enable_turns_checkpointing_on(tmp_path: Path) -> None:
    text = PLAIN.replace("args = ", "model.gradient_checkpointing_enable()\nargs = ")
    workload = script(tmp_path, text)
    assert workload.config.gradient_checkpointing
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    assert "gradient_checkpointing_enable()" in planned.dropped[0][1]


def test_a_non_literal_value_is_an_error_naming_the_call_and_line(tmp_path: Path) -> None:
    text = PLAIN.replace("per_device_train_batch_size=4", "per_device_train_batch_size=cli.bs")
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, text)
    assert info.value.field == "TrainingArguments(per_device_train_batch_size=) line 5"
    assert "`cli.bs` is not a literal" in str(info.value)


SFT_TRAINER = """\
from transformers import AutoModelForCausalLM, TrainingArguments
from trl import SFTTrainer

model = AutoModelForCausalLM.from_pretrained("NousResearch/Llama-2-7b-chat-hf")
args = TrainingArguments(output_dir="out", per_device_train_batch_size=4)
trainer = SFTTrainer(model=model, train_dataset=data, dataset_text_field="text", args=args)
"""


def test_training_arguments_handed_to_sft_trainer_truncate_at_trls_1024_tokens(
    tmp_path: Path,
) -> None:
    workload = script(tmp_path, SFT_TRAINER, seq_len=None)
    config = workload.config
    assert config.seq_len == 1024
    assert workload.sources["seq_len"] == "SFTTrainer() default max_seq_length=1024, line 6"
    # to_dict() carries TrainingArguments' own defaults into the SFTConfig, not TRL's
    assert (config.gradient_checkpointing, config.precision) == (False, "fp32")
    planned = plan_patch(workload, [change(workload, "seq_len", 2048)])
    assert not planned.changes
    assert "which keyword this script's TRL accepts" in planned.dropped[0][1]


def test_a_length_the_sft_trainer_call_writes_wins_over_its_default(tmp_path: Path) -> None:
    text = SFT_TRAINER.replace('"text", ', '"text", max_seq_length=512, ')
    workload = script(tmp_path, text, seq_len=None)
    assert workload.config.seq_len == 512
    planned = plan_patch(workload, [change(workload, "seq_len", 2048)])
    assert "max_seq_length=2048" in planned.text


PINNED = (
    "get_ipython().system('pip install -q peft==0.9.0 transformers==4.31.0 trl==0.4.7')\n"
    + SFT_TRAINER
)


def test_a_notebook_pinning_an_old_transformers_reads_that_releases_defaults(
    tmp_path: Path,
) -> None:
    workload = script(tmp_path, PINNED, seq_len=None)
    # transformers v4.31.0 training_args.py default_optim = "adamw_hf"; no SDPA before v4.36.0
    assert (workload.config.optimizer, workload.config.attention_impl) == ("adamw_hf", "eager")
    pin = "`pip install transformers==4.31.0` line 1"
    assert workload.sources["optimizer"] == f"TrainingArguments' default under {pin}"
    assert hf_args.trainer_default_optim((4, 32)) == "adamw_torch"
    assert hf_args.trainer_default_optim((4, 54)) == "adamw_torch_fused"


def test_a_patch_for_an_old_transformers_writes_only_keys_that_release_has(
    tmp_path: Path,
) -> None:
    workload = script(tmp_path, PINNED, seq_len=None)
    planned = plan_patch(
        workload,
        [
            change(workload, "dataloader_workers", 4),
            change(workload, "dataloader_persistent_workers", True),
            change(workload, "attention_impl", "flash"),
        ],
    )
    assert [c.field for c in planned.changes] == ["dataloader_workers"]
    reasons = {dropped.field: reason for dropped, reason in planned.dropped}
    assert (
        "no dataloader_persistent_workers before transformers v4.36.0"
        in reasons["dataloader_persistent_workers"]
    )
    assert "attn_implementation from transformers v4.36.0" in reasons["attention_impl"]


def test_bf16_for_a_4bit_base_computing_in_float16_also_moves_its_compute_dtype(
    tmp_path: Path,
) -> None:
    text = SFT_TRAINER.replace(
        '"NousResearch/Llama-2-7b-chat-hf")',
        '"NousResearch/Llama-2-7b-chat-hf", quantization_config=q)',
    ).replace(
        "args = ",
        "import torch\nq = BitsAndBytesConfig(load_in_4bit=True, "
        "bnb_4bit_compute_dtype=torch.float16)\nconfig = LoraConfig(r=8)\nargs = ",
    )
    workload = script(tmp_path, text, seq_len=None)
    assert (workload.config.finetune, workload.config.precision) == ("qlora", "fp16")
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    assert "bnb_4bit_compute_dtype=torch.bfloat16" in planned.text
    assert "bf16=True" in planned.text


def test_a_script_that_parses_its_training_arguments_says_how_to_audit_them(
    tmp_path: Path,
) -> None:
    text = (
        "from transformers import HfArgumentParser\nfrom trl import SFTConfig, SFTTrainer\n"
        "parser = HfArgumentParser((ModelArguments, SFTConfig))\n"
        "model_args, training_args = parser.parse_args_into_dataclasses()\n"
        "SFTTrainer(model=model_args.model_name_or_path, args=training_args).train()\n"
    )
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, text)
    assert info.value.field == "HfArgumentParser() line 3"
    assert "audit the JSON or YAML file the run passes" in str(info.value)
    assert "write the run's arguments in the script as SFTConfig(...)" in str(info.value)
    assert not hf_script.detect(ast.parse("HfArgumentParser((ModelArguments, DataArguments))"))


def test_a_value_from_the_command_line_names_the_option_and_its_default(
    tmp_path: Path,
) -> None:
    text = PLAIN.replace("per_device_train_batch_size=4", "per_device_train_batch_size=a.bs")
    text = (
        "import argparse\nparser = argparse.ArgumentParser()\n"
        'parser.add_argument("--bs", type=int, default=2)\na = parser.parse_args()\n' + text
    )
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, text)
    assert "`a.bs` is the command line's --bs (argparse default 2, line 3)" in str(info.value)
    assert "not this key" in str(info.value)


def test_a_value_from_a_function_parameter_names_the_function_and_its_default(
    tmp_path: Path,
) -> None:
    body = PLAIN.replace("per_device_train_batch_size=4", "per_device_train_batch_size=bs")
    lines = body.splitlines()
    text = "\n".join([*lines[:3], "def train(lr, bs=16):", *("    " + x for x in lines[3:])])
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, text + "\n")
    assert "`bs` is a parameter of train() (default 16, line 4)" in str(info.value)


def test_a_sequence_length_from_the_command_line_can_come_from_the_sidecar(
    tmp_path: Path,
) -> None:
    text = SFT_TRAINER.replace('"text", ', '"text", max_seq_length=opts.max_len, ')
    text = "opts = parser.parse_args()\n" + text
    with pytest.raises(WorkloadError) as info:
        script(tmp_path, text, seq_len=None)
    message = str(info.value)
    assert "`opts.max_len` is set on the command line (parse_args() line 1)" in message
    assert "or give `seq_len:` in the sidecar" in message and "w/train.goblin.yaml" in message


def test_the_bf16_capability_probe_reads_as_true_but_is_never_edited(tmp_path: Path) -> None:
    text = PLAIN.replace(
        'output_dir="out"', 'output_dir="out", bf16=torch.cuda.is_bf16_supported()'
    )
    workload = script(tmp_path, text)
    assert workload.config.precision == "bf16"
    planned = plan_patch(workload, [change(workload, "precision", "fp16")])
    assert planned.changes == []
    assert "not a literal" in planned.dropped[0][1]


def test_a_dataloader_counts_only_in_a_script_without_a_trainer(tmp_path: Path) -> None:
    loader = "loader = DataLoader(data, num_workers=8, pin_memory=False)\n"
    with_trainer = script(tmp_path, PLAIN + loader)
    assert with_trainer.config.dataloader_workers == 0
    custom = PLAIN.replace("Trainer(model=model, args=args).train()\n", "") + loader
    config = script(tmp_path, custom, "custom.py").config
    assert (config.dataloader_workers, config.dataloader_pin_memory) == (8, False)


def test_scripts_are_parsed_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"open({str(marker)!r}, 'w').write('x')\n" + PLAIN
    script(tmp_path, text)
    assert not marker.exists()


def test_a_script_without_an_arguments_call_is_not_detected() -> None:
    tree = ast.parse(
        "import re\nfrom transformers import TrainingArguments\n"
        "PATTERN = re.compile('TrainingArguments')\n"
    )
    assert not hf_script.detect(tree)


# --- patches --------------------------------------------------------------------------


def test_the_constant_that_holds_a_value_is_what_changes(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert [line for line in planned.diff.splitlines() if line[:1] in "+-"][2:] == [
        '-ATTENTION = "eager"  # flash-attn did not build on the old image',
        '+ATTENTION = "flash_attention_2"  # flash-attn did not build on the old image',
    ]


def test_bf16_flips_the_flags_and_the_float16_load_dtype(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    changed = [line for line in planned.diff.splitlines() if line[:1] in "+-"][2:]
    assert "+    torch_dtype=torch.bfloat16," in changed
    assert "+    fp16=False," in changed
    assert "+    bf16=True," in changed


def test_a_missing_keyword_follows_a_one_per_line_call(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    planned = plan_patch(workload, [change(workload, "dataloader_workers", 4)])
    lines = planned.text.splitlines()
    at = lines.index("    dataloader_num_workers=4,")
    assert lines[at - 1] == "    **TRAIN_KW," and lines[at + 1] == ")"


def test_a_missing_keyword_joins_a_one_line_call(tmp_path: Path) -> None:
    workload = script(tmp_path, PLAIN)
    planned = plan_patch(workload, [change(workload, "optimizer", "adamw_torch_fused")])
    assert (
        'args = TrainingArguments(output_dir="out", per_device_train_batch_size=4, '
        'optim="adamw_torch_fused")'
    ) in planned.text


def test_a_value_from_a_dict_splat_is_edited_inside_the_dict(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    planned = plan_patch(workload, [change(workload, "batch_size", 2)])
    assert "+    per_device_train_batch_size=2," in planned.diff.splitlines()
    assert planned.text.count("per_device_train_batch_size") == 1


def test_an_environment_variable_is_added_after_the_existing_ones(tmp_path: Path) -> None:
    workload = load(tmp_path, QLORA)
    planned = plan_patch(
        workload,
        [
            change(workload, "env_vars.HIP_FORCE_DEV_KERNARG", "1"),
            change(workload, "env_vars.WANDB_PROJECT", "faq"),
        ],
    )
    lines = planned.text.splitlines()
    at = lines.index('os.environ["WANDB_PROJECT"] = "faq"')
    assert lines[at + 1] == 'os.environ["HIP_FORCE_DEV_KERNARG"] = "1"'


def test_attention_without_from_pretrained_goes_into_model_init_kwargs(tmp_path: Path) -> None:
    text = (
        "from trl import SFTConfig, SFTTrainer\n"
        'args = SFTConfig(output_dir="o", model_init_kwargs={"dtype": "bfloat16"})\n'
        'SFTTrainer(model="Qwen/Qwen2.5-0.5B", args=args).train()\n'
    )
    workload = script(tmp_path, text)
    assert workload.config.model_name == "Qwen/Qwen2.5-0.5B"
    planned = plan_patch(workload, [change(workload, "attention_impl", "flash")])
    assert (
        'model_init_kwargs={"dtype": "bfloat16", "attn_implementation": "flash_attention_2"}'
    ) in planned.text


def test_packing_cannot_be_written_into_trainingarguments(tmp_path: Path) -> None:
    workload = script(tmp_path, PLAIN)
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert "SFTConfig" in planned.dropped[0][1]


def test_a_splat_of_something_other_than_a_dict_literal_is_an_error(tmp_path: Path) -> None:
    text = PLAIN.replace('output_dir="out", per_device_train_batch_size=4', "**load_config()")
    with pytest.raises(WorkloadError, match=r"`\*\*load_config\(\)` is not a dict literal"):
        script(tmp_path, text)


def test_a_name_unpacked_from_a_tuple_of_literals_resolves(tmp_path: Path) -> None:
    text = PLAIN.replace(
        'model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B"',
        'model_id, output_dir = "Qwen/Qwen2.5-7B", "out"\n'
        "model = AutoModelForCausalLM.from_pretrained(model_id",
    )
    workload = script(tmp_path, text)
    assert (workload.config.model_name, workload.config.arch.name) == (
        "Qwen/Qwen2.5-7B",
        "qwen2.5-7b",
    )
    assert workload.sources["model_name"] == "from_pretrained() via model_id, line 4"


def test_a_name_also_unpacked_from_a_call_has_no_known_value(tmp_path: Path) -> None:
    text = PLAIN.replace("per_device_train_batch_size=4", "per_device_train_batch_size=BS")
    text += "BS = 4\nBS, steps = read_schedule()\n"
    with pytest.raises(WorkloadError, match="`BS` is not a literal"):
        script(tmp_path, text)


def test_a_keyword_added_after_a_commented_last_argument_leaves_the_comment_on_its_line(
    tmp_path: Path,
) -> None:
    one_line = 'args = TrainingArguments(output_dir="out", per_device_train_batch_size=4)'
    text = PLAIN.replace(
        one_line,
        "args = TrainingArguments(\n"
        '    output_dir="out",\n'
        "    per_device_train_batch_size=4  # fits in memory\n"
        ")",
    )
    workload = script(tmp_path, text)
    planned = plan_patch(workload, [change(workload, "optimizer", "adamw_torch_fused")])
    assert (
        '    per_device_train_batch_size=4,  # fits in memory\n    optim="adamw_torch_fused"\n)'
    ) in planned.text


def test_an_8_bit_base_model_is_an_error_naming_the_call(tmp_path: Path) -> None:
    text = PLAIN.replace(
        "torch_dtype=torch.bfloat16", "quantization_config=BitsAndBytesConfig(load_in_8bit=True)"
    )
    with pytest.raises(WorkloadError, match="8-bit base model") as error:
        script(tmp_path, text)
    assert error.value.field == "BitsAndBytesConfig(load_in_8bit=) line 4"


def test_a_literal_true_is_not_named_as_a_constant_it_came_via(tmp_path: Path) -> None:
    text = PLAIN.replace("batch_size=4", "batch_size=4, bf16=True")
    assert script(tmp_path, text).sources["precision"] == "TrainingArguments(bf16=) line 5"


UNSLOTH = """\
from unsloth import FastLanguageModel, is_bf16_supported
from trl import SFTConfig, SFTTrainer

max_seq_length = 2048
dtype = None  # None for auto detection
load_in_4bit = True

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name="unsloth/Meta-Llama-3.1-8B",
    max_seq_length=max_seq_length,
    dtype=dtype,
    load_in_4bit=load_in_4bit,
)
model = FastLanguageModel.get_peft_model(
    model,
    r=16,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lora_alpha=16,
    lora_dropout=0,
    use_gradient_checkpointing="unsloth",
)
trainer = SFTTrainer(
    model=model,
    tokenizer=tokenizer,
    args=SFTConfig(
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        learning_rate=2e-4,
        fp16=not is_bf16_supported(),
        bf16=is_bf16_supported(),
        optim="adamw_8bit",
        output_dir="outputs",
    ),
)
trainer.train()
"""
"""The shape of unsloth's Llama-3.1 8B Alpaca notebook (its calls and keywords)."""


def test_an_unsloth_script_is_read_as_its_4bit_qlora_with_its_model_and_length(
    tmp_path: Path,
) -> None:
    workload = script(tmp_path, UNSLOTH, seq_len=None)
    config = workload.config
    assert (config.model_name, config.arch.name) == ("unsloth/Meta-Llama-3.1-8B", "llama-3.1-8b")
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("qlora", 16, 16)
    assert (config.seq_len, config.gradient_checkpointing) == (2048, True)
    assert (
        workload.sources["seq_len"] == "from_pretrained(max_seq_length=) via max_seq_length, line 4"
    )


def test_unsloth_defaults_apply_where_the_script_leaves_keywords_out(tmp_path: Path) -> None:
    text = UNSLOTH.replace("    load_in_4bit=load_in_4bit,\n", "").replace(
        "    max_seq_length=max_seq_length,\n", ""
    )
    config = script(tmp_path, text, seq_len=None).config
    assert (config.finetune, config.seq_len) == ("qlora", 2048)


def test_an_unsloth_sequence_length_patch_edits_the_loader(tmp_path: Path) -> None:
    workload = script(tmp_path, UNSLOTH, seq_len=None)
    planned = plan_patch(workload, [change(workload, "seq_len", 4096)])
    assert "max_seq_length = 4096" in planned.text


QLORA_FP16_COMPUTE = """\
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Trainer, TrainingArguments

bnb = BitsAndBytesConfig(
    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16
)
model = AutoModelForCausalLM.from_pretrained("meta-llama/Meta-Llama-3-8B", quantization_config=bnb)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32))
args = TrainingArguments(output_dir="out", per_device_train_batch_size=4)
Trainer(model=model, args=args).train()
"""


def test_lora_over_an_8_bit_bitsandbytes_config_is_read_as_lora8(tmp_path: Path) -> None:
    text = QLORA_FP16_COMPUTE.replace(
        'load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16',
        "load_in_8bit=True",
    )
    workload = script(tmp_path, text)
    assert workload.config.finetune == "lora8"
    assert workload.sources["finetune"] == "BitsAndBytesConfig(load_in_8bit=) line 6"


def test_a_qlora_without_autocast_runs_in_its_4bit_compute_dtype(tmp_path: Path) -> None:
    workload = script(tmp_path, QLORA_FP16_COMPUTE)
    assert (workload.config.finetune, workload.config.precision) == ("qlora", "fp16")
    assert workload.sources["precision"] == "BitsAndBytesConfig(bnb_4bit_compute_dtype=) line 6"


def test_bf16_autocast_over_a_float16_compute_dtype_multiplies_in_bf16(tmp_path: Path) -> None:
    """Linear4bit casts its input to float16, but the matmul is an F.linear that bf16
    autocast casts again (bitsandbytes 0.49.2 autograd/_functions.py MatMul4Bit.forward)."""
    text = QLORA_FP16_COMPUTE.replace(
        "quantization_config=bnb)", "quantization_config=bnb, torch_dtype=torch.float16)"
    ).replace("per_device_train_batch_size=4)", "per_device_train_batch_size=4, bf16=True)")
    workload = script(tmp_path, text)
    assert (workload.config.finetune, workload.config.precision) == ("qlora", "bf16")
    assert workload.sources["precision"] == "TrainingArguments(bf16=) line 10"
    assert workload.config.pure_precision is False


def test_without_autocast_the_compute_dtype_wins_over_the_load_dtype(tmp_path: Path) -> None:
    """Linear4bit.forward casts its input to the compute dtype whatever dtype the model was
    loaded in (bitsandbytes 0.50.1 nn/modules.py): a bf16 load computing in float16
    multiplies in fp16."""
    text = QLORA_FP16_COMPUTE.replace(
        "quantization_config=bnb)", "quantization_config=bnb, torch_dtype=torch.bfloat16)"
    )
    workload = script(tmp_path, text)
    assert workload.config.precision == "fp16"
    assert workload.sources["precision"] == "BitsAndBytesConfig(bnb_4bit_compute_dtype=) line 6"


@pytest.mark.parametrize(("flag", "precision"), [("", "fp32"), (", tf32=True", "tf32")])
def test_an_unset_compute_dtype_is_bitsandbytesconfigs_float32(
    tmp_path: Path, flag: str, precision: str
) -> None:
    """transformers v5.25.0 BitsAndBytesConfig: bnb_4bit_compute_dtype None is torch.float32,
    passed to every Linear4bit, so a bf16 load without autocast multiplies in fp32."""
    text = (
        QLORA_FP16_COMPUTE.replace(", bnb_4bit_compute_dtype=torch.float16", "")
        .replace("quantization_config=bnb)", "quantization_config=bnb, torch_dtype=torch.bfloat16)")
        .replace("per_device_train_batch_size=4)", f"per_device_train_batch_size=4{flag})")
    )
    workload = script(tmp_path, text)
    assert (workload.config.finetune, workload.config.precision) == ("qlora", precision)
    if precision == "fp32":
        assert workload.sources["precision"] == (
            "BitsAndBytesConfig() default bnb_4bit_compute_dtype=torch.float32, line 5"
        )
    planned = plan_patch(workload, [change(workload, "precision", "bf16")])
    assert "bf16=True" in planned.text
    assert "bnb_4bit_compute_dtype" not in planned.text


DPO_SCRIPT = """\
from peft import LoraConfig
from trl import DPOConfig, DPOTrainer

args = DPOConfig(output_dir="out", per_device_train_batch_size=2, bf16=True)
DPOTrainer(
    model="Qwen/Qwen2.5-0.5B-Instruct",
    args=args,
    peft_config=LoraConfig(r=16, lora_alpha=32),
).train()
"""


def test_a_dpoconfig_script_is_read_as_dpo_with_dpoconfigs_defaults(tmp_path: Path) -> None:
    workload = script(tmp_path, DPO_SCRIPT, seq_len=None)
    config = workload.config
    assert (config.objective, config.reference, config.finetune) == ("dpo", "adapter", "lora")
    # TRL v1.9.0 dpo_config.py: learning_rate 1e-6, max_length 1024; base_config.py:
    # gradient_checkpointing True
    assert (config.lr, config.seq_len, config.gradient_checkpointing) == (1e-6, 1024, True)
    assert config.model_name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert workload.sources["objective"] == "DPOConfig() line 4"


def test_a_dpoconfig_script_that_precomputes_the_reference_reads_so(tmp_path: Path) -> None:
    text = DPO_SCRIPT.replace("bf16=True", "bf16=True, precompute_ref_log_probs=True")
    assert script(tmp_path, text, seq_len=None).config.reference == "precomputed"


def test_a_dpoconfig_script_is_never_patched_to_pack(tmp_path: Path) -> None:
    workload = script(tmp_path, DPO_SCRIPT, seq_len=None)
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert planned.changes == [] and "DPOConfig has no packing" in planned.dropped[0][1]


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("GRPOConfig", "GRPO, online RL"),
        ("KTOConfig", "KTO preference training"),
        ("GKDConfig", "GKD distillation"),
    ],
)
def test_another_trl_trainers_config_is_refused_by_its_call(
    tmp_path: Path, call: str, what: str
) -> None:
    text = f"from trl import {call}\n\nargs = {call}(output_dir='out', learning_rate=1e-6)\n"
    assert hf_script.detect(ast.parse(text))
    with pytest.raises(WorkloadError, match=f"{call}\\(\\) builds the arguments of TRL's {what}"):
        script(tmp_path, text, seq_len=None)


def test_a_dora_loraconfig_is_refused_naming_the_call(tmp_path: Path) -> None:
    text = DPO_SCRIPT.replace("LoraConfig(r=16,", "LoraConfig(r=16, use_dora=True,")
    with pytest.raises(WorkloadError, match="DoRA") as info:
        script(tmp_path, text, seq_len=None)
    assert info.value.field == "LoraConfig(use_dora=) line 8"


def test_an_sftconfig_without_truncation_asks_for_the_length_and_keeps_it(
    tmp_path: Path,
) -> None:
    text = (
        "from trl import SFTConfig, SFTTrainer\n\n"
        "args = SFTConfig(output_dir='out', max_length=None)\n"
        "SFTTrainer(model='Qwen/Qwen2.5-0.5B', args=args).train()\n"
    )
    with pytest.raises(WorkloadError, match="TRL truncates nothing"):
        script(tmp_path, text, seq_len=None)
    workload = script(tmp_path, text, name="again.py", seq_len=2048)
    assert workload.config.seq_len == 2048
    planned = plan_patch(workload, [change(workload, "seq_len", 1024)])
    assert planned.changes == [] and "truncates nothing" in planned.dropped[0][1]


UNSLOTH_NOTEBOOK = """\
from unsloth import FastLanguageModel, is_bfloat16_supported
from trl import SFTConfig, SFTTrainer

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name="unsloth/Meta-Llama-3.1-8B-bnb-4bit", max_seq_length=2048, load_in_4bit=True
)
model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=16)
args = SFTConfig(
    per_device_train_batch_size=2,
    gradient_accumulation_steps=4,
    fp16=not is_bfloat16_supported(),
    bf16=is_bfloat16_supported(),
    optim="adamw_8bit",
    output_dir="outputs",
)
SFTTrainer(model=model, tokenizer=tokenizer, args=args).train()
"""


def test_unsloths_bf16_probe_reads_as_bf16_and_is_never_edited(tmp_path: Path) -> None:
    workload = script(tmp_path, UNSLOTH_NOTEBOOK, seq_len=None)
    config = workload.config
    assert (config.precision, config.finetune, config.seq_len) == ("bf16", "qlora", 2048)
    planned = plan_patch(workload, [change(workload, "precision", "fp16")])
    assert planned.changes == [] and "not a literal" in planned.dropped[0][1]


OLD_SFTTRAINER = """\
from transformers import AutoModelForCausalLM, TrainingArguments
from trl import SFTTrainer

model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B")
args = TrainingArguments(output_dir="out", per_device_train_batch_size=4, bf16=True)
trainer = SFTTrainer(
    model=model,
    args=args,
    max_seq_length=512,
    packing=True,
)
trainer.train()
"""


def test_sfttrainers_own_length_and_packing_keywords_are_read(tmp_path: Path) -> None:
    # TRL up to v0.12 took max_seq_length and packing in SFTTrainer(...) itself
    workload = script(tmp_path, OLD_SFTTRAINER, seq_len=None)
    assert (workload.config.seq_len, workload.config.packing) == (512, True)
    assert workload.sources["packing"] == "SFTTrainer(packing=) line 10"
    planned = plan_patch(workload, [change(workload, "seq_len", 1024)])
    assert "    max_seq_length=1024," in planned.text


def test_packing_is_patched_where_sfttrainer_takes_it(tmp_path: Path) -> None:
    text = OLD_SFTTRAINER.replace("packing=True", "packing=False")
    workload = script(tmp_path, text, seq_len=None)
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert "    packing=True," in planned.text and "args = TrainingArguments(" in planned.text
    assert "packing" not in planned.text.split("trainer = SFTTrainer(")[0]
