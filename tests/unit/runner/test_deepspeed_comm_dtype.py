"""DeepSpeed reduces gradients in its config's ``communication_data_type``: the readers take it
from an inline DeepSpeed config and the analytic model prices the reduction bytes with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import workloads
from helpers.format_support import write
from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.errors import WorkloadError
from pytest_goblin.formats.deepspeed import zero_fields
from pytest_goblin.runner.analytic import AnalyticModel, reduced_gradient_bytes
from pytest_goblin.schemas import WorkloadConfig

TRL = "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: trl-lib/Capybara\nbf16: true\n"
AXOLOTL = (
    "base_model: NousResearch/Meta-Llama-3.1-8B\nmicro_batch_size: 1\n"
    "gradient_accumulation_steps: 4\nsequence_len: 2048\nbf16: true\n"
)


def config(**fields: Any) -> WorkloadConfig:
    return workloads.sharded_llama(
        **({"strategy": "deepspeed", "zero_stage": 2, "grad_accum_steps": 4} | fields)
    )


@pytest.mark.parametrize(
    ("dtype", "expected"), [(None, 2.0), ("fp32", 4.0), ("bf16", 2.0), ("fp16", 2.0)]
)
def test_deepspeed_reduces_in_its_communication_data_type(
    dtype: str | None, expected: float
) -> None:
    cfg = config(communication_data_type=dtype)
    assert reduced_gradient_bytes(cfg, cfg.precision) == expected
    # an fp32 run without one reduces in fp32; with one, in that dtype
    fp32 = config(precision="fp32", communication_data_type=dtype)
    assert reduced_gradient_bytes(fp32, "fp32") == (4.0 if dtype is None else expected)


def test_fp32_reductions_cost_more_than_the_default_16_bit_ones() -> None:
    model = AnalyticModel(get_device("h100"))
    default = model.step_budget(config()).comm_excess
    assert model.step_budget(config(communication_data_type="fp32")).comm_excess > default


def test_fsdp_ignores_deepspeeds_setting() -> None:
    cfg = config(strategy="fsdp", communication_data_type="fp32")
    assert reduced_gradient_bytes(cfg, cfg.precision) == 2.0


@pytest.mark.parametrize(
    "text",
    [
        TRL + "deepspeed:\n  communication_data_type: FP32\n  zero_optimization: {stage: 2}\n",
        AXOLOTL + "deepspeed:\n  communication_data_type: fp32\n  zero_optimization: {stage: 2}\n",
    ],
    ids=["trainer", "axolotl"],
)
def test_readers_take_it_from_an_inline_config(tmp_path: Path, text: str) -> None:
    cfg = write(tmp_path, "w/a.yaml", text).config
    assert (cfg.strategy, cfg.zero_stage, cfg.communication_data_type) == ("deepspeed", 2, "fp32")


def test_unset_or_null_is_deepspeeds_default(tmp_path: Path) -> None:
    # an inline config or a shipped file (none sets it) decides it: DeepSpeed's default
    assert (
        zero_fields({"communication_data_type": None}, "x", "d")["communication_data_type"] is None
    )
    assert zero_fields("deepspeed_configs/zero2.json", "x", "d")["communication_data_type"] is None
    text = TRL + "deepspeed:\n  zero_optimization: {stage: 3}\n"
    assert write(tmp_path, "w/a.yaml", text).config.communication_data_type is None
    # a file the workload only names is not read: a sidecar states it
    assert "communication_data_type" not in zero_fields("my/ds.json", "x", "d")


def test_a_sidecar_gives_it_for_a_config_file_outside_the_workload(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a.goblin.yaml").write_text("world_size: 8\ncommunication_data_type: fp32\n")
    cfg = write(tmp_path, "w/a.yaml", TRL + "deepspeed: my/ds_config.json\n").config
    assert (cfg.strategy, cfg.communication_data_type) == ("deepspeed", "fp32")
    # where the inline config decides it, a different sidecar value is an error
    with pytest.raises(WorkloadError, match="communication_data_type"):
        write(tmp_path, "w/a.yaml", TRL + "deepspeed:\n  zero_optimization: {stage: 2}\n")


@pytest.mark.parametrize("value", ["fp8", "auto", 16])
def test_a_value_deepspeed_refuses_names_the_file_and_field(tmp_path: Path, value: Any) -> None:
    text = TRL + f"deepspeed:\n  communication_data_type: {value}\n"
    with pytest.raises(WorkloadError, match="communication_data_type") as raised:
        write(tmp_path, "w/a.yaml", text)
    assert raised.value.field == "deepspeed.communication_data_type"
    assert "w/a.yaml" in str(raised.value)
