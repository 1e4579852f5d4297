"""An LLM endpoint that accepts connections and never answers (issue 18, case 18).

Each request waits at most ``--goblin-backend-timeout``, and once the backend has failed
two workloads in a row the session's other workloads fail at once with the same message,
instead of each waiting out its timeouts and retries (120 s x 3 by default).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from helpers.llm_servers import LLM_VARIABLES
from helpers.workloads import MISTUNED_YAML
from pytest_goblin.agent.backends.breaker import BackendBreaker


@pytest.fixture
def silent_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A listening socket nobody accepts from: connections complete, no byte ever comes."""
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        monkeypatch.setenv("GOBLIN_QWEN_BASE_URL", url)
        yield url


def test_a_silent_backend_fails_the_rest_of_the_session_fast(
    pytester: pytest.Pytester, silent_server: str
) -> None:
    (pytester.path / "w").mkdir()
    for name in ("a", "b", "c", "d"):
        text = MISTUNED_YAML.replace("name: llama-mistuned", f"name: {name}")
        (pytester.path / "w" / f"{name}.goblin.yaml").write_text(text)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-fake",
        "--goblin-backend=qwen",
        "--goblin-backend-timeout=0.2",
        "--goblin-json=r.json",
        "-v",
        "w",
    )
    # -v says what the silence is: a request waiting for the backend's reply
    result.stdout.fnmatch_lines(
        [
            "w/a.goblin.yaml::a *",
            "    waiting for the qwen backend's reply (model *; up to 0.2 s a try, "
            "--goblin-backend-timeout)",
            "    error: *",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    errors = {w["name"]: w["error"] for w in report["workloads"]}
    assert all(message is not None for message in errors.values())
    assert "not tried" not in errors["a"] and "not tried" not in errors["b"]
    for name in ("c", "d"):
        assert errors[name].endswith(
            "(not tried: the qwen backend failed the last 2 workloads in a row in this session)"
        )
    first = errors["a"].split(": audit failed: ", 1)[1]
    assert first in errors["c"]
    assert "127.0.0.1" in first


def test_the_count_is_per_backend_and_server_and_an_answer_resets_it() -> None:
    breaker = BackendBreaker()
    breaker.record("qwen", "http://a", "timed out")
    assert breaker.refusal("qwen", "http://a") is None
    breaker.record("qwen", "http://a", "timed out again")
    assert breaker.refusal("qwen", "http://b") is None
    assert breaker.refusal("claude", "http://a") is None
    refusal = breaker.refusal("qwen", "http://a")
    assert refusal is not None and refusal.startswith("timed out again (not tried")
    breaker.record("qwen", "http://a", None)
    assert breaker.refusal("qwen", "http://a") is None
