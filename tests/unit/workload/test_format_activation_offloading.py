"""Specification of how the readers take axolotl's and TRL's ``activation_offloading``: which
implementation runs (what leaves the device), the schedules refused by name because the
analytic model does not price them, and patches that keep the file valid for its framework."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.format_support import change, write
from pytest_goblin.errors import WorkloadError
from pytest_goblin.workload.read import plan_patch

AXOLOTL = (
    "base_model: meta-llama/Llama-3.2-1B\nmicro_batch_size: 2\ngradient_accumulation_steps: 1\n"
    "sequence_len: 2048\n"
    "datasets:\n  - path: tatsu-lab/alpaca\n    type: alpaca\n"
)
LORA = AXOLOTL + "adapter: lora\nlora_r: 16\nlora_target_linear: true\n"
TRL = "model_name_or_path: Qwen/Qwen2.5-0.5B\nper_device_train_batch_size: 4\n"


@pytest.mark.parametrize("mode", ["true", "disk"])
def test_axolotl_full_fine_tune_offloading_is_trls_offloader_over_the_step(
    tmp_path: Path, mode: str
) -> None:
    text = AXOLOTL + f"gradient_checkpointing: true\nactivation_offloading: {mode}\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.activation_offloading
    assert workload.config.activation_offloader == "axolotl"
    assert workload.sources["activation_offloading"] == "activation_offloading"


@pytest.mark.parametrize(
    ("value", "offloader"), [("offload", "axolotl"), ("offload_disk", "axolotl")]
)
def test_axolotl_deprecated_checkpointing_spellings_turn_offloading_on(
    tmp_path: Path, value: str, offloader: str
) -> None:
    workload = write(tmp_path, "w/a.yaml", AXOLOTL + f"gradient_checkpointing: {value}\n")
    assert workload.config.gradient_checkpointing
    assert workload.config.activation_offloading
    assert workload.config.activation_offloader == offloader
    assert workload.sources["activation_offloading"] == "gradient_checkpointing"


def test_axolotl_hidden_states_offloads_only_the_layer_inputs(tmp_path: Path) -> None:
    text = LORA + "gradient_checkpointing: true\nactivation_offloading: hidden_states\n"
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.activation_offloading
    assert workload.config.activation_offloader == "axolotl-hidden-states"


def test_axolotl_offloading_without_checkpointing_is_refused_as_axolotl_does(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkloadError, match="requires gradient_checkpointing") as info:
        write(tmp_path, "w/a.yaml", AXOLOTL + "activation_offloading: true\n")
    assert info.value.field == "activation_offloading"


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        (AXOLOTL + "activation_offloading: legacy\n", "activation_offloading", "synchronously"),
        (
            LORA + "activation_offloading: hidden_states\n"
            "gradient_checkpointing_kwargs:\n  use_reentrant: true\n",
            "gradient_checkpointing_kwargs",
            "ALST-style",
        ),
        (LORA + "activation_offloading: true\n", "activation_offloading", "adapter: lora"),
        (
            AXOLOTL + "adapter: qlora\nload_in_4bit: true\nactivation_offloading: true\n"
            "gradient_checkpointing_kwargs:\n  use_reentrant: false\n",
            "activation_offloading",
            "prepare_model_for_kbit_training",
        ),
        (AXOLOTL + "activation_offloading: cpu\n", "activation_offloading", "none of axolotl"),
    ],
)
def test_axolotl_offloading_schedules_not_modelled_are_refused_by_name(
    tmp_path: Path, text: str, field: str, match: str
) -> None:
    with pytest.raises(WorkloadError, match=match) as info:
        write(tmp_path, "w/a.yaml", "gradient_checkpointing: true\n" + text)
    assert info.value.field == field


def test_axolotl_lora_with_non_reentrant_checkpointing_is_modelled(tmp_path: Path) -> None:
    text = (
        LORA + "gradient_checkpointing: true\nactivation_offloading: true\n"
        "gradient_checkpointing_kwargs:\n  use_reentrant: false\n"
    )
    workload = write(tmp_path, "w/a.yaml", text)
    assert workload.config.activation_offloader == "axolotl"


def test_axolotl_checkpointing_off_patch_turns_offloading_off_too(tmp_path: Path) -> None:
    text = AXOLOTL + "gradient_checkpointing: true\nactivation_offloading: true\n"
    workload = write(tmp_path, "w/a.yaml", text)
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    data = yaml.safe_load(planned.text)
    assert data["gradient_checkpointing"] is False
    assert data["activation_offloading"] is False
    reread = write(tmp_path, "w/b.yaml", planned.text)
    assert not reread.config.activation_offloading


def test_trl_activation_offloading_is_trls_offloader_with_or_without_checkpointing(
    tmp_path: Path,
) -> None:
    on = write(tmp_path, "w/a.yaml", TRL + "activation_offloading: true\n")
    assert on.config.activation_offloading and on.config.gradient_checkpointing
    assert on.config.activation_offloader == "trl"
    assert on.sources["activation_offloading"] == "activation_offloading"
    text = TRL + "activation_offloading: true\ngradient_checkpointing: false\n"
    alone = write(tmp_path, "w/b.yaml", text)
    assert alone.config.activation_offloading and not alone.config.gradient_checkpointing
    dpo = write(
        tmp_path, "w/c.yaml", TRL + "beta: 0.1\nrpo_alpha: 0.5\nactivation_offloading: true\n"
    )
    assert dpo.config.objective == "dpo" and dpo.config.activation_offloader == "trl"
    off = write(tmp_path, "w/d.yaml", TRL + "dataset_text_field: text\n").config
    assert not off.activation_offloading and off.activation_offloader is None


def test_trl_checkpointing_off_patch_keeps_offloading_on(tmp_path: Path) -> None:
    workload = write(tmp_path, "w/a.yaml", TRL + "activation_offloading: true\n")
    planned = plan_patch(workload, [change(workload, "gradient_checkpointing", False)])
    data = yaml.safe_load(planned.text)
    assert data["gradient_checkpointing"] is False and data["activation_offloading"] is True
    assert write(tmp_path, "w/b.yaml", planned.text).config.activation_offloading


def test_trl_offloading_beside_reentrant_checkpointing_is_refused(tmp_path: Path) -> None:
    text = TRL + "activation_offloading: true\ngradient_checkpointing_kwargs:\n"
    with pytest.raises(WorkloadError, match="reentrant checkpointing") as info:
        write(tmp_path, "w/a.yaml", text + "  use_reentrant: true\n")
    assert info.value.field == "activation_offloading"
    plain = write(tmp_path, "w/b.yaml", text + "  use_reentrant: false\n")
    assert plain.config.activation_offloading


def test_trl_offloading_under_peft_and_zero3_is_refused_as_trl_forces_reentrant(
    tmp_path: Path,
) -> None:
    text = (
        TRL + "use_peft: true\nactivation_offloading: true\n"
        "deepspeed:\n  zero_optimization:\n    stage: 3\n"
    )
    with pytest.raises(WorkloadError, match="PEFT under DeepSpeed ZeRO-3"):
        write(tmp_path, "w/a.yaml", text)
    full = text.replace("use_peft: true\n", "")
    assert write(tmp_path, "w/b.yaml", full).config.activation_offloader == "trl"


def test_trl_reentrant_checkpointing_given_as_json_is_refused_too(tmp_path: Path) -> None:
    text = TRL + "activation_offloading: true\n"
    kwargs = "gradient_checkpointing_kwargs: '{\"use_reentrant\": true}'\n"
    with pytest.raises(WorkloadError, match="reentrant checkpointing"):
        write(tmp_path, "w/a.yaml", text + kwargs)
