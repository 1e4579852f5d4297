"""Specification of the in-place YAML editor: only the lines of changed values move."""

from __future__ import annotations

from typing import Any

import yaml

from pytest_goblin.formats.yaml_edit import YamlText

TORCHTUNE_BLOCKS = """\
# optimizer settings
optimizer:
  _component_: torch.optim.AdamW
  lr: 2e-5
  fused: False   # foreach is the default
dataset:
  _component_: torchtune.datasets.alpaca_cleaned_dataset
compile: False
"""


def edit(text: str, path: str, value: Any, **options: Any) -> str:
    document = YamlText(text)
    document.set(path.split("."), value, **options)
    edited = document.text()
    yaml.safe_load(edited)
    return edited


def test_a_nested_value_is_replaced_and_keeps_its_comment_and_spelling() -> None:
    edited = edit(TORCHTUNE_BLOCKS, "optimizer.fused", True)
    assert "  fused: True   # foreach is the default\n" in edited
    assert edited.replace("fused: True", "fused: False") == TORCHTUNE_BLOCKS


def test_a_missing_nested_key_goes_at_the_end_of_its_block_with_its_indent() -> None:
    edited = edit(TORCHTUNE_BLOCKS, "dataset.packed", True)
    assert edited.splitlines()[6:9] == [
        "  _component_: torchtune.datasets.alpaca_cleaned_dataset",
        "  packed: True",
        "compile: False",
    ]


def test_booleans_follow_the_files_capitalisation_for_new_keys() -> None:
    assert "enable_activation_checkpointing: False\n" in edit(
        TORCHTUNE_BLOCKS, "enable_activation_checkpointing", False
    )
    assert "sample_packing: true\n" in edit("base_model: x\nbf16: true\n", "sample_packing", True)


def test_a_blank_value_is_filled_in_place() -> None:
    text = "fp16:\nxformers_attention:   # unused\nbf16: auto\n"
    assert edit(text, "fp16", False) == "fp16: false\nxformers_attention:   # unused\nbf16: auto\n"
    assert edit(text, "xformers_attention", False).splitlines()[1] == (
        "xformers_attention: false   # unused"
    )


def test_a_quoted_string_keeps_its_quotes() -> None:
    assert edit("optim: 'adamw_torch'\n", "optim", "adamw_torch_fused") == (
        "optim: 'adamw_torch_fused'\n"
    )
    assert edit('attn: "eager"  # x\n', "attn", "sdpa") == 'attn: "sdpa"  # x\n'


def test_a_string_that_yaml_would_misread_is_quoted() -> None:
    edited = edit("a: 1\n", "version", "1.10")
    assert yaml.safe_load(edited)["version"] == "1.10"


def test_a_hash_inside_quotes_is_not_a_comment() -> None:
    edited = edit('tag: "run #3"  # label\nn: 1\n', "n", 2)
    assert edited == 'tag: "run #3"  # label\nn: 2\n'


def test_a_missing_key_goes_after_the_first_related_key_present() -> None:
    text = "### train\nbf16: true\nlearning_rate: 1.0e-4\n\n### eval\nval_size: 0.1\n"
    edited = edit(text, "optim", "adamw_torch_fused", after=("fp16", "learning_rate"))
    assert edited == (
        "### train\nbf16: true\nlearning_rate: 1.0e-4\noptim: adamw_torch_fused\n\n"
        "### eval\nval_size: 0.1\n"
    )


def test_a_missing_key_without_anchors_goes_after_the_last_entry() -> None:
    text = "a: 1\nb:\n  - x\n  - y\n\n# trailing note\n"
    assert edit(text, "c", 3) == "a: 1\nb:\n  - x\n  - y\nc: 3\n\n# trailing note\n"


def test_a_sequence_at_the_keys_indent_belongs_to_the_key() -> None:
    text = "targets:\n- q_proj\n- v_proj\nr: 8\n"
    edited = edit(text, "alpha", 16, after=("targets",))
    assert edited == "targets:\n- q_proj\n- v_proj\nalpha: 16\nr: 8\n"


def test_a_block_value_replaced_by_a_flow_list_loses_its_old_items() -> None:
    text = "lora_target_modules:\n  - q_proj\n  - v_proj\nlora_r: 8\n"
    edited = edit(text, "lora_target_modules", ["q_proj", "k_proj"])
    assert edited == "lora_target_modules: [q_proj, k_proj]\nlora_r: 8\n"


def test_a_new_nested_block_is_created_with_the_files_indent() -> None:
    text = "model:\n    name: x\nenv_present: 1\n"
    edited = edit(text, "env.HIP_FORCE_DEV_KERNARG", "1", quote=True)
    assert edited.endswith('env:\n    HIP_FORCE_DEV_KERNARG: "1"\n')


def test_a_key_inside_a_flow_mapping_is_set() -> None:
    edited = edit(
        "model_init_kwargs: {dtype: bfloat16}  # kw\n",
        "model_init_kwargs.attn_implementation",
        "sdpa",
    )
    assert yaml.safe_load(edited)["model_init_kwargs"] == {
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
    }
    assert edited.endswith("  # kw\n")


def test_a_multi_line_flow_list_stays_part_of_its_key() -> None:
    text = (
        "checkpointer:\n  files: [\n    a.safetensors,\n    b.safetensors,\n  ]\n"
        "  model_type: QWEN2\nseed: 1\n"
    )
    edited = edit(text, "checkpointer.output_dir", "/out")
    assert yaml.safe_load(edited)["checkpointer"] == {
        "files": ["a.safetensors", "b.safetensors"],
        "model_type": "QWEN2",
        "output_dir": "/out",
    }


def test_crlf_line_endings_are_kept_on_new_lines() -> None:
    edited = edit("a: 1\r\nb: 2\r\n", "c", 3)
    assert edited == "a: 1\r\nb: 2\r\nc: 3\r\n"


def test_nothing_else_changes_byte_for_byte() -> None:
    edited = edit(TORCHTUNE_BLOCKS, "compile", True)
    changed = [
        (a, b)
        for a, b in zip(TORCHTUNE_BLOCKS.splitlines(), edited.splitlines(), strict=True)
        if a != b
    ]
    assert changed == [("compile: False", "compile: True")]


def test_a_block_scalar_replaced_by_a_plain_value_loses_its_old_lines() -> None:
    text = "prompt: |\n  line one\n  line two\nseed: 1\n"
    assert edit(text, "prompt", "short") == "prompt: short\nseed: 1\n"


def test_a_comment_at_column_zero_inside_a_block_does_not_end_it() -> None:
    text = "optimizer:\n# tuned last week\n  fused: False\nseed: 1\n"
    assert edit(text, "optimizer.fused", True) == (
        "optimizer:\n# tuned last week\n  fused: True\nseed: 1\n"
    )
