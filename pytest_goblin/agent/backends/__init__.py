"""The Backend protocol every audit driver speaks, and the registry that builds one.

The loop only knows this protocol: a backend takes the user message, returns
turns of text and tool calls, and takes tool results back. Provider details
(message formats, retries, ``<think>`` blocks) stay inside each backend, and
the SDKs are imported only when their backend is built.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pytest_goblin.errors import GoblinError

StopReason = Literal["end_turn", "tool_use", "max_tokens"]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    error: str | None = None
    """Set when the call arrived broken (undecodable or truncated arguments): the
    loop hands this back as the tool's error instead of running anything."""


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one turn consumed; ``cost_usd`` is None when the model has no known price."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass(frozen=True)
class AgentTurn:
    text_blocks: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = "end_turn"
    usage: TokenUsage = field(default_factory=TokenUsage)


class Backend(Protocol):
    name: str

    def add_user_message(self, text: str) -> None: ...

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn: ...

    def add_tool_result(
        self, tool_call_id: str, name: str, content: str, is_error: bool
    ) -> None: ...


BackendFactory = Callable[[str, str, str | None, str | None], Backend | None]
"""Builds the backend for a resolved name (name, system prompt, model, base URL), or None
to leave it to the built-in ones: how the ``pytest_goblin_make_backend`` hook reaches here."""


class BackendUnavailable(GoblinError):
    """The requested backend cannot run here; the message says what to do."""


class BackendError(GoblinError):
    """The model's API failed for good (after retries); the message names the server."""


class BackendAuthError(BackendError):
    """The API refused the credentials; the message names the variable to check."""


AVAILABLE = ("planner", "claude", "qwen")
"""Backends this version ships."""

SDKS = {"claude": "anthropic", "qwen": "huggingface_hub"}
"""The SDK each LLM backend needs; the extra that installs it has the backend's name."""

MODEL_ENV = {"claude": "GOBLIN_CLAUDE_MODEL", "qwen": "GOBLIN_QWEN_MODEL"}
DEFAULT_MODELS = {"claude": "claude-sonnet-5-5", "qwen": "Qwen/Qwen2.5-7B-Instruct"}
QWEN_BASE_URL_ENV = "GOBLIN_QWEN_BASE_URL"


@dataclass(frozen=True)
class Selection:
    """Which backend drives the audits, and why (the summary header says both)."""

    name: str
    reason: str


def sdk_installed(name: str) -> bool:
    """Whether the SDK of an LLM backend can be imported, without importing it."""
    return importlib.util.find_spec(SDKS[name]) is not None


def install_hint(name: str) -> str:
    return f"pip install 'pytest-goblin[{name}]'"


def qwen_base_url(base_url: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The OpenAI-compatible server for qwen: ``--goblin-base-url``, else the environment."""
    return base_url or environ.get(QWEN_BASE_URL_ENV) or None


def select(
    requested: str, base_url: str | None = None, environ: Mapping[str, str] = os.environ
) -> Selection:
    """Resolve ``auto``: claude with ANTHROPIC_API_KEY, qwen with HF_TOKEN or a base URL.

    ``auto`` skips an LLM backend whose SDK is not installed and says so in the
    reason; an explicit name is kept as asked (building it then fails loudly).
    """
    if requested != "auto":
        return Selection(requested, "requested")
    missing = []
    if environ.get("ANTHROPIC_API_KEY"):
        if sdk_installed("claude"):
            return Selection("claude", "auto: ANTHROPIC_API_KEY is set")
        missing.append(
            f"ANTHROPIC_API_KEY is set but anthropic is not installed ({install_hint('claude')})"
        )
    qwen_signal = (
        "HF_TOKEN"
        if environ.get("HF_TOKEN")
        else "a qwen base URL"
        if qwen_base_url(base_url, environ)
        else None
    )
    if qwen_signal:
        if sdk_installed("qwen"):
            return Selection("qwen", f"auto: {qwen_signal} is set")
        missing.append(
            f"{qwen_signal} is set but huggingface_hub is not installed ({install_hint('qwen')})"
        )
    if missing:
        return Selection("planner", "auto: " + "; ".join(missing))
    return Selection("planner", f"auto: no ANTHROPIC_API_KEY, HF_TOKEN or {QWEN_BASE_URL_ENV}")


def resolve_name(requested: str, base_url: str | None = None) -> str:
    """The backend ``requested`` stands for (``auto`` resolved)."""
    return select(requested, base_url).name


def resolve_model(
    name: str, model: str | None = None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The model an LLM backend talks to: the setting, its variable, or the default."""
    if name not in MODEL_ENV:
        return None
    return model or environ.get(MODEL_ENV[name]) or DEFAULT_MODELS[name]


def describe(selection: Selection, model: str | None, base_url: str | None) -> str:
    """One line for the summary header: backend, model, server, and why it was chosen."""
    details = []
    model = resolve_model(selection.name, model)
    if model:
        details.append(f"model {model}")
    server = qwen_base_url(base_url) if selection.name == "qwen" else None
    if server:
        details.append(f"server {server}")
    elif selection.name == "qwen":
        details.append(f"provider {os.environ.get('GOBLIN_QWEN_PROVIDER') or 'auto'}")
    head = f"agent: {selection.name}" + (f" ({', '.join(details)})" if details else "")
    return f"{head}; {selection.reason}"


def ensure_available(requested: str) -> None:
    """Refuse, with the extra to install, a backend whose SDK is missing."""
    if requested in SDKS and not sdk_installed(requested):
        raise BackendUnavailable(
            f"the {requested} backend needs the {SDKS[requested]} package: "
            f"{install_hint(requested)} (or use --goblin-backend planner)"
        )


def make_backend(
    requested: str,
    system_prompt: str,
    model: str | None = None,
    base_url: str | None = None,
    plugins: BackendFactory | None = None,
    timeout_s: float | None = None,
) -> Backend:
    """Build the backend for ``requested`` (auto, planner, claude, qwen, or a plugin's name).

    ``base_url`` is the qwen backend's OpenAI-compatible server; claude takes
    its server from the SDK's own ``ANTHROPIC_BASE_URL``. ``plugins`` is asked
    first, with ``auto`` resolved; the built-in backends build what it leaves.
    ``timeout_s`` (``--goblin-backend-timeout``) bounds each request of the claude and qwen
    backends, connecting and reading; None keeps their default.
    """
    name = resolve_name(requested, base_url)
    if plugins is not None:
        backend = plugins(name, system_prompt, model, base_url)
        if backend is not None:
            return backend
    if name == "planner":
        from pytest_goblin.agent.backends.planner import PlannerBackend

        return PlannerBackend(system_prompt=system_prompt)
    if name not in AVAILABLE:
        unbuilt = " (no pytest_goblin_make_backend plugin built it)" if plugins else ""
        raise BackendUnavailable(
            f"unknown audit backend {name!r}{unbuilt}; use one of auto, {', '.join(AVAILABLE)}"
        )
    ensure_available(name)
    if name == "claude":
        from pytest_goblin.agent.backends.claude import ClaudeBackend

        if timeout_s is None:
            return ClaudeBackend(system_prompt, model=resolve_model(name, model))
        return ClaudeBackend(system_prompt, model=resolve_model(name, model), timeout_s=timeout_s)
    from pytest_goblin.agent.backends.qwen import QwenBackend

    if timeout_s is None:
        return QwenBackend(system_prompt, model=resolve_model(name, model), base_url=base_url)
    return QwenBackend(
        system_prompt, model=resolve_model(name, model), base_url=base_url, timeout_s=timeout_s
    )
