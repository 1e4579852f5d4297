"""Turning what a model wrote into tool calls the loop can trust.

Models return tool calls in many shapes (vLLM's parsers show most of them:
https://docs.vllm.ai/en/latest/features/tool_calling/):
arguments as a dict, a JSON string or a double-encoded string; a call wrapped
in ``{"name": …, "arguments": …}``; calls written as text in hermes
``<tool_call>{…}</tool_call>`` or Qwen3-Coder ``<function=…>`` form when the
server did not parse them; and reasoning in ``<think>`` blocks, which is kept
apart from what the user sees and never executed from. Everything here is
pure: no SDK, no I/O. A call that cannot be decoded becomes an error the model
can act on, never a call with made-up arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_goblin.errors import GoblinError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_LEAKED_TOKENS = re.compile(r"<\|im_(?:start|end)\|>(?:assistant\n?)?")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_INVALID_ESCAPE = re.compile(r'\\(?!["\\/bfnrtu])')
_XML_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.S)
_XML_PARAMETER = re.compile(r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|(?=<parameter=)|$)", re.S)
_CALL_SHAPE = 'write <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>'
TRUNCATED = (
    "the reply was cut off at max_tokens before this call was complete, so it was "
    "not run; call it again"
)
"""The error a call gets when the reply ended mid-call: its arguments may be incomplete."""


class ArgumentError(GoblinError, ValueError):
    """Arguments that cannot be decoded; the message is written for the model."""


@dataclass(frozen=True)
class ParsedCall:
    """A call as the model wrote it: decoded arguments, or the reason they are unusable."""

    name: str
    arguments: dict[str, Any]
    error: str | None = None


def split_think(text: str) -> tuple[str, str]:
    """Separate reasoning from visible text: ``(reasoning, visible)``.

    Handles closed ``<think>`` blocks, a closing tag without an opening one
    (Qwen3's chat template opens the block in the prompt), and an opening tag
    never closed (the reply was cut off inside its reasoning).
    """
    reasoning: list[str] = []
    head, close, tail = text.partition(THINK_CLOSE)
    if close and THINK_OPEN not in head:
        reasoning.append(head)
        text = tail
    visible: list[str] = []
    while THINK_OPEN in text:
        before, _, rest = text.partition(THINK_OPEN)
        inner, _, text = rest.partition(THINK_CLOSE)
        visible.append(before)
        reasoning.append(inner)
    visible.append(text)
    joined = "".join(visible).replace(THINK_CLOSE, "")
    return "\n".join(r.strip() for r in reasoning if r.strip()), joined.strip()


def decode_arguments(raw: Any, tool_name: str) -> dict[str, Any]:
    """Arguments as a dict, from a dict, a JSON string or a double-encoded string.

    A call misnested as ``{"name": tool_name, "arguments": {...}}`` (or with
    ``parameters``) is unwrapped. Raises ArgumentError with a message for the model.
    """
    value = raw
    for _ in range(2):
        if not isinstance(value, str):
            break
        value = _loads(value) if value.strip() else {}
    if value is None:
        value = {}
    if isinstance(value, str):
        raise ArgumentError("arguments are a JSON string nested too deep; send one JSON object")
    if not isinstance(value, dict):
        raise ArgumentError(
            f"arguments must be a JSON object, got {type(value).__name__}; send one JSON object"
        )
    return _unwrap(value, tool_name)


def _unwrap(args: dict[str, Any], tool_name: str) -> dict[str, Any]:
    wrapper = set(args) <= {"name", "arguments", "parameters"}
    if wrapper and args.get("name", tool_name) == tool_name:
        inner = args.get("arguments", args.get("parameters"))
        if inner is not None:
            return decode_arguments(inner, tool_name)
    return args


def _loads(text: str) -> Any:
    """``json.loads`` with one lenient repair: code fences, stray backslashes, trailing text.

    A truncated object fails closed.
    """
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        value, _ = json.JSONDecoder().raw_decode(_INVALID_ESCAPE.sub(r"\\\\", text))
    except json.JSONDecodeError as exc:
        raise ArgumentError(
            f"arguments are not valid JSON ({exc.msg} at character {exc.pos}); "
            "send one complete JSON object"
        ) from None
    return value


def recover_text_calls(
    text: str, schemas: Mapping[str, dict[str, Any]]
) -> tuple[str, list[ParsedCall]]:
    """Calls written as ``<tool_call>`` blocks in visible text, and the text without them.

    Each block's end is found by decoding its JSON (``raw_decode``), not by a
    regex, so a ``</tool_call>`` inside a string argument does not cut it short.
    Identical calls in one reply are kept once.
    """
    calls: list[ParsedCall] = []
    kept: list[str] = []
    position = 0
    while (start := text.find(CALL_OPEN, position)) != -1:
        kept.append(text[position:start])
        call, position = _read_block(text, start + len(CALL_OPEN), schemas)
        calls.append(call)
    kept.append(text[position:])
    clean = _LEAKED_TOKENS.sub("", "".join(kept)).replace(CALL_CLOSE, "").strip()
    return clean, _unique(calls)


def _read_block(
    text: str, start: int, schemas: Mapping[str, dict[str, Any]]
) -> tuple[ParsedCall, int]:
    """The call in the block starting at ``start``, and where the block ends."""
    body = len(text) - len(text[start:].lstrip())
    close = text.find(CALL_CLOSE, body)
    block_end = len(text) if close == -1 else close + len(CALL_CLOSE)
    if text.startswith("<function=", body):
        return _xml_call(text[body : close if close != -1 else len(text)], schemas), block_end
    try:
        payload, end = json.JSONDecoder().raw_decode(text, body)
    except json.JSONDecodeError as exc:
        return ParsedCall(
            "", {}, f"could not read the <tool_call> block ({exc.msg}); {_CALL_SHAPE}"
        ), block_end
    after = re.match(r"\s*" + re.escape(CALL_CLOSE), text[end:])
    end = end + after.end() if after else end
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return ParsedCall("", {}, f"a <tool_call> block needs a tool name; {_CALL_SHAPE}"), end
    name = payload["name"]
    try:
        arguments = decode_arguments(payload.get("arguments", payload.get("parameters")), name)
    except ArgumentError as exc:
        return ParsedCall(name, {}, str(exc)), end
    return ParsedCall(name, arguments), end


def _xml_call(block: str, schemas: Mapping[str, dict[str, Any]]) -> ParsedCall:
    """A Qwen3-Coder call: ``<function=name><parameter=p>value</parameter></function>``."""
    function = _XML_FUNCTION.search(block)
    if function is None:
        return ParsedCall("", {}, f"could not read the <function=…> block; {_CALL_SHAPE}")
    name, body = function.group(1), function.group(2)
    properties = schemas.get(name, {}).get("properties", {})
    arguments = {
        key: _coerce(value.strip(), properties.get(key, {}))
        for key, value in _XML_PARAMETER.findall(body)
    }
    return ParsedCall(name, arguments)


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """A raw XML parameter value, typed by the tool's JSON schema (strings stay strings)."""
    types = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
    if types - {None} <= {"string", "null"} and value != "null":
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _unique(calls: list[ParsedCall]) -> list[ParsedCall]:
    seen: set[str] = set()
    unique = []
    for call in calls:
        key = call.name + json.dumps(call.arguments, sort_keys=True, default=str) + str(call.error)
        if key not in seen:
            seen.add(key)
            unique.append(call)
    return unique
