"""First use without ``--goblin-fake`` on a machine without a GPU (issue 18, case 16).

The smallest workload a newcomer writes, ``model: llama-3-8b``, is an 8B model in fp32:
measured on the CPU it used to be built in host RAM for half a minute and end in a raw
allocation error. Its projected footprint is checked against the device first, and the
error says that ``--goblin-fake`` projects without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pytest

pytest.importorskip("torch")

from pytest_goblin.runner import measured as live
from pytest_goblin.runner.options import MeasureOptions


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

    def spy(
        self: live.LiveDevice, env_vars: dict[str, str], message: dict, what: str, ranks: int = 1
    ) -> dict:
        sent.append(message["op"])
        return real(self, env_vars, message, what, ranks)

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


def test_waiting_for_a_device_another_process_holds_is_said(tmp_path: Path) -> None:
    """A run waiting on another process's device lock used to say nothing for minutes."""
    release = tmp_path / "release"
    lock = live.LOCK_DIR / "cpu.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, time; from pathlib import Path; from filelock import FileLock\n"
            f"lock = FileLock({str(lock)!r}); lock.acquire()\n"
            f"Path({str(lock.with_suffix('.holder'))!r}).write_text(str(os.getpid()))\n"
            "print('held', flush=True)\n"
            f"while not Path({str(release)!r}).exists(): time.sleep(0.05)\n"
            "lock.release()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    said: list[str] = []

    def waiting(line: str) -> None:
        said.append(line)
        release.touch()  # the other process lets go once we are seen waiting

    device = live.LiveDevice(MeasureOptions(device="cpu"))
    device._lock_path = lock
    device.on_wait = waiting
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with patch.object(live.LiveDevice, "_worker"), device.locked({}):
            assert (lock.with_suffix(".holder")).read_text().strip() == str(os.getpid())
    finally:
        release.touch()
        holder.wait(timeout=60)
    assert said == [f"waiting for the device lock {lock} held by PID {holder.pid}"]


def test_a_free_device_lock_says_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    device = live.LiveDevice(MeasureOptions(device="cpu"))
    device._lock_path = live.LOCK_DIR / "cpu.lock"
    device.on_wait = said.append
    with patch.object(live.LiveDevice, "_worker"), device.locked({}):
        pass
    assert said == []
