"""The qwen backend: Qwen through huggingface_hub's InferenceClient.

One client, two kinds of server:

- Hugging Face Inference Providers (the default): ``HF_TOKEN``, model
  ``GOBLIN_QWEN_MODEL``, provider ``GOBLIN_QWEN_PROVIDER`` (``auto`` lets the
  router pick). The provider is given to the client, so it really applies.
- Any OpenAI-compatible server, vLLM included: ``GOBLIN_QWEN_BASE_URL`` or
  ``--goblin-base-url``, with the key ``GOBLIN_QWEN_API_KEY`` (default
  ``EMPTY``). The key is always passed explicitly: without it the client
  would send the user's Hugging Face token to that third-party server.

The client makes one attempt per call, so this backend retries rate limits,
overloads and transport failures itself (retry.py). Replies are normalised
(toolcalls.py): native tool calls first, else ``<tool_call>`` blocks in the
visible text; ``<think>`` reasoning is never shown as a thought or executed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from pytest_goblin.agent.backends import (
    QWEN_BASE_URL_ENV,
    AgentTurn,
    BackendAuthError,
    BackendError,
    TokenUsage,
    ToolCall,
    qwen_base_url,
    resolve_model,
)
from pytest_goblin.agent.backends.prices import price_for
from pytest_goblin.agent.backends.retry import RETRY_STATUSES, RetryPolicy, retry_after
from pytest_goblin.agent.backends.toolcalls import (
    TRUNCATED,
    ArgumentError,
    ParsedCall,
    decode_arguments,
    recover_text_calls,
    split_think,
)
from pytest_goblin.redact import environment_secrets, redact_known

if TYPE_CHECKING:
    from huggingface_hub import ChatCompletionOutput

MAX_TOKENS = 2048
REQUEST_TIMEOUT_S = 120.0
API_KEY_ENV = "GOBLIN_QWEN_API_KEY"
PROVIDER_ENV = "GOBLIN_QWEN_PROVIDER"


class QwenBackend:
    name = "qwen"

    def __init__(
        self,
        system_prompt: str,
        model: str | None = None,
        base_url: str | None = None,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen: safe to share)
        max_tokens: int = MAX_TOKENS,
        timeout_s: float = REQUEST_TIMEOUT_S,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        import huggingface_hub

        self.model = resolve_model(self.name, model, environ) or ""
        self.base_url = qwen_base_url(base_url, environ)
        self.provider = None if self.base_url else (environ.get(PROVIDER_ENV) or "auto")
        self.retry = retry
        self.max_tokens = max_tokens
        if self.base_url:
            key = environ.get(API_KEY_ENV) or "EMPTY"
            self._key_variable = API_KEY_ENV
            self._client = huggingface_hub.InferenceClient(
                base_url=self.base_url, api_key=key, timeout=timeout_s
            )
        else:
            key = environ.get("HF_TOKEN") or huggingface_hub.get_token() or ""
            self._key_variable = "HF_TOKEN"
            if not key:
                raise BackendAuthError(
                    "qwen: found no Hugging Face token; set HF_TOKEN (or run `hf auth login`), or "
                    f"point {QWEN_BASE_URL_ENV} at an OpenAI-compatible server"
                )
            self._client = huggingface_hub.InferenceClient(
                # a provider name from the environment: the SDK checks it against the
                # providers it knows (its Literal type lists them at its version)
                provider=cast(Any, self.provider),
                api_key=key,
                timeout=timeout_s,
            )
        self._secrets = (*environment_secrets(environ), *([key] if len(key) >= 8 else []))
        self._messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self._ids: set[str] = set()

    @property
    def server(self) -> str:
        return self.base_url or f"Hugging Face Inference Providers (provider {self.provider})"

    def add_user_message(self, text: str) -> None:
        self._messages.append({"role": "user", "content": self._scrub(text)})

    def add_tool_result(self, tool_call_id: str, name: str, content: str, is_error: bool) -> None:
        text = self._scrub(content)
        self._messages.append(
            {
                "role": "tool",
                "tool_call_id": tool_call_id,
                "content": f"ERROR: {text}" if is_error else text,
            }
        )

    async def next_turn(self, tool_schemas: list[dict[str, Any]]) -> AgentTurn:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": s["name"],
                    "description": s.get("description", ""),
                    "parameters": s["input_schema"],
                },
            }
            for s in tool_schemas
        ]
        output = await self._complete(tools)
        return self._turn(output, {s["name"]: s["input_schema"] for s in tool_schemas})

    def _chat_completion(self, tools: list[dict[str, Any]]) -> ChatCompletionOutput:
        """One non-streaming completion (the SDK's overloads pick it by ``stream=False``)."""
        return self._client.chat_completion(
            messages=list(self._messages),
            model=self.model,
            tools=cast(Any, tools),  # the JSON schema dicts the SDK's tool dataclasses mirror
            tool_choice="auto",
            max_tokens=self.max_tokens,
            stream=False,
        )

    async def _complete(self, tools: list[dict[str, Any]]) -> ChatCompletionOutput:
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self._chat_completion, tools)
            except Exception as exc:
                status = _status(exc)
                if status in (401, 403):
                    raise BackendAuthError(
                        self._scrub(
                            f"qwen: {self.server} refused the credentials (HTTP {status}: "
                            f"{_server_message(exc)}); check {self._key_variable}"
                        )
                    ) from None
                if attempt >= self.retry.retries or not _retryable(exc, status):
                    retried = f" after {attempt} retries" if attempt else ""
                    raise BackendError(
                        self._scrub(
                            f"qwen: {self.server} failed{retried}: "
                            + (f"HTTP {status}: " if status else "")
                            + _server_message(exc)
                        )
                    ) from None
                headers = getattr(getattr(exc, "response", None), "headers", None) or {}
                await self.retry.sleep(self.retry.delay(attempt, retry_after(headers)))
                attempt += 1

    def _turn(self, output: ChatCompletionOutput, schemas: dict[str, dict[str, Any]]) -> AgentTurn:
        usage = self._usage(output)
        if not output.choices:
            return AgentTurn(usage=usage)
        choice = output.choices[0]
        message = choice.message
        _, visible = split_think(message.content or "")
        visible, written = recover_text_calls(visible, schemas)
        native = message.tool_calls or []
        parsed = [_native(call) for call in native] if native else written
        calls = [
            self._with_id(native[i].id if native else None, call) for i, call in enumerate(parsed)
        ]
        truncated = choice.finish_reason == "length"
        if truncated and calls:
            calls[-1] = replace(calls[-1], error=TRUNCATED)
        self._echo(visible, calls)
        return AgentTurn(
            text_blocks=[visible] if visible else [],
            tool_calls=calls,
            stop_reason="tool_use" if calls else "max_tokens" if truncated else "end_turn",
            usage=usage,
        )

    def _with_id(self, given: str | None, call: ParsedCall) -> ToolCall:
        """Keep the server's id unless it is missing or already used in this conversation."""
        call_id = given or ""
        number = len(self._ids)
        while not call_id or call_id in self._ids:
            number += 1
            call_id = f"call_{number}"
        self._ids.add(call_id)
        return ToolCall(call_id, call.name, call.arguments, call.error)

    def _echo(self, visible: str, calls: list[ToolCall]) -> None:
        """The assistant turn as the server must see it next time: no reasoning, and the
        calls (recovered ones too) as structured tool_calls with JSON-string arguments."""
        if not visible and not calls:
            return
        message: dict[str, Any] = {"role": "assistant", "content": visible}
        if calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name or "invalid_call",
                        "arguments": json.dumps({} if call.error else call.input),
                    },
                }
                for call in calls
            ]
        self._messages.append(message)

    def _usage(self, output: ChatCompletionOutput) -> TokenUsage:
        usage = output.usage
        prompt = (usage.prompt_tokens or 0) if usage else 0
        completion = (usage.completion_tokens or 0) if usage else 0
        price = price_for(self.model)
        return TokenUsage(prompt, completion, price.cost(prompt, completion) if price else None)

    def _scrub(self, text: str) -> str:
        return str(redact_known(text, self._secrets))


def _native(call: Any) -> ParsedCall:
    function = call.function
    name = (function.name if function else None) or ""
    if not name:
        return ParsedCall("", {}, "the tool call has no function name")
    try:
        return ParsedCall(name, decode_arguments(function.arguments, name))
    except ArgumentError as exc:
        return ParsedCall(name, {}, str(exc))


def _status(exc: Exception) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: Exception, status: int | None) -> bool:
    """Rate limits, overloads and timeouts; transport failures (the client does not wrap them)."""
    import httpx2
    from huggingface_hub.errors import InferenceTimeoutError

    if status is not None:
        return status in RETRY_STATUSES
    return isinstance(exc, (InferenceTimeoutError, httpx2.TransportError))


def _server_message(exc: Exception) -> str:
    """The server's own error text: OpenAI-style ``error.message``, vLLM's ``message``."""
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except Exception:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if body.get("message"):
            return str(body["message"])
    return str(exc) or type(exc).__name__
