"""The quick scan in front of redaction lets plain text through and misses no secret.

``redact_text`` first asks whether a text could hold anything to redact (a
token's literal start, or a secret-looking name before ``:``/``=`` in the
case-folded text) and returns plain text as it is; only the rest goes through
the case-insensitive patterns. Every form the patterns redact must still be
redacted, whatever the case or Unicode spelling of its name.
"""

from __future__ import annotations

import json

import pytest

from pytest_goblin.redact import redact_text

SECRET = "s3cr3tValue99"


@pytest.mark.parametrize(
    "text",
    [
        f"HF_TOKEN={SECRET}",
        f"hf_token: '{SECRET}'",
        f'"WANDB_API_KEY": "{SECRET}"',
        f"Api_Key = {SECRET}",
        f"aws_access_key:{SECRET}",
        f"DB_PASSWORD={SECRET}",
        f"db_passwd: {SECRET}",
        f"my_ſecret: {SECRET}",
        f"AP\u0130_KEY={SECRET}",
        f"ap\u0131_key={SECRET}",
        f"TO\u212aEN={SECRET}",
    ],
)
def test_a_value_assigned_to_a_secret_name_is_redacted_in_any_spelling(text: str) -> None:
    assert SECRET not in redact_text(text)


@pytest.mark.parametrize(
    "token",
    [
        "hf_AbCdEfGhIjKlMnOpQrStUvWx",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
        "ghp_AbCdEfGhIjKlMnOpQrStUvWx",
        "AKIAABCDEFGHIJKLMNOP",
        "Bearer abc.def.ghi-jkl",
    ],
)
def test_a_token_shaped_string_is_redacted_inside_json(token: str) -> None:
    text = json.dumps({"result": {"notes": [f"pushed with {token} yesterday"]}})
    assert token not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"tokens_per_sec": 1234.5, "tokens_per_step": 8192, "max_tokens": 4096}),
        "precision: fp32 -> bf16  [bf16-mixed-precision]",
        "pad_token: <pad>",
        "",
    ],
)
def test_text_with_nothing_to_redact_comes_back_unchanged(text: str) -> None:
    assert redact_text(text) == text
