"""Keep secrets out of reports, logs and LLM requests (principle 6)."""

from __future__ import annotations

import re
from typing import Any

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|CREDENTIALS?)$", re.I)
_SECRET_VALUE = (
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
    ("api_key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("github_token", re.compile(r"\bgh[opsu]_[A-Za-z0-9]{20,}")),
    ("aws_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("bearer_token", re.compile(r"Bearer\s+[A-Za-z0-9._~+/-]{8,}=*")),
)


_SECRET_ASSIGNMENT = re.compile(
    r"(\b[A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\"'\s,}]+)",
    re.I,
)


def redact_text(text: str) -> str:
    """Replace token-shaped substrings and values assigned to secret-named keys."""
    for label, pattern in _SECRET_VALUE:
        text = pattern.sub(f"<redacted:{label}>", text)
    return _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + "<redacted>", text)


def redact_env(env: dict[str, str]) -> dict[str, str]:
    """Hide the values of variables whose names say they hold a secret."""
    return {
        key: "<redacted>" if _SECRET_NAME.search(key) else redact_text(value)
        for key, value in env.items()
    }


def redact_value(value: Any) -> Any:
    """Redact strings anywhere inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value
