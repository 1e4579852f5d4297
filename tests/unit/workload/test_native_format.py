"""Specification of the native goblin format: reading, validating, and editing in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.workloads import MISTUNED_YAML, WorkloadFactory
from pytest_goblin.errors import NotAWorkload, WorkloadError
from pytest_goblin.formats import native
from pytest_goblin.schemas import Change
from pytest_goblin.workload.read import Workload, load_workload, patch_diff

COMMENTED = """\
# A LoRA run.
name: commented
model: llama-3-8b   # preset
precision: fp32     # from the tutorial
attention_impl: eager

optimizer: adamw_torch
"""

WITH_SETTINGS = """\
model: llama-3-8b
precision: fp32

goblin:
  threshold: 0.2
"""


def apply_yaml(text: str, **values: object) -> str:
    edited = native.apply(text, ".yaml", {k.replace("__", "."): v for k, v in values.items()})
    yaml.safe_load(edited)
    return edited


def load_bytes(tmp_path: Path, data: bytes, name: str = "w.goblin.yaml") -> Workload:
    path = tmp_path / name
    path.write_bytes(data)
    return load_workload(path, display=f"workloads/{name}")


# --- editing YAML in place -----------------------------------------------------------


def test_apply_keeps_comments_and_key_order() -> None:
    edited = apply_yaml(COMMENTED, precision="bf16", attention_impl="flash")
    assert edited == COMMENTED.replace("fp32  ", "bf16  ").replace("eager", "flash")


def test_apply_replaces_a_scalar_and_keeps_its_trailing_comment() -> None:
    edited = apply_yaml(COMMENTED, precision="bf16")
    assert "precision: bf16     # from the tutorial\n" in edited.splitlines(keepends=True)


def test_apply_leaves_every_other_line_byte_for_byte() -> None:
    edited = apply_yaml(COMMENTED, optimizer="adamw_torch_fused")
    before, after = COMMENTED.splitlines(), edited.splitlines()
    assert [a for a, b in zip(before, after, strict=True) if a != b] == ["optimizer: adamw_torch"]


def test_apply_inserts_a_missing_key_before_the_goblin_section() -> None:
    edited = apply_yaml(WITH_SETTINGS, dataloader_workers=4)
    assert edited == (
        "model: llama-3-8b\nprecision: fp32\ndataloader_workers: 4\n\ngoblin:\n  threshold: 0.2\n"
    )


def test_apply_appends_a_missing_key_at_the_end_without_a_goblin_section() -> None:
    edited = apply_yaml("model: llama-3-8b\nprecision: fp32\n", dataloader_workers=4)
    assert edited == "model: llama-3-8b\nprecision: fp32\ndataloader_workers: 4\n"


def test_apply_keeps_a_missing_final_newline_missing() -> None:
    edited = apply_yaml("model: llama-3-8b\nprecision: fp32", dataloader_workers=4)
    assert edited == "model: llama-3-8b\nprecision: fp32\ndataloader_workers: 4"


def test_apply_adds_an_env_var_to_an_existing_block() -> None:
    text = 'model: llama-3-8b\nenv_vars:\n  A: "1"   # keep\nprecision: fp32\n'
    edited = apply_yaml(text, env_vars__B="2")
    assert edited == 'model: llama-3-8b\nenv_vars:\n  A: "1"   # keep\n  B: "2"\nprecision: fp32\n'


def test_apply_replaces_an_env_var_already_in_the_block() -> None:
    text = 'model: llama-3-8b\nenv_vars:\n    A: "1"\n    B: x\n'
    edited = apply_yaml(text, env_vars__A="0")
    assert edited == 'model: llama-3-8b\nenv_vars:\n    A: "0"\n    B: x\n'


def test_apply_adds_an_env_var_to_a_flow_mapping() -> None:
    text = 'model: llama-3-8b\nenv_vars: {A: "1"}  # flow\nprecision: fp32\n'
    edited = apply_yaml(text, env_vars__B="2")
    assert edited == 'model: llama-3-8b\nenv_vars: {A: "1", B: "2"}  # flow\nprecision: fp32\n'


def test_apply_creates_the_env_vars_block_when_absent() -> None:
    edited = apply_yaml(WITH_SETTINGS, env_vars__HIP_FORCE_DEV_KERNARG="1")
    assert yaml.safe_load(edited)["env_vars"] == {"HIP_FORCE_DEV_KERNARG": "1"}
    assert edited.index("env_vars:") < edited.index("goblin:")


def test_apply_keeps_crlf_line_endings_on_inserted_lines() -> None:
    edited = native.apply(
        "model: llama-3-8b\r\nprecision: fp32\r\n",
        ".yaml",
        {"precision": "bf16", "optimizer": "adamw_torch_fused"},
    )
    assert edited == "model: llama-3-8b\r\nprecision: bf16\r\noptimizer: adamw_torch_fused\r\n"


def test_patch_diff_of_a_file_without_a_final_newline_marks_it(
    workload: WorkloadFactory,
) -> None:
    loaded = workload("model: llama-3-8b\nprecision: fp32")
    diff = patch_diff(loaded, [Change(field="precision", old="fp32", new="bf16", rule_id="r")])
    lines = diff.splitlines()
    removed = lines.index("-precision: fp32")
    assert lines[removed + 1] == "\\ No newline at end of file"


def test_apply_to_json_keeps_the_indent_and_key_order() -> None:
    text = '{\n    "model": "llama-3-8b",\n    "precision": "fp32",\n    "seq_len": 512\n}\n'
    edited = native.apply(text, ".json", {"precision": "bf16", "dataloader_workers": 4})
    assert edited == (
        '{\n    "model": "llama-3-8b",\n    "precision": "bf16",\n    "seq_len": 512,\n'
        '    "dataloader_workers": 4\n}\n'
    )
    assert list(json.loads(edited)) == ["model", "precision", "seq_len", "dataloader_workers"]


def test_patch_diff_of_a_json_workload_is_a_diff_of_the_json_file(
    workload: WorkloadFactory,
) -> None:
    text = '{\n  "model": "llama-3-8b",\n  "precision": "fp32"\n}\n'
    loaded = workload(text, filename="w.goblin.json")
    diff = patch_diff(loaded, [Change(field="precision", old="fp32", new="bf16", rule_id="r")])
    assert diff.splitlines()[:2] == [
        "--- a/workloads/w.goblin.json",
        "+++ b/workloads/w.goblin.json",
    ]
    assert '-  "precision": "fp32"' in diff.splitlines()
    assert '+  "precision": "bf16"' in diff.splitlines()


# --- validation ------------------------------------------------------------------------


def test_a_value_of_the_wrong_type_names_the_file_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, b"model: llama-3-8b\nbatch_size: big\n")
    assert info.value.path == "workloads/w.goblin.yaml"
    assert info.value.field == "batch_size"
    assert str(info.value).startswith("workloads/w.goblin.yaml: field 'batch_size': ")
    assert "'big'" in str(info.value)


def test_an_unknown_key_is_named_as_one(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, b"model: llama-3-8b\nprecision: bf16\nbatchsize: 4\n")
    assert info.value.field == "batchsize"
    assert "unknown key" in str(info.value)


def test_a_bad_goblin_threshold_names_the_settings_field(tmp_path: Path) -> None:
    data = b"model: llama-3-8b\nprecision: bf16\ngoblin:\n  threshold: -1\n"
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, data)
    assert info.value.field == "goblin.threshold"
    assert "greater than 0" in str(info.value)


def test_several_bad_fields_are_all_named(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, b"model: llama-3-8b\nprecision: bf17\nbatch_size: 0\n")
    assert "'precision'" in str(info.value)
    assert "'batch_size'" in str(info.value)


def test_goblin_settings_are_read_from_their_own_section(tmp_path: Path) -> None:
    data = b"model: llama-3-8b\ngoblin:\n  threshold: 0.2\n  ignore: [fused-adamw]\n"
    loaded = load_bytes(tmp_path, data)
    assert loaded.settings.threshold == 0.2
    assert loaded.settings.ignore == ["fused-adamw"]


def test_an_empty_file_is_an_error_saying_so(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"^workloads/w.goblin.yaml: file is empty$"):
        load_bytes(tmp_path, b"")


def test_invalid_yaml_is_an_error_with_the_line_number(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"invalid YAML at line 3, column 1"):
        load_bytes(tmp_path, b"model: llama-3-8b\nprecision: [bf16\n")


def test_invalid_json_is_an_error_with_the_line_number(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"invalid JSON at line 2"):
        load_bytes(tmp_path, b'{"model": "llama-3-8b",\n}', name="w.goblin.json")


def test_a_file_that_is_not_utf8_is_an_error_saying_so(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"not UTF-8 text"):
        load_bytes(tmp_path, b"model: llama-3-8b\nname: \xff\xfe\n")


@pytest.mark.parametrize("data", [b"- model: llama-3-8b\n", b"just a string\n", b"42\n"])
def test_content_that_is_not_a_mapping_is_not_a_workload(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NotAWorkload, match=r"^workloads/w.goblin.yaml: not a workload"):
        load_bytes(tmp_path, data)


def test_read_refuses_a_non_mapping_with_its_type() -> None:
    with pytest.raises(NotAWorkload, match=r"a workload is a mapping of fields, got list"):
        native.read(["model"], "w.yaml")


def test_python_yaml_tags_are_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = (
        f"model: llama-3-8b\nprecision: !!python/object/apply:os.system ['touch {marker}']\n"
    ).encode()
    with pytest.raises(WorkloadError, match=r"invalid YAML at line 2"):
        load_bytes(tmp_path, data)
    assert not marker.exists()


# --- the model architecture ------------------------------------------------------------


def test_a_hugging_face_model_id_resolves_its_preset(tmp_path: Path) -> None:
    loaded = load_bytes(tmp_path, b"model_name: meta-llama/Meta-Llama-3-8B\nprecision: bf16\n")
    assert loaded.config.model is not None
    assert loaded.config.model.name == "llama-3-8b"


def test_an_unknown_model_without_dims_is_an_error_naming_model(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, b"model_name: acme/mystery-7b\nprecision: bf16\n")
    assert info.value.field == "model"
    assert "acme/mystery-7b" in str(info.value)


def test_an_unknown_preset_name_is_an_error_naming_model(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as info:
        load_bytes(tmp_path, b"model: llama-9\nprecision: bf16\n")
    assert info.value.field == "model"
    assert "llama-3-8b" in str(info.value)


def test_explicit_dims_give_a_custom_architecture(tmp_path: Path) -> None:
    data = (
        b"model_name: acme/tiny\n"
        b"model: {layers: 2, hidden: 256, intermediate: 512, heads: 4, vocab: 1000}\n"
    )
    arch = load_bytes(tmp_path, data).config.arch
    assert (arch.name, arch.layers, arch.hidden, arch.heads, arch.n_kv_heads) == (
        "custom",
        2,
        256,
        4,
        4,
    )


def test_the_workload_name_defaults_to_the_file_name(workload: WorkloadFactory) -> None:
    text = MISTUNED_YAML.replace("name: llama-mistuned\n", "")
    assert workload(text, filename="my-run.goblin.yaml").name == "my-run"
