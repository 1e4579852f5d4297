"""TRL's SFT loss as TRL v1.9.0 resolves it: an unset ``loss_type`` is ``chunked_nll``
(since v1.7.0) unless ``use_liger_kernel`` is on, recorded as ``extras.chunked_nll`` so
the analytic model prices the chunked loss and the Liger advice is not repeated."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.format_support import write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.kb import load_kb
from pytest_goblin.schemas import WorkloadConfig
from pytest_goblin.workload.read import Workload

TRL = "model_name_or_path: meta-llama/Meta-Llama-3-8B\nmax_length: 4096\n"
CHUNKED = {"chunked_nll": 256}


def trl(tmp_path: Path, extra: str = "") -> Workload:
    return write(tmp_path, "w/sft.yaml", TRL + extra)


def liger_advised(config: WorkloadConfig) -> bool:
    return "liger-kernel" in {rule.id for rule in load_kb().match(config, "cuda").advisories}


def test_an_unset_loss_type_is_trls_chunked_nll_and_silences_the_liger_advice(
    tmp_path: Path,
) -> None:
    workload = trl(tmp_path)
    assert workload.config.extras == CHUNKED
    assert "extras.chunked_nll" not in workload.sources  # TRL's default, not the file's
    assert not liger_advised(workload.config)


@pytest.mark.parametrize("loss", ["nll", "dft"])
def test_nll_and_dft_keep_the_full_logits_and_get_the_liger_advice(
    tmp_path: Path, loss: str
) -> None:
    config = trl(tmp_path, f"loss_type: {loss}\n").config
    assert config.extras == {}
    assert liger_advised(config)


def test_an_explicit_chunked_nll_is_recorded_from_its_key(tmp_path: Path) -> None:
    workload = trl(tmp_path, "loss_type: chunked_nll\n")
    assert workload.config.extras == CHUNKED
    assert workload.sources["extras.chunked_nll"] == "loss_type"


def test_use_liger_kernel_makes_trls_default_nll_with_liger_s_fused_loss(tmp_path: Path) -> None:
    assert trl(tmp_path, "use_liger_kernel: true\n").config.extras == {"use_liger_kernel": True}


def test_chunked_nll_beside_liger_is_refused_as_trl_refuses_it(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="not compatible with `use_liger_kernel=True`") as info:
        trl(tmp_path, "use_liger_kernel: true\nloss_type: chunked_nll\n")
    assert info.value.field == "loss_type"


def test_an_unknown_loss_type_names_the_values_sftconfig_accepts(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="nll, dft, chunked_nll") as info:
        trl(tmp_path, "loss_type: sigmoid\n")
    assert info.value.field == "loss_type"


def test_chunked_nll_under_a_lora_on_lm_head_is_refused_as_trl_refuses_it(
    tmp_path: Path,
) -> None:
    lora = "use_peft: true\nlora_target_modules: [q_proj, v_proj, lm_head]\n"
    with pytest.raises(WorkloadError, match="lm_head") as info:
        trl(tmp_path, lora)
    assert "unset: chunked_nll" in str(info.value)
    config = trl(tmp_path, lora + "loss_type: nll\n").config
    assert config.extras == {} and "lm_head" in config.lora_targets


def test_dpo_s_loss_type_is_its_preference_loss_not_sfts(tmp_path: Path) -> None:
    config = trl(tmp_path, "beta: 0.1\nloss_type: sigmoid\nrpo_alpha: 0.5\n").config
    assert config.objective == "dpo"
    assert "chunked_nll" not in config.extras


SFT_CONFIG = """\
from trl import SFTConfig, SFTTrainer
args = SFTConfig(output_dir="o", max_length=2048{loss})
SFTTrainer(model="Qwen/Qwen2.5-7B", args=args).train()
"""
TRAINING_ARGUMENTS = """\
{pip}from transformers import TrainingArguments
from trl import SFTTrainer
args = TrainingArguments(output_dir="o", per_device_train_batch_size=4)
SFTTrainer(model="Qwen/Qwen2.5-7B", args=args).train()
"""


def script(tmp_path: Path, text: str) -> Workload:
    """Both shapes give a sequence length: SFTConfig's max_length, SFTTrainer's 1024."""
    return write(tmp_path, "w/train.py", text)


def test_a_scripts_sftconfig_follows_trls_loss_default(tmp_path: Path) -> None:
    assert script(tmp_path, SFT_CONFIG.format(loss="")).config.extras == CHUNKED
    nll = SFT_CONFIG.format(loss=', loss_type="nll"')
    assert script(tmp_path, nll).config.extras == {}


def test_training_arguments_handed_to_sft_trainer_take_sftconfigs_loss(tmp_path: Path) -> None:
    workload = script(tmp_path, TRAINING_ARGUMENTS.format(pip=""))
    assert workload.config.extras == CHUNKED
    assert workload.sources["extras.chunked_nll"].startswith("SFTTrainer() line 4")


def test_a_script_that_installs_a_trl_before_1_7_trains_with_nll(tmp_path: Path) -> None:
    for pin, extras in (("1.6.0", {}), ("1.7.0", CHUNKED)):
        pip = f"get_ipython().system('pip install -q trl=={pin} peft')\n"
        assert script(tmp_path, TRAINING_ARGUMENTS.format(pip=pip)).config.extras == extras
        sft = pip + SFT_CONFIG.format(loss="")
        assert script(tmp_path, sft).config.extras == extras
