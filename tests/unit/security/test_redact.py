"""Specification of secret redaction: secrets never reach a config, a diff or a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.workloads import WorkloadFactory
from pytest_goblin.redact import (
    redact_known,
    redact_mapping,
    redact_text,
    redact_value,
    redacted_json,
)
from pytest_goblin.schemas import Change
from pytest_goblin.workload.read import patch_diff

HF = "hf_" + "a1B2c3D4e5F6g7H8i9J0kLmN"
SK = "sk-" + "proj_a1B2c3D4e5F6g7H8i9J0"


def test_secret_named_env_vars_are_hidden_in_the_loaded_config(
    workload: WorkloadFactory,
) -> None:
    loaded = workload(
        "model: llama-3-8b\n"
        "env_vars:\n"
        "  HF_TOKEN: plain-value\n"
        "  WANDB_API_KEY: abc123\n"
        "  AWS_SECRET_ACCESS_KEY: xyz\n"
        "  NCCL_DEBUG: INFO\n"
    )
    assert loaded.config.env_vars == {
        "HF_TOKEN": "<redacted>",
        "WANDB_API_KEY": "<redacted>",
        "AWS_SECRET_ACCESS_KEY": "<redacted>",
        "NCCL_DEBUG": "INFO",
    }


def test_token_shaped_env_values_are_redacted_whatever_the_name() -> None:
    assert redact_mapping({"EXTRA": HF}) == {"EXTRA": "<redacted:hf_token>"}


def test_token_shaped_values_in_extras_are_redacted_in_the_loaded_config(
    workload: WorkloadFactory,
) -> None:
    loaded = workload(f"model: llama-3-8b\nextras:\n  hub_token: {HF}\n")
    assert HF not in loaded.config.model_dump_json()


def test_hugging_face_and_openai_tokens_are_redacted_in_text() -> None:
    text = f"token {HF} and key {SK}"
    assert redact_text(text) == "token <redacted:hf_token> and key <redacted:api_key>"


def test_values_assigned_to_secret_named_keys_are_redacted_in_text() -> None:
    assert redact_text("WANDB_API_KEY=abc123 other") == "WANDB_API_KEY=<redacted> other"
    assert redact_text('"password": "hunter2"') == '"password": "<redacted>"'


def test_max_tokens_is_not_a_secret() -> None:
    assert redact_text("max_tokens: 4096") == "max_tokens: 4096"
    assert redact_mapping({"MAX_TOKENS": "4096"}) == {"MAX_TOKENS": "4096"}


def test_redact_value_reaches_strings_inside_nested_data() -> None:
    data = {"a": [HF, {"b": SK}], "n": 3}
    assert redact_value(data) == {"a": ["<redacted:hf_token>", {"b": "<redacted:api_key>"}], "n": 3}


def test_tokens_next_to_a_patched_line_are_redacted_in_the_diff(
    workload: WorkloadFactory,
) -> None:
    loaded = workload(
        "model: llama-3-8b\n"
        f"# pushed with {HF}\n"
        "precision: fp32\n"
        "env_vars:\n"
        "  WANDB_API_KEY: abc123\n"
    )
    diff = patch_diff(loaded, [Change(field="precision", old="fp32", new="bf16", rule_id="r")])
    assert "+precision: bf16" in diff
    assert HF not in diff
    assert "<redacted:hf_token>" in diff
    assert "abc123" not in diff


def test_tokenizer_special_token_keys_are_not_treated_as_secrets() -> None:
    assert redact_text("pad_token: <eos>\neos_token=</s>") == "pad_token: <eos>\neos_token=</s>"
    assert redact_mapping({"pad_token": "<pad>"}) == {"pad_token": "<pad>"}


class _Shown:
    """An object JSON cannot encode: written with ``str``."""

    def __str__(self) -> str:
        return f"shown with {SK}"


@pytest.mark.parametrize(
    "value",
    [
        {"rules": [{"id": "a", "note": f"token: {HF}"}], "n": 3, "x": 1.5, "ok": True, "no": None},
        {"env": {"HF_TOKEN": ["nested", 1], "PLAIN": f"uses {SK} and my-long-secret-value"}},
        {"nan": float("nan"), "inf": float("inf"), "big": 10**30, "text": "caf\u00e9 \ud800"},
        {"shape": (1, 2), "path": Path("a/b.yaml")},
        {1: "int key", "1": "string key", 2.5: "float key", None: "null key"},
        [("tuple", {"API_KEY": ("a", "b")}), _Shown()],
        f"Bearer {HF}",
    ],
    ids=["plain", "secret-keys", "numbers", "tuple-and-path", "non-string-keys", "mixed", "str"],
)
def test_redacted_json_is_the_json_text_of_the_redacted_json_form(value: Any) -> None:
    """The one-walk encoding of a tool result gives exactly the text of the long way
    (encode with ``str`` for unknown objects, decode, redact, encode), plain or not."""
    secrets = ("my-long-secret-value",)
    long_way = json.dumps(redact_known(json.loads(json.dumps(value, default=str)), secrets))
    assert redacted_json(value, secrets) == long_way
    assert HF not in long_way and SK not in long_way and "my-long-secret-value" not in long_way
