"""Loopback HTTP servers that speak the LLM providers' wire formats.

The backends are tested with the real anthropic and huggingface_hub clients
pointed at these servers through their base-URL settings (both SDKs use
httpx2, which respx and pytest-httpx do not see). A server answers each POST
from a script — a list of replies, or a function of the request — and records
every request it received, so tests can assert on what the client sent.

``PlannerModel`` is a scripted model that plays the canonical trajectory: it
replays the conversation in each request into a fresh planner (whose choices
are deterministic) and answers with the planner's next step, in the wire
format of the endpoint that was called.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_goblin.agent.backends import AgentTurn
from pytest_goblin.agent.backends.planner import PlannerBackend

LLM_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "HF_TOKEN",
    "HUGGINGFACEHUB_API_TOKEN",
    "GOBLIN_AGENT_BACKEND",
    "GOBLIN_CLAUDE_MODEL",
    "GOBLIN_QWEN_MODEL",
    "GOBLIN_QWEN_PROVIDER",
    "GOBLIN_QWEN_BASE_URL",
    "GOBLIN_QWEN_API_KEY",
    "GOBLIN_LLM_PRICE",
)
"""Every variable that steers the LLM backends: tests start without any of them."""


@dataclass(frozen=True)
class Reply:
    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    text: str
    """The raw body, for searching what was sent."""

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.text)


Responder = Callable[[Request], Reply]


class LLMServer:
    """A threaded HTTP server on 127.0.0.1 that answers every POST from a script.

    ``requests`` and ``replies`` record the exchange in order.
    """

    def __init__(self, script: Responder | list[Reply]) -> None:
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self._replies = list(script) if isinstance(script, list) else None
        self._respond = script if callable(script) else self._next_reply
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next_reply(self, request: Request) -> Reply:
        assert self._replies is not None
        if not self._replies:
            return Reply(
                {"error": {"type": "test_error", "message": "script exhausted"}},
                500,
                {"x-should-retry": "false"},
            )
        return self._replies.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    text=self.rfile.read(length).decode("utf-8"),
                )
                with server._lock:
                    server.requests.append(request)
                    reply = server._respond(request)
                    server.replies.append(reply)
                data = json.dumps(reply.body).encode("utf-8")
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


# --- Anthropic /v1/messages ---------------------------------------------------------------


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use(call_id: str, name: str, /, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def anthropic_reply(
    *blocks: dict[str, Any],
    stop_reason: str | None = None,
    input_tokens: int = 120,
    output_tokens: int = 30,
    cache_read: int = 0,
    cache_write: int = 0,
) -> Reply:
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return Reply(
        {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": list(blocks),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": cache_write,
            },
        }
    )


def anthropic_error(status: int, kind: str, message: str, **headers: str) -> Reply:
    return Reply(
        {"type": "error", "error": {"type": kind, "message": message}},
        status,
        {name.replace("_", "-"): value for name, value in headers.items()},
    )


def tool_results(request: Request) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of an Anthropic request."""
    last = request.body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b.get("type") == "tool_result"]


# --- OpenAI-style /v1/chat/completions -----------------------------------------------------


def openai_call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """A native tool call; ``arguments`` is sent as given (a JSON string, usually)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def openai_reply(
    content: str | None = None,
    calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    prompt_tokens: int = 150,
    completion_tokens: int = 40,
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return Reply(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "qwen-test",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def openai_error(status: int, message: str, **headers: str) -> Reply:
    return Reply(
        {"object": "error", "message": message, "type": "error", "code": status},
        status,
        {name.replace("_", "-"): value for name, value in headers.items()},
    )


def tool_messages(request: Request) -> list[dict[str, Any]]:
    """The trailing ``tool`` messages of an OpenAI-style request."""
    messages = request.body["messages"]
    trailing = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        trailing.insert(0, message)
    return trailing


# --- the planner as a model -----------------------------------------------------------------


Round = list[tuple[str, bool]]
"""One turn's tool results, in call order: (content, is_error)."""


class PlannerModel:
    """Answers as the planner would, given the conversation so far (either wire format)."""

    def __call__(self, request: Request) -> Reply:
        body = request.body
        anthropic = request.path.endswith("/messages")
        first, rounds = _anthropic_conversation(body) if anthropic else _openai_conversation(body)
        planner = PlannerBackend()
        planner.add_user_message(first)
        calls_so_far = 0
        for results in rounds:
            turn = _step(planner)
            for call, (content, is_error) in zip(turn.tool_calls, results, strict=True):
                planner.add_tool_result(call.id, call.name, content, is_error)
            calls_so_far += len(results)
        turn = _step(planner)
        ids = [f"call_{calls_so_far + i + 1}" for i in range(len(turn.tool_calls))]
        return _anthropic_turn(turn, ids) if anthropic else _openai_turn(turn, ids)


def _step(planner: PlannerBackend) -> AgentTurn:
    return asyncio.run(planner.next_turn([]))


def _anthropic_conversation(body: dict[str, Any]) -> tuple[str, list[Round]]:
    messages = body["messages"]
    first = "".join(b["text"] for b in messages[0]["content"] if b["type"] == "text")
    rounds = [
        [
            (b["content"], bool(b.get("is_error")))
            for b in m["content"]
            if b["type"] == "tool_result"
        ]
        for m in messages[1:]
        if m["role"] == "user"
    ]
    return first, rounds


def _openai_conversation(body: dict[str, Any]) -> tuple[str, list[Round]]:
    messages = [m for m in body["messages"] if m["role"] != "system"]
    rounds: list[Round] = []
    for message in messages[1:]:
        if message["role"] == "assistant":
            rounds.append([])
        elif message["role"] == "tool":
            content = message["content"]
            error = content.startswith("ERROR: ")
            rounds[-1].append((content.removeprefix("ERROR: "), error))
    return messages[0]["content"], [r for r in rounds if r]


def _anthropic_turn(turn: AgentTurn, ids: list[str]) -> Reply:
    blocks = [text_block(t) for t in turn.text_blocks]
    blocks += [tool_use(i, c.name, **c.input) for i, c in zip(ids, turn.tool_calls)]
    return anthropic_reply(*blocks)


def _openai_turn(turn: AgentTurn, ids: list[str]) -> Reply:
    calls = [openai_call(i, c.name, json.dumps(c.input)) for i, c in zip(ids, turn.tool_calls)]
    return openai_reply(" ".join(turn.text_blocks), calls)
