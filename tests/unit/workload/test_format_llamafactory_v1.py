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
