"""The collectives rules whose change is a setting of the run are patches written into
each format's own keys: DDP's find_unused_parameters, RCCL's environment."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml

from pytest_goblin.kb.loader import load_kb
from pytest_goblin.schemas import Change, WorkloadConfig
from pytest_goblin.workload.read import load_workload, plan_patch

KB = load_kb()
FIND_UNUSED = KB.get("ddp-find-unused-parameters-off")
CHANNELS = KB.get("rccl-min-channels")


def off(old: object = None) -> Change:
    return Change(field="ddp_find_unused_parameters", old=old, new=False, rule_id=FIND_UNUSED.id)


def test_find_unused_patch_fires_where_the_run_has_it_on() -> None:
    on = WorkloadConfig(model="llama-3-8b", world_size=8, strategy="ddp")
    assert FIND_UNUSED.matches(on)
    patched = FIND_UNUSED.apply(on)
    assert patched.ddp_find_unused_parameters is False
    assert patched.find_unused_parameters is False
    assert not FIND_UNUSED.matches(patched)  # a change in place never fires again


def test_rccl_channels_patch_sets_the_variable_once() -> None:
    config = WorkloadConfig(model="llama-3-8b", world_size=8, strategy="ddp")
    assert CHANNELS.kind == "patch"
    patched = CHANNELS.apply(config)
    assert patched.env_vars == {"NCCL_MIN_NCHANNELS": "112"}
    assert not CHANNELS.matches(patched)


FILES = {
    "args.json": (
        json.dumps(
            {
                "model_name_or_path": "meta-llama/Meta-Llama-3-8B",
                "output_dir": "out",
                "per_device_train_batch_size": 4,
                "gradient_accumulation_steps": 2,
                "bf16": True,
                "block_size": 1024,
                "ddp_find_unused_parameters": True,
            }
        ),
        '"ddp_find_unused_parameters": false',
    ),
    "sft.yaml": (
        "model_name_or_path: meta-llama/Meta-Llama-3-8B\nmax_length: 1024\n"
        "per_device_train_batch_size: 4\n",
        "ddp_find_unused_parameters: false",
    ),
    "axolotl.yaml": (
        "base_model: meta-llama/Meta-Llama-3-8B\nsequence_len: 1024\nmicro_batch_size: 2\n"
        "gradient_accumulation_steps: 4\nlearning_rate: 0.0002\noptimizer: adamw_torch\n"
        "bf16: true\nddp_find_unused_parameters: true\n",
        "ddp_find_unused_parameters: false",
    ),
    "llamafactory.yaml": (
        "model_name_or_path: meta-llama/Meta-Llama-3-8B\nstage: sft\ndo_train: true\n"
        "finetuning_type: full\ntemplate: llama3\ncutoff_len: 1024\n"
        "per_device_train_batch_size: 2\nbf16: true\n",
        "ddp_find_unused_parameters: false",
    ),
    "goblin.yaml": (
        "model: llama-3-8b\nworld_size: 8\nstrategy: ddp\n",
        "ddp_find_unused_parameters: false",
    ),
    "train.py": (
        "from transformers import Trainer, TrainingArguments\n"
        "args = TrainingArguments(output_dir='out', per_device_train_batch_size=4, "
        "bf16=True, ddp_find_unused_parameters=True)\n"
        "model = AutoModelForCausalLM.from_pretrained('meta-llama/Meta-Llama-3-8B')\n"
        "Trainer(model=model, args=args).train()\n",
        "ddp_find_unused_parameters=False",
    ),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_find_unused_patch_is_written_in_each_format(tmp_path: Path, name: str) -> None:
    text, written = FILES[name]
    path = tmp_path / name
    path.write_text(text)
    if name == "train.py":  # the script's tokenizer decides its sequence length
        (tmp_path / "train.goblin.yaml").write_text("seq_len: 1024\n")
    workload = load_workload(path)
    planned = plan_patch(workload, [off(workload.config.ddp_find_unused_parameters)])
    assert not planned.dropped, planned.dropped
    assert any(line.startswith("+") and written in line for line in planned.diff.splitlines())
    path.write_text(planned.text)
    assert load_workload(path).config.find_unused_parameters is False


def test_frameworks_defaults_are_read() -> None:
    """Unset, axolotl passes False under DDP and LLaMA-Factory False for LoRA; the Trainer
    formats leave it to the Trainer (on without checkpointing)."""
    axolotl = {
        "base_model": "meta-llama/Meta-Llama-3-8B",
        "sequence_len": 1024,
        "micro_batch_size": 1,
        "gradient_accumulation_steps": 1,
    }
    assert _read(axolotl, "a.yaml").ddp_find_unused_parameters is False
    lora = {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B",
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "template": "llama3",
    }
    assert _read(lora, "l.yaml").ddp_find_unused_parameters is False
    trl = {"model_name_or_path": "meta-llama/Meta-Llama-3-8B", "max_length": 512}
    assert _read(trl, "t.yaml").ddp_find_unused_parameters is None


def _read(data: dict[str, object], name: str) -> WorkloadConfig:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(yaml.safe_dump(data))
        return load_workload(path).config


def test_environment_patch_goes_where_the_format_has_an_environment(tmp_path: Path) -> None:
    change = Change(field="env_vars.NCCL_MIN_NCHANNELS", old=None, new="112", rule_id=CHANNELS.id)
    native = tmp_path / "goblin.yaml"
    native.write_text("model: llama-3-8b\nworld_size: 8\n")
    planned = plan_patch(load_workload(native), [change])
    assert not planned.dropped and "NCCL_MIN_NCHANNELS" in planned.diff
    args = tmp_path / "args.json"
    args.write_text(FILES["args.json"][0])
    refused = plan_patch(load_workload(args), [change])
    assert [c.field for c, _ in refused.dropped] == ["env_vars.NCCL_MIN_NCHANNELS"]
