"""An item that errors while its file is read still reports the format the file was
recognised as; a file whose format was never recognised reports none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.errors import WorkloadError
from pytest_goblin.workload.read import load_workload

AXOLOTL_UNKNOWN_MODEL = """\
base_model: someorg/unreleased-model-9b
adapter: lora
lora_r: 16
sequence_len: 2048
micro_batch_size: 2
gradient_accumulation_steps: 1
bf16: true
"""


def errored_result(pytester: pytest.Pytester, name: str, text: str) -> dict[str, Any]:
    (pytester.path / name).write_text(text)
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", "--goblin-json=report.json", name
    )
    result.assert_outcomes(errors=1)
    (workload,) = json.loads((pytester.path / "report.json").read_text())["workloads"]
    assert workload["outcome"] == "error"
    return workload


def test_an_axolotl_file_with_an_unknown_model_reports_format_axolotl(
    pytester: pytest.Pytester,
) -> None:
    workload = errored_result(pytester, "train.yaml", AXOLOTL_UNKNOWN_MODEL)
    assert workload["format"] == "axolotl"
    assert "someorg/unreleased-model-9b" in workload["error"]


def test_a_native_file_with_a_bad_field_reports_format_goblin(pytester: pytest.Pytester) -> None:
    workload = errored_result(pytester, "w.goblin.yaml", "model: llama-3-8b\nbatch_size: many\n")
    assert workload["format"] == "goblin"


def test_a_file_that_is_not_valid_yaml_reports_no_format(pytester: pytest.Pytester) -> None:
    workload = errored_result(pytester, "w.goblin.yaml", "model: [llama-3-8b\n")
    assert workload["format"] is None


def test_the_read_error_carries_the_format_the_file_was_recognised_as(
    tmp_path: Path,
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(AXOLOTL_UNKNOWN_MODEL)
    with pytest.raises(WorkloadError) as caught:
        load_workload(path)
    assert caught.value.format == "axolotl"
