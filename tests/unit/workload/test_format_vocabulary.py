"""Each framework's own keys: files are read as a framework only when their keys are its,
and patches write only keys the framework accepts, within its constraints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, load, write
from pytest_goblin import formats
from pytest_goblin.errors import NotAWorkload, WorkloadError
from pytest_goblin.formats.base import Edit, Unpatchable, check_vocabulary
from pytest_goblin.workload.read import load_workload, plan_patch

FIREFLY = {
    "output_dir": "output/firefly-qwen1.5-7b-sft-qlora",
    "model_name_or_path": "Qwen/Qwen2.5-7B",
    "train_file": "./data/dummy_data.jsonl",
    "template_name": "qwen",
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 16,
    "learning_rate": 2e-4,
    "max_seq_length": 1024,
    "lora_rank": 64,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "use_unsloth": False,
    "gradient_checkpointing": False,
    "optim": "paged_adamw_32bit",
    "fp16": True,
    "dataloader_num_workers": 0,
}
"""The shape of Firefly's train_args/sft/qlora/*.json (its key names; Firefly ships no licence,
so its files are not copied here)."""


def firefly(tmp_path: Path, **changes: object):
    text = json.dumps({**FIREFLY, **changes}, indent=4)
    return write(tmp_path, "w/firefly.json", text)


def test_firefly_json_is_read_by_its_own_reader(tmp_path: Path) -> None:
    workload = firefly(tmp_path)
    config = workload.config
    assert workload.source.format == "firefly"
    assert (config.finetune, config.lora_rank, config.lora_alpha) == ("qlora", 64, 16)
    assert (config.seq_len, config.precision, config.optimizer) == (
        1024,
        "fp16",
        "paged_adamw_32bit",
    )
    assert not config.gradient_checkpointing


def test_a_firefly_patch_writes_firefly_keys_never_llamafactory_ones(tmp_path: Path) -> None:
    workload = firefly(tmp_path)
    planned = plan_patch(
        workload,
        [change(workload, "gradient_checkpointing", True), change(workload, "precision", "bf16")],
    )
    written = json.loads(planned.text)
    assert "disable_gradient_checkpointing" not in written
    assert (written["gradient_checkpointing"], written["bf16"], written["fp16"]) == (
        True,
        True,
        False,
    )


def test_firefly_dpo_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="task_type dpo is preference training") as info:
        firefly(tmp_path, task_type="dpo")
    assert info.value.field == "task_type"


@pytest.mark.parametrize(("mode", "finetune"), [("qlora", "lora"), ("lora", "qlora")])
def test_a_firefly_lora_base_change_is_its_train_mode(
    tmp_path: Path, mode: str, finetune: str
) -> None:
    workload = firefly(tmp_path, train_mode=mode)
    planned = plan_patch(workload, [change(workload, "finetune", finetune)])
    assert json.loads(planned.text)["train_mode"] == finetune
    patched = tmp_path / "w/firefly.json"
    patched.write_text(planned.text, encoding="utf-8")
    assert load_workload(patched).config.finetune == finetune


def test_llamafactory_markers_with_keys_it_refuses_are_an_error_naming_them(
    tmp_path: Path,
) -> None:
    text = yaml.safe_dump(
        {
            "model_name_or_path": "meta-llama/Meta-Llama-3-8B",
            "stage": "sft",
            "cutoff_len": 1024,
            "train_on_everything": True,
        }
    )
    with pytest.raises(WorkloadError) as info:
        write(tmp_path, "w/run.yaml", text)
    message = str(info.value)
    assert info.value.field == "train_on_everything"
    assert "LLaMA-Factory refuses train_on_everything" in message
    assert "LLaMA-Factory v0.9.5" in message
    assert "Considered: LLaMA-Factory" in message


def test_such_a_file_is_collected_so_that_its_error_is_seen() -> None:
    data = {"model_name_or_path": "m", "stage": "sft", "train_on_everything": True}
    assert formats.detect(data) is None
    assert [vocabulary.framework for vocabulary, _ in formats.near_misses(data)] == [
        "LLaMA-Factory"
    ]


def test_galore_keeps_its_optimizer(tmp_path: Path) -> None:
    workload = load(tmp_path, "real/llamafactory/extras_galore_llama3_full_sft.yaml")
    planned = plan_patch(workload, [change(workload, "optimizer", "adamw_torch_fused")])
    assert planned.changes == []
    assert "GaLore builds its optimizer from optim and accepts only" in planned.dropped[0][1]


def test_galore_with_an_optim_llamafactory_rejects_is_an_error(tmp_path: Path) -> None:
    text = "model_name_or_path: meta-llama/Meta-Llama-3-8B\nstage: sft\nfinetuning_type: full\n"
    text += "use_galore: true\noptim: adamw_torch_fused\n"
    with pytest.raises(WorkloadError, match="raises 'Unknown optim'") as info:
        write(tmp_path, "w/galore.yaml", text)
    assert info.value.field == "optim"


def test_axolotl_without_dataloader_keys_reads_axolotls_defaults(tmp_path: Path) -> None:
    workload = load(tmp_path, "real/axolotl/llama-3_fft-8b-liger-fsdp.yaml")
    config = workload.config
    assert (config.dataloader_workers, config.dataloader_pin_memory) == (1, True)
    assert config.dataloader_prefetch_factor == 256


def test_an_axolotl_dataloader_patch_keeps_the_defaults_it_would_switch_off(
    tmp_path: Path,
) -> None:
    workload = load(tmp_path, "real/axolotl/llama-3_fft-8b-liger-fsdp.yaml")
    planned = plan_patch(workload, [change(workload, "dataloader_workers", 4)])
    written = yaml.safe_load(planned.text)
    assert (
        written["dataloader_num_workers"],
        written["dataloader_pin_memory"],
        written["dataloader_prefetch_factor"],
    ) == (4, True, 256)


def test_an_edit_of_a_key_the_framework_does_not_have_is_not_patchable() -> None:
    fmt = formats.BY_NAME["trl"]
    with pytest.raises(Unpatchable, match="TRL has no key 'use_fast_kernels'"):
        check_vocabulary(fmt, {}, "kernels", [Edit(("use_fast_kernels",), True)])
    check_vocabulary(fmt, {}, "batch_size", [Edit(("per_device_train_batch_size",), 2)])


def test_a_trl_preference_config_that_does_not_name_its_trainer_is_refused_by_name(
    tmp_path: Path,
) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/ultrafeedback_binarized\n"
    text += "beta: 0.1\nmax_prompt_length: 512\n"
    path = tmp_path / "w/dpo.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        WorkloadError, match="keys TRL's DPO, ORPO, CPO and KTO configs share"
    ) as info:
        load_workload(path, display="w/dpo.yaml")
    assert info.value.field == "beta"
    assert "`objective: dpo` in the sidecar w/dpo.goblin.yaml" in str(info.value)


SHARED_PREFERENCE = (
    "model_name_or_path: Qwen/Qwen2.5-0.5B\nbeta: 0.1\nmax_prompt_length: 512\n"
    "per_device_train_batch_size: 4\nmax_length: 1024\n"
)


def test_the_sidecar_says_dpotrainer_runs_a_file_of_shared_preference_keys(
    tmp_path: Path,
) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/prefs.goblin.yaml").write_text("objective: dpo\n", encoding="utf-8")
    path = tmp_path / "w/prefs.yaml"
    path.write_text(SHARED_PREFERENCE, encoding="utf-8")
    config = load_workload(path, display="w/prefs.yaml").config
    assert (config.objective, config.reference, config.batch_size) == ("dpo", "model", 4)


def test_a_recipe_directory_named_dpo_says_dpotrainer_runs_it(tmp_path: Path) -> None:
    path = tmp_path / "recipes/qwen/dpo/config_full.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(SHARED_PREFERENCE, encoding="utf-8")
    workload = load_workload(path, display="recipes/qwen/dpo/config_full.yaml")
    assert workload.config.objective == "dpo"
    assert workload.sources["objective"] == "the recipe directory dpo/"


def test_a_recipe_directory_named_after_another_preference_trainer_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "recipes/qwen/orpo/config_full.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(SHARED_PREFERENCE, encoding="utf-8")
    with pytest.raises(WorkloadError, match="recipe directory orpo/, which ORPO runs") as info:
        load_workload(path, display="recipes/qwen/orpo/config_full.yaml")
    assert info.value.field == "beta"


def test_kernels_a_run_already_uses_are_recorded_so_advice_does_not_repeat_them(
    tmp_path: Path,
) -> None:
    from pytest_goblin.kb import load_kb

    workload = load(tmp_path, "real/axolotl/llama-3_fft-8b-liger-fsdp.yaml")
    assert workload.config.extras == {"use_liger_kernel": True}
    assert workload.config.offload_params is True
    assert workload.sources["extras.use_liger_kernel"] == "plugins"
    advice = {rule.id for rule in load_kb().match(workload.config, "rocm-instinct").advisories}
    assert "liger-kernel" not in advice
    without = workload.config.model_copy(update={"extras": {}})
    assert "liger-kernel" in {
        rule.id for rule in load_kb().match(without, "rocm-instinct").advisories
    }


def test_axolotls_cut_cross_entropy_plugin_is_recorded_and_silences_the_liger_advice(
    tmp_path: Path,
) -> None:
    from pytest_goblin.kb import load_kb

    plugin = "plugins:\n  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin\n"
    base = "base_model: meta-llama/Meta-Llama-3-8B\nmicro_batch_size: 1\n"
    base += "gradient_accumulation_steps: 1\nsequence_len: 2048\n"
    config = write(tmp_path, "w/cce.yaml", base + plugin).config
    assert config.extras == {"cut_cross_entropy": True}
    advice = {rule.id for rule in load_kb().match(config, "rocm-instinct").advisories}
    assert "liger-kernel" not in advice
    off = write(tmp_path, "w/off.yaml", base + plugin + "cut_cross_entropy: false\n").config
    assert off.extras == {}
    assert "liger-kernel" in {rule.id for rule in load_kb().match(off, "rocm-instinct").advisories}


def test_trainer_switches_already_on_are_recorded(tmp_path: Path) -> None:
    text = "model_name_or_path: Qwen/Qwen2.5-0.5B\nmax_length: 512\n"
    text += "use_liger_kernel: true\ngroup_by_length: true\n"
    config = write(tmp_path, "w/sft.yaml", text).config
    assert config.extras == {"use_liger_kernel": True, "group_by_length": True}
    lf = "model_name_or_path: meta-llama/Meta-Llama-3-8B\nstage: sft\nenable_liger_kernel: true\n"
    assert write(tmp_path, "w/lf.yaml", lf).config.extras == {"use_liger_kernel": True}


def test_not_a_workload_says_what_a_named_model_file_lacks(tmp_path: Path) -> None:
    path = tmp_path / "w/run.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B\nsave_steps: 10\nmy_flag: 1\n")
    with pytest.raises(NotAWorkload) as info:
        load_workload(path, display="w/run.yaml")
    message = str(info.value)
    assert "it names `model_name_or_path` but none of the keys that mark LLaMA-Factory" in message
    assert "my_flag are not keys `trl sft` parses" in message


def test_spectrum_is_refused_by_name(tmp_path: Path) -> None:
    text = "base_model: meta-llama/Meta-Llama-3-8B\nmicro_batch_size: 1\n"
    text += (
        "plugins:\n  - axolotl.integrations.spectrum.SpectrumPlugin\nspectrum_top_fraction: 0.3\n"
    )
    with pytest.raises(WorkloadError, match="trains only a fraction of the layers") as info:
        write(tmp_path, "w/spectrum.yml", text)
    assert info.value.field == "plugins"
