"""First use without ``--goblin-fake`` on a machine without a GPU (issue 18, case 16).

The smallest workload a newcomer writes, ``model: llama-3-8b``, is an 8B model in fp32:
measured on the CPU it used to be built in host RAM for half a minute and end in a raw
allocation error. Its projected footprint is checked against the device first, and the
error says that ``--goblin-fake`` projects without a GPU.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from pytest_goblin.runner import measured as live


@pytest.fixture(autouse=True)
def own_locks(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Device locks of its own: other pytest runs on this machine must not make it wait."""
    monkeypatch.setattr(live, "LOCK_DIR", tmp_path_factory.mktemp("locks"))


def test_a_workload_too_big_for_the_host_is_an_oom_error_before_anything_is_built(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "w.goblin.yaml").write_text("model: llama-3-8b\n")
    sent: list[str] = []
    real = live.LiveDevice.request

    def spy(self: live.LiveDevice, env_vars: dict[str, str], message: dict, what: str) -> dict:
        sent.append(message["op"])
        return real(self, env_vars, message, what)

    monkeypatch.setattr(live.LiveDevice, "request", spy)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--goblin",
        "--goblin-device",
        "cpu",
        "--goblin-json",
        "r.json",
        "w.goblin.yaml",
    )
    (workload,) = json.loads((pytester.path / "r.json").read_text())["workloads"]
    assert workload["outcome"] == "error"
    assert "run" not in sent, "the model was built"
    result.stdout.fnmatch_lines(
        [
            "*oom: projected * GB of * GB host memory on *; not started; no GPU was found, so "
            "this would train on the CPU: --goblin-fake projects the workload on a catalogue "
            "GPU without one*"
        ]
    )
    assert "RuntimeError" not in result.stdout.str()


def test_a_skipped_workload_shows_its_reason_without_rs(pytester: pytest.Pytester) -> None:
    """pytest prints a skip's reason only under ``-rs``; the goblin summary always does."""
    (pytester.path / "w.goblin.yaml").write_text(
        "name: tiny\n"
        "model: {layers: 2, hidden: 64, intermediate: 172, heads: 4, kv_heads: 2, vocab: 256}\n"
        "seq_len: 32\nprecision: bf16\nattention_impl: flash\n"
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-device", "cpu", "w.goblin.yaml"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["skipped tiny (w.goblin.yaml): *flash attention needs*"])
