"""The claude backend: Claude through the anthropic SDK's Messages API with tools.

Credentials and server come from the SDK's own settings (``ANTHROPIC_API_KEY``,
``ANTHROPIC_BASE_URL``); the model from ``--goblin-model`` / ``goblin_model`` /
``GOBLIN_CLAUDE_MODEL``. The SDK retries 408/409/429/5xx (529 included) with
backoff that honours ``retry-after``. The system prompt and the tool list
are marked for prompt caching: they are the same bytes on every turn of every
audit. Tool results of one turn go back together in one user message, one
``tool_result`` per ``tool_use`` id.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from pytest_goblin.agent.backends import (
    AgentTurn,
    BackendAuthError,
    BackendError,
    StopReason,
    TokenUsage,
    ToolCall,
    resolve_model,
)
from pytest_goblin.agent.backends.prices import price_for
from pytest_goblin.agent.backends.toolcalls import TRUNCATED, ArgumentError, decode_arguments
from pytest_goblin.redact import environment_secrets, redact_known

if TYPE_CHECKING:
    import anthropic

MAX_TOKENS = 4096
MAX_RETRIES = 2
REQUEST_TIMEOUT_S = 120.0
CACHED = {"type": "ephemeral"}

STOP_REASONS: dict[str, StopReason] = {
    "tool_use": "tool_use",
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "pause_turn": "end_turn",
    "refusal": "end_turn",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}
"""Every stop reason the API has (a test holds this against the SDK's list); one
not listed here ends the audit's conversation, as the SDK's own tool runner does."""


class ClaudeBackend:
    name = "claude"

    def __init__(
        self,
        system_prompt: str,
        model: str | None = None,
        base_url: str | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        max_retries: int = MAX_RETRIES,
        timeout_s: float = REQUEST_TIMEOUT_S,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        import anthropic

        self.model = resolve_model(self.name, model, environ) or ""
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self._sdk = anthropic
        self._secrets = environment_secrets(environ)
        try:
            self._client = anthropic.Anthropic(
                base_url=base_url, max_retries=max_retries, timeout=timeout_s
            )
        except anthropic.CredentialsError as exc:
            raise BackendAuthError(self._no_credentials(exc)) from None
        self._system = [{"type": "text", "text": system_prompt, "cache_control": CACHED}]
        self._messages: list[dict[str, Any]] = []
        self._results: list[dict[str, Any]] = []

    def add_user_message(self, text: str) -> None:
        self._messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": redact_known(text, self._secrets)},
                ],
            }
        )

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        self._results.append(
            {
                "type": "tool_result",
                "tool_use_id": tool_call_id,
                "content": redact_known(content, self._secrets),
                "is_error": is_error,
            }
        )

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        if self._results:
            self._messages.append({"role": "user", "content": self._results})
            self._results = []
        message = await asyncio.to_thread(self._create, _cached_tools(tool_schemas))
        blocks = [block.to_dict() for block in message.content]
        if blocks:
            self._messages.append({"role": "assistant", "content": blocks})
        return self._turn(message)

    def _create(self, tools: list[dict[str, Any]]) -> anthropic.types.Message:
        sdk = self._sdk
        try:
            return self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                # the request's JSON as this module builds it; the SDK's TypedDicts
                # describe the same JSON
                system=cast("list[anthropic.types.TextBlockParam]", self._system),
                tools=cast("list[anthropic.types.ToolParam]", tools),
                messages=cast("list[anthropic.types.MessageParam]", self._messages),
            )
        except sdk.AuthenticationError as exc:
            raise BackendAuthError(
                self._scrub(
                    f"claude: the Anthropic API rejected the credentials (HTTP 401: "
                    f"{_api_message(exc)}); check ANTHROPIC_API_KEY"
                )
            ) from None
        except sdk.PermissionDeniedError as exc:
            raise BackendAuthError(
                self._scrub(
                    f"claude: the Anthropic API refused access (HTTP 403: {_api_message(exc)}); "
                    f"check that ANTHROPIC_API_KEY may use model {self.model}"
                )
            ) from None
        except sdk.APIStatusError as exc:
            retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            raise BackendError(
                self._scrub(
                    f"claude: the Anthropic API answered HTTP {exc.status_code} "
                    f"({_api_message(exc)})"
                    + (f" after {self.max_retries} retries" if retried else "")
                )
            ) from None
        except sdk.APIConnectionError as exc:
            raise BackendError(
                self._scrub(
                    f"claude: cannot reach the Anthropic API at {self._client.base_url} ({exc}) "
                    f"after {self.max_retries} retries; check ANTHROPIC_BASE_URL"
                )
            ) from None
        except sdk.CredentialsError as exc:
            raise BackendAuthError(self._no_credentials(exc)) from None
        except TypeError as exc:
            if "authentication" not in str(exc):
                raise
            raise BackendAuthError(self._no_credentials(exc)) from None

    def _no_credentials(self, exc: Exception) -> str:
        return self._scrub(
            f"claude: no usable Anthropic credentials ({exc}); set ANTHROPIC_API_KEY"
        )

    def _turn(self, message: anthropic.types.Message) -> AgentTurn:
        texts = [block.text for block in message.content if block.type == "text"]
        calls = [_call(block) for block in message.content if block.type == "tool_use"]
        stop = STOP_REASONS.get(str(message.stop_reason), "end_turn")
        if stop == "max_tokens" and calls:
            calls[-1] = replace(calls[-1], error=TRUNCATED)
        if message.stop_reason == "refusal":
            category = getattr(message.stop_details, "category", None)
            texts.append(f"The model declined to continue ({category or 'no category given'}).")
        return AgentTurn(
            text_blocks=texts,
            tool_calls=calls,
            stop_reason="tool_use" if calls and stop != "end_turn" else stop,
            usage=self._usage(message),
        )

    def _usage(self, message: anthropic.types.Message) -> TokenUsage:
        usage = message.usage
        written = usage.cache_creation_input_tokens or 0
        read = usage.cache_read_input_tokens or 0
        price = price_for(self.model)
        return TokenUsage(
            input_tokens=usage.input_tokens + written + read,
            output_tokens=usage.output_tokens,
            cost_usd=price.cost(usage.input_tokens, usage.output_tokens, written, read)
            if price
            else None,
        )

    def _scrub(self, text: str) -> str:
        return str(redact_known(text, self._secrets))


def _cached_tools(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool list with a cache breakpoint on its last entry (caching every tool)."""
    if not schemas:
        return []
    return [*schemas[:-1], {**schemas[-1], "cache_control": CACHED}]


def _call(block: Any) -> ToolCall:
    try:
        return ToolCall(block.id, block.name, decode_arguments(block.input, block.name))
    except ArgumentError as exc:
        return ToolCall(block.id, block.name, {}, str(exc))


def _api_message(exc: Any) -> str:
    """The API's own error text (``error.message`` of the body), else the exception's."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('type', 'error')}: {error['message']}"
    return str(getattr(exc, "message", exc))
