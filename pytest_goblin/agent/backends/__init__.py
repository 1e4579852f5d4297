"""The Backend protocol every audit driver speaks, and the registry that builds one.

The loop only knows this protocol: a backend takes the user message, returns
turns of text and tool calls, and takes tool results back. Provider details
(message formats, retries, ``<think>`` blocks) stay inside each backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

StopReason = Literal["end_turn", "tool_use", "max_tokens"]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class AgentTurn:
    text_blocks: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = "end_turn"


class Backend(Protocol):
    name: str

    def add_user_message(self, text: str) -> None: ...

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn: ...

    def add_tool_result(
        self, tool_call_id: str, name: str, content: str, is_error: bool
    ) -> None: ...


class BackendUnavailable(Exception):
    """The requested backend cannot run here; the message says what to do."""


_API_KEYS = {"claude": "ANTHROPIC_API_KEY", "qwen": "HF_TOKEN"}
AVAILABLE = ("planner",)
"""Backends this version ships. The LLM backends plug in here."""


def resolve_name(requested: str) -> str:
    """``auto`` is the planner unless an API key for a shipped LLM backend is set."""
    if requested != "auto":
        return requested
    for name, key in _API_KEYS.items():
        if name in AVAILABLE and os.environ.get(key):
            return name
    return "planner"


def make_backend(requested: str, system_prompt: str) -> Backend:
    """Build the backend for ``requested`` (auto, planner, claude, qwen)."""
    name = resolve_name(requested)
    if name == "planner":
        from pytest_goblin.agent.backends.planner import PlannerBackend

        return PlannerBackend(system_prompt=system_prompt)
    raise BackendUnavailable(
        f"the {name!r} audit backend is not available in this version of pytest-goblin; "
        "use --goblin-backend planner (or auto)"
    )
