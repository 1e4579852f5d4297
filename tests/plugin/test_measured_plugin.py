"""Measured mode as a user meets it: ``pytest --goblin --goblin-device cpu`` through pytester.

Workloads are tiny so that each run takes a fraction of a second; each pytester
session still starts a worker process (a torch import), so tests share little.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from pytest_goblin.runner import measured as live
from pytest_goblin.runner.engines import resolve_engine
from pytest_goblin.runner.worker import FAULT_ENV

TINY = """\
model: {layers: 2, hidden: 64, intermediate: 172, heads: 4, kv_heads: 2, vocab: 256}
seq_len: 32
lr: 3.0e-3
"""

TUNED = (
    TINY
    + """\
name: tuned
batch_size: 2
attention_impl: sdpa
optimizer: adamw_torch_fused
dataloader_workers: 1
dataloader_persistent_workers: true
goblin: {sample_cost_ms: 0}
"""
)

FAST = (
    "--goblin",
    "--goblin-device",
    "cpu",
    "--goblin-steps",
    "2",
    "--goblin-warmup",
    "1",
    "-p",
    "no:cacheprovider",
)


@pytest.fixture(autouse=True)
def isolated_device(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # device locks of their own, so that other pytest runs on this machine do not wait
    monkeypatch.setattr(live, "LOCK_DIR", tmp_path_factory.mktemp("locks"))
    monkeypatch.delenv(FAULT_ENV, raising=False)


def write(pytester: pytest.Pytester, relpath: str, text: str) -> None:
    path = pytester.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def worker_processes() -> list[int]:
    """Worker processes this test process started that still exist (orphans, zombies)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"pytest_goblin.runner.worker" in command:
            found.append(int(proc.name))
    return found


def measure(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = pytester.runpytest(*FAST, "--goblin-json", "r.json", "-rs", *args)
    return result, json.loads((pytester.path / "r.json").read_text())


def test_a_measured_cpu_run_reports_measured_numbers(pytester: pytest.Pytester) -> None:
    write(pytester, "w/tuned.goblin.yaml", TUNED)
    result, doc = measure(pytester, "w")
    result.assert_outcomes(passed=1)
    assert doc["projected"] is False and doc["device"]["kind"] == "cpu"
    baseline = doc["workloads"][0]["baseline"]
    assert baseline["projected"] is False and baseline["runner_kind"] == "torch"
    assert baseline["steps"] == 2  # --goblin-steps wins over the 50 the audit asks for
    assert baseline["tokens_per_sec"] > 0 and baseline["step_time_s"] > 0
    assert baseline["hbm_peak_gb"] > 0 and baseline["mfu_pct"] > 0
    engine = resolve_engine("auto")  # the default: hf where its extra is installed
    assert doc["device"]["engine"] == engine
    result.stdout.fnmatch_lines(
        [f"device: {doc['device']['name']} | engine: {engine} | *numbers: measured"]
    )


def test_a_workload_the_device_cannot_run_is_skipped_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/flash.goblin.yaml", TUNED.replace("sdpa", "flash") + "precision: bf16\n")
    result, doc = measure(pytester, "w")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*flash attention needs a ROCm or CUDA GPU*"])
    assert doc["workloads"][0]["outcome"] == "skipped"
    assert doc["workloads"][0]["device"]["kind"] == "cpu"


def test_a_worker_killed_mid_run_errors_its_item_and_the_next_item_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "crash:batch_size=3")
    write(pytester, "w/a.goblin.yaml", TUNED.replace("batch_size: 2", "batch_size: 3"))
    write(pytester, "w/b.goblin.yaml", TUNED.replace("name: tuned", "name: next"))
    result, doc = measure(pytester, "w")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*audit failed: the device worker died during a run*SIGKILL*"])
    assert [w["outcome"] for w in doc["workloads"]] == ["error", "passed"]
    assert worker_processes() == []


def test_a_timeout_ends_the_item_and_not_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "hang:batch_size=3")
    write(pytester, "w/a.goblin.yaml", TUNED.replace("batch_size: 2", "batch_size: 3"))
    write(pytester, "w/b.goblin.yaml", TUNED.replace("name: tuned", "name: next"))
    # the limit is per run: the next item's runs take a few seconds, 15 s leaves them room
    # on a loaded machine
    result, doc = measure(pytester, "w", "--goblin-timeout", "15")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*timed out during a run*15 s, --goblin-timeout*"])
    assert [w["outcome"] for w in doc["workloads"]] == ["error", "passed"]
    assert worker_processes() == []


def test_out_of_memory_backs_off_a_patch_and_errors_a_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "oom:attention_impl=sdpa")
    write(pytester, "w/a.goblin.yaml", TUNED.replace("sdpa", "eager"))  # its patch uses sdpa
    write(pytester, "w/b.goblin.yaml", TUNED.replace("name: tuned", "name: sdpa"))
    result, doc = measure(pytester, "w")
    result.assert_outcomes(passed=1, failed=1)
    backed_off, errored = doc["workloads"]
    assert backed_off["outcome"] == "passed" and backed_off["patch"] is None
    assert any("oom: out of memory" in note for note in backed_off["notes"])
    assert errored["outcome"] == "error" and "oom: out of memory on" in errored["error"]


def test_the_goblin_device_fixture_is_the_measured_device_without_fake(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mine="""
        def test_device(goblin_device):
            options = goblin_device.measure
            assert (options.device, options.timeout_s, options.steps) == ("cpu", 30.0, 4)
            assert (options.warmup, options.layers) == (2, 3)
    """
    )
    result = pytester.runpytest(
        "--goblin-device",
        "cpu",
        "--goblin-timeout",
        "30",
        "--goblin-steps",
        "4",
        "--goblin-warmup",
        "2",
        "--goblin-layers",
        "3",
        "-p",
        "no:cacheprovider",
        "test_mine.py",
    )
    result.assert_outcomes(passed=1)


def workers_of(parent_pid: int) -> list[int]:
    """Worker processes started by ``parent_pid`` (it is in their command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pytest_goblin.runner.worker" in argv and str(parent_pid).encode() in argv:
            found.append(int(proc.name))
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_until_idle(pid: int, timeout_s: float = 60) -> None:
    """Until the process has used no CPU for a second (the hung run)."""
    deadline = time.monotonic() + timeout_s
    used = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now == used:
            return
        used = now


def test_ctrl_c_during_a_run_leaves_no_worker_and_no_partial_file_behind(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "w/hang.goblin.yaml", TUNED)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *FAST, "--goblin-json=out.json", "--goblin-save=x", "w"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # device locks of its own; the worker inherits the fault hook from pytest's
        # environment (a workload's env_vars may only carry tuning knobs)
        env={**os.environ, "TMPDIR": str(pytester.path), FAULT_ENV: "hang"},
        # a background job of a non-interactive shell (a CI script) ignores SIGINT, and
        # children inherit that; a terminal's pytest has the default, so give it that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not workers_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    started = workers_of(process.pid)
    assert started
    wait_until_idle(started[0])  # the worker hangs inside the run
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == pytest.ExitCode.INTERRUPTED
    assert workers_of(process.pid) == []
    assert not (pytester.path / ".goblin").exists()  # an interrupted run is not history
    assert list(pytester.path.rglob("*.tmp")) == []
    json.loads((pytester.path / "out.json").read_text())  # written whole, or not at all
