"""DPO as its trainers run it: chosen and rejected sequences per example, and a reference
that is a frozen copy, the model with its adapter disabled, precomputed, or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers.format_support import change
from helpers.workloads import LLAMA_LORA
from pytest_goblin.catalogue.architectures import lookup
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import WorkloadError
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import load_workload, plan_patch

LORA: dict[str, Any] = {**LLAMA_LORA, "batch_size": 2, "gradient_checkpointing": True}
FULL: dict[str, Any] = {**LORA, "finetune": "full", "lora_rank": None, "model": "qwen2.5-0.5b"}
RUNNER = AnalyticModel(get_device("h100"))


def config(base: dict[str, Any], **changes: Any) -> WorkloadConfig:
    return WorkloadConfig(**{**base, **changes})


def test_a_dpo_step_runs_chosen_and_rejected_sequences_of_every_example() -> None:
    dpo = config(LORA, objective="dpo", grad_accum_steps=4)
    assert dpo.sequences_per_example == 2
    assert dpo.tokens_per_step == 2 * 2 * 2048 * 4


def test_the_reference_defaults_as_trl_chooses_it_and_is_dpos_alone() -> None:
    assert config(LORA, objective="dpo").reference == "adapter"
    assert config(FULL, objective="dpo").reference == "model"
    with pytest.raises(ValidationError, match="reference 'model' is for objective dpo"):
        config(LORA, reference="model")


@pytest.mark.parametrize("base", [LORA, FULL], ids=["lora", "full"])
def test_without_a_reference_forward_dpo_costs_sft_at_twice_the_batch(base: dict[str, Any]) -> None:
    doubled = config(base, batch_size=2 * base["batch_size"])
    for reference in ("precomputed", "none"):
        dpo = config(base, objective="dpo", reference=reference)
        assert RUNNER.step_budget(dpo) == RUNNER.step_budget(doubled)
        assert RUNNER.memory(dpo) == RUNNER.memory(doubled)
        assert dpo.tokens_per_step == doubled.tokens_per_step


def test_the_reference_forward_costs_time_whether_a_copy_or_the_disabled_adapter() -> None:
    precomputed = RUNNER.step_budget(config(LORA, objective="dpo", reference="precomputed"))
    adapter = RUNNER.step_budget(config(LORA, objective="dpo", reference="adapter"))
    copy = RUNNER.step_budget(config(LORA, objective="dpo", reference="model"))
    assert adapter.total == pytest.approx(copy.total)
    # a forward without backward: more than nothing, less than the policy's own pass
    extra = adapter.total - precomputed.total
    assert 0 < extra < precomputed.total / 2


def test_only_a_reference_copy_holds_a_second_set_of_weights() -> None:
    arch = lookup("qwen2.5-0.5b")
    assert arch is not None
    precomputed = RUNNER.memory(config(FULL, objective="dpo", reference="precomputed"))
    copy = RUNNER.memory(config(FULL, objective="dpo", reference="model"))
    # the policy's fp32 master weights, plus the frozen copy in bf16
    assert copy.weights_gb - precomputed.weights_gb == pytest.approx(2 * arch.total_params / 1e9)
    assert copy.activations_gb == precomputed.activations_gb
    lora_adapter = RUNNER.memory(config(LORA, objective="dpo", reference="adapter"))
    lora_none = RUNNER.memory(config(LORA, objective="dpo", reference="none"))
    assert lora_adapter == lora_none


def test_a_reference_copy_is_split_like_the_weights_under_zero_3() -> None:
    one = RUNNER.memory(config(FULL, objective="dpo", precision="bf16"))
    eight = RUNNER.memory(
        config(FULL, objective="dpo", strategy="deepspeed", world_size=8, zero_stage=3)
    )
    assert eight.weights_gb < one.weights_gb / 4


# --- readers -------------------------------------------------------------------------------

AXOLOTL = (
    "base_model: NousResearch/Meta-Llama-3.1-8B\nrl: dpo\nmicro_batch_size: 2\n"
    "gradient_accumulation_steps: 1\nsequence_len: 2048\n"
)
LLAMAFACTORY = (
    "model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct\nstage: dpo\ndo_train: true\n"
    "cutoff_len: 2048\nbf16: true\n"
)
TRL = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/ultrafeedback_binarized\n"


def read(tmp_path: Path, text: str) -> WorkloadConfig:
    path = tmp_path / "w.yaml"
    path.write_text(text, encoding="utf-8")
    return load_workload(path, display="w.yaml").config


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        (AXOLOTL, "model"),
        (AXOLOTL + "adapter: lora\nlora_r: 16\n", "adapter"),
        (AXOLOTL + "adapter: lora\nlora_r: 16\nrl_adapter_ref_model: true\n", "model"),
        (AXOLOTL + "adapter: lora\nlora_r: 16\nprecompute_ref_log_probs: true\n", "precomputed"),
        (AXOLOTL.replace("rl: dpo", "rl: ipo"), "model"),
        (LLAMAFACTORY + "finetuning_type: lora\n", "adapter"),
        (LLAMAFACTORY + "finetuning_type: full\n", "model"),
        (LLAMAFACTORY + "finetuning_type: lora\nref_model: my/ref\n", "model"),
        (LLAMAFACTORY + "finetuning_type: lora\npref_loss: simpo\n", "none"),
        (TRL + "rpo_alpha: 1.0\n", "model"),
        (TRL + "rpo_alpha: 1.0\nuse_peft: true\n", "adapter"),
        (TRL + "use_weighting: true\nuse_peft: true\nforce_use_ref_model: true\n", "model"),
        (TRL + "rpo_alpha: 1.0\nprecompute_ref_log_probs: true\n", "precomputed"),
        (TRL + "reference_free: true\n", "none"),
    ],
)
def test_dpo_files_are_read_as_dpo_with_the_reference_their_trainer_uses(
    tmp_path: Path, text: str, reference: str
) -> None:
    found = read(tmp_path, text)
    assert (found.objective, found.reference) == ("dpo", reference)
    assert found.seq_len == (1024 if text.startswith("model_name_or_path: Qwen") else 2048)


def test_a_trl_dpo_file_takes_dpoconfigs_defaults(tmp_path: Path) -> None:
    # TRL v1.9.0 dpo_config.py (learning_rate 1e-6, max_length 1024) and base_config.py
    # (gradient_checkpointing True, which DPOConfig has had since v0.24.0)
    found = read(tmp_path, TRL + "rpo_alpha: 1.0\n")
    assert (found.lr, found.gradient_checkpointing, found.seq_len) == (1e-6, True, 1024)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (AXOLOTL.replace("rl: dpo", "rl: kto"), "rl", "rl: kto is preference"),
        (LLAMAFACTORY.replace("stage: dpo", "stage: kto"), "stage", "stage 'kto' is preference"),
        (LLAMAFACTORY + "pref_loss: dpop\n", "pref_loss", "unknown pref_loss 'dpop'"),
    ],
)
def test_other_preference_training_is_refused_by_name(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(WorkloadError, match=message) as info:
        read(tmp_path, text)
    assert info.value.field == field


def test_a_trl_dpo_file_is_never_patched_with_sfts_packing(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(TRL + "rpo_alpha: 1.0\n", encoding="utf-8")
    workload = load_workload(path, display="w.yaml")
    planned = plan_patch(workload, [change(workload, "packing", True)])
    assert not planned.changes
    assert "DPOConfig has no packing" in planned.dropped[0][1]


def test_no_dpo_file_is_patched_to_pack(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(AXOLOTL + "adapter: lora\nlora_r: 16\n", encoding="utf-8")
    workload = load_workload(path, display="w.yaml")
    planned = plan_patch(
        workload, [change(workload, "packing", True), change(workload, "dataloader_workers", 4)]
    )
    assert [c.field for c in planned.changes] == ["dataloader_workers"]
    assert "axolotl refuses sample_packing with rl:" in planned.dropped[0][1]
