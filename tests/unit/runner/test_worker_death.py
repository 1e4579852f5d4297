"""A worker that dies says how, and quotes its stderr only when it wrote any (issue 18,
case 19: a killed worker's error ended in an empty "Last lines of its stderr:").

A stand-in interpreter (a shell script the worker is started with) dies at once, so no
torch is imported and nothing waits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_goblin.errors import DeviceFault
from pytest_goblin.runner.measured import DeviceWorker


def dying_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str) -> None:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{stderr}kill -9 $$\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))


def test_a_worker_killed_without_a_word_has_no_empty_stderr_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying_interpreter(tmp_path, monkeypatch, "")
    with pytest.raises(DeviceFault) as error:
        DeviceWorker("cpu", {}).start()
    assert str(error.value) == (
        "the device worker died while starting (killed by SIGKILL); "
        "the next run starts a fresh one."
    )


def test_a_worker_that_wrote_to_stderr_before_dying_has_its_last_lines_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dying_interpreter(tmp_path, monkeypatch, "echo 'RuntimeError: HIP error' >&2\n")
    with pytest.raises(DeviceFault) as error:
        DeviceWorker("cpu", {}).start()
    assert str(error.value).endswith("\nLast lines of its stderr:\nRuntimeError: HIP error")
