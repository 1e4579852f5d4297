"""Keep secrets out of reports, logs and LLM requests (docs/backends.md, "Secrets")."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|CREDENTIALS?)$", re.I
)
_NOT_SECRET = frozenset(
    {
        "pad_token",
        "eos_token",
        "bos_token",
        "unk_token",
        "sep_token",
        "cls_token",
        "mask_token",
        "chat_template_token",
        "append_concat_token",
    }
)
"""Tokenizer special tokens: named like secrets, common in fine-tuning configs, harmless
(``append_concat_token`` is trl's ConstantLengthDataset flag, set in SFTConfig's
``dataset_kwargs`` by the alignment handbook's recipes)."""

_SECRET_VALUE = (
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
    ("api_key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("github_token", re.compile(r"\bgh[opsu]_[A-Za-z0-9]{20,}")),
    ("aws_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("bearer_token", re.compile(r"Bearer\s+[A-Za-z0-9._~+/-]{8,}=*")),
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{30,}")),
)
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"'\\]+:)[^/\s@\"'\\]+@")
"""The password of ``postgres://user:pw@host`` or ``https://user:pw@host``; the user and
host stay, so the report still says which database or server was meant."""
_ASSIGNMENT = re.compile(
    r"(\b(?P<key>[A-Za-z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY))"
    r"\\?[\"']?\s*[:=]\s*(?:\\?[\"'])?)(?P<value>[^\"'\s,}\\]+)",
    re.I,
)
"""``KEY: value``, ``KEY="value"``, and the same inside a JSON string (``KEY: \\"value\\"``):
the value stops before a quote or backslash, so quoting, escaped or not, survives."""
_VALUE_MARKERS = ("hf_", "sk-", "AKIA", "Bearer", "github_pat_", "xox", "AIza")
"""The literal start of every ``_SECRET_VALUE`` pattern but the GitHub one's."""
_GITHUB_MARKERS = ("ghp_", "gho_", "ghs_", "ghu_")
"""The GitHub pattern's literal starts, found by their common ``gh``: one scan, not four."""
_AFTER_NAME = re.compile(r"\\?[\"']?\s*[:=]")
_AFTER_PASSW = re.compile(r"(?:or)?d\\?[\"']?\s*[:=]")
_NAME_ANCHORS = (("token", _AFTER_NAME), ("secret", _AFTER_NAME), ("passw", _AFTER_PASSW))
"""The names every ``_ASSIGNMENT`` match contains (case-folded): each one's fixed start,
and what must follow it."""
_KEY_PREFIXES = ("api", "api_", "access", "access_")
"""What comes before ``key`` in the two names that end in it."""


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key or variable name says its value is a secret.

    Remembered per name: every audit asks it of every environment variable.
    """
    return bool(_SECRET_NAME.search(name)) and name.lower() not in _NOT_SECRET


def redact_text(text: str) -> str:
    """Replace token-shaped substrings and values assigned to secret-named keys."""
    if not _may_hold_secret(text):
        return text
    for label, pattern in _SECRET_VALUE:
        text = pattern.sub(f"<redacted:{label}>", text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(r"\1<redacted>@", text)

    def hide(match: re.Match[str]) -> str:
        if not is_secret_name(match.group("key")):
            return match.group(0)
        return match.group(1) + "<redacted>"

    return _ASSIGNMENT.sub(hide, text)


def _may_hold_secret(text: str) -> bool:
    """Whether either pass of ``redact_text`` could change ``text``.

    A quick test that lets most strings (tool results are kilobytes of JSON) skip
    the passes: literal markers, and a case-sensitive search of the case-folded
    text for the secret names, several times faster than the case-insensitive
    patterns. The folding covers every character that those patterns match
    without regard to case, dotted and dotless i included.
    """
    if any(marker in text for marker in _VALUE_MARKERS) or _has_github_marker(text):
        return True
    if "://" in text and "@" in text:
        return True
    folded = (
        text.lower()
        if text.isascii()
        else text.casefold().replace("i\u0307", "i").replace("\u0131", "i")
    )
    return _names_a_value(folded)


def _has_github_marker(text: str) -> bool:
    at = text.find("gh")
    while at >= 0:
        if text.startswith(_GITHUB_MARKERS, at):
            return True
        at = text.find("gh", at + 2)
    return False


def _names_a_value(folded: str) -> bool:
    """Whether case-folded text holds what every ``_ASSIGNMENT`` match contains:
    ``(?:token|secret|passw(?:or)?d|api_?key|access_?key)["']?\\s*[:=]``.

    The names are found with ``str.find`` and only what follows each is matched:
    the same answer as searching with that pattern, in about half the time (its
    scan tries five alternatives at every a, p, s and t).
    """
    for name, after in _NAME_ANCHORS:
        at = folded.find(name)
        while at >= 0:
            if after.match(folded, at + len(name)):
                return True
            at = folded.find(name, at + 1)
    at = folded.find("key")
    while at >= 0:
        if folded.endswith(_KEY_PREFIXES, 0, at) and _AFTER_NAME.match(folded, at + 3):
            return True
        at = folded.find("key", at + 1)
    return False


def redact_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    """Hide values under secret-named keys and token-shaped strings, at any depth."""
    return {
        key: "<redacted>" if is_secret_name(str(key)) else redact_value(value)
        for key, value in mapping.items()
    }


def redact_value(value: Any) -> Any:
    """Redact strings anywhere inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return redact_mapping(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of secret-named environment variables (API keys, tokens), longest first.

    A key that is not token-shaped (a vLLM ``--api-key``, a proxy password) is
    still kept out of reports, event logs and LLM requests by its exact value.
    Values shorter than 8 characters (``EMPTY``, ``1``) are not secrets.
    """
    environ = os.environ if environ is None else environ
    # only secret-named variables' values are read: os.environ decodes each one read,
    # and every audit asks
    values = {environ[key] for key in environ if is_secret_name(key)}
    return tuple(sorted((v for v in values if len(v) >= 8), key=len, reverse=True))


def redact_known(value: Any, secrets: Sequence[str]) -> Any:
    """``redact_value``, after replacing every exact occurrence of the given secrets."""
    if isinstance(value, str):
        return _redact_string(value, secrets)
    if isinstance(value, dict):
        # strings and numbers, most of a tool result, are handled here without a call each
        return {
            key: "<redacted>"
            if is_secret_name(str(key))
            else _redact_string(item, secrets)
            if isinstance(item, str)
            else redact_known(item, secrets)
            if isinstance(item, (dict, list))
            else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_known(item, secrets) for item in value]
    return value


def redacted_json(value: Any, secrets: Sequence[str]) -> str:
    """``value`` as the JSON text a backend reads: the text of ``redacted_data``."""
    return json.dumps(redacted_data(value, secrets))


def redacted_data(value: Any, secrets: Sequence[str]) -> Any:
    """``redact_known`` of ``value``'s JSON form: what a backend may see of a tool result.

    Equal to ``redact_known(json.loads(json.dumps(value, default=str)), secrets)``,
    which redacts the values before serialising (redacting the JSON text would cut into
    its quoting). Tool results are plain JSON data already (dicts with string keys,
    lists, strings, numbers, booleans, None), and for them the JSON form is the value
    itself: one walk instead of an encoding, a decoding and a walk. Anything else (a
    tuple, a non-string key, an object written with ``str``) takes the long way.
    """
    try:
        return _redact_plain(value, secrets)
    except _NotPlain:
        return redact_known(json.loads(json.dumps(value, default=str)), secrets)


class _NotPlain(Exception):
    """A value whose JSON form differs from itself (see ``redacted_data``)."""


_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


def _redact_plain(value: Any, secrets: Sequence[str]) -> Any:
    """``redact_known(value, secrets)`` of plain JSON data; ``_NotPlain`` otherwise."""
    kind = type(value)
    if kind is str:
        return _redact_string(value, secrets)
    if kind is dict:
        redacted = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            redacted[key] = "<redacted>" if is_secret_name(key) else _redact_plain(item, secrets)
        return redacted
    if kind is list:
        return [_redact_plain(item, secrets) for item in value]
    if kind in _PLAIN_SCALARS:
        return value
    raise _NotPlain


_REMEMBERED_CHARS = 512
"""Strings up to this long are redacted once per process: a tool result repeats the same
field values and rule texts audit after audit; longer ones (diffs) rarely repeat."""


@functools.lru_cache(maxsize=8192)
def _redact_remembered(text: str) -> str:
    return redact_text(text)


def _redact_string(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return _redact_remembered(text) if len(text) <= _REMEMBERED_CHARS else redact_text(text)
