"""What every engine's multi-rank tests check alike: the processes a failed launch leaves
(read from /proc), and the figures a 2-rank measurement reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin.errors import RunFailed
from pytest_goblin.schemas import RunMetrics, WorkloadConfig

RANK_1_DIED = r"rank 1 of 2 (\(pid \d+\) died: killed by SIGKILL|died without reporting)"
"""The launcher reports the first failed rank it finds: rank 1 with its signal, or rank 0's
closed connection, which names rank 1 as the one that died first."""


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (a device worker's: its ranks run in it)."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(proc.name))
    return members


def assert_crashed_rank_leaves_only_the_worker(runner: Any, config: WorkloadConfig) -> None:
    """A run whose rank 1 crashes (``crash:rank=1``) errors naming it, and the worker lives
    on with its ranks gone."""
    with pytest.raises(RunFailed, match=RANK_1_DIED):
        runner.run(config, steps=2)
    worker = runner.device.worker_pid(config.env_vars)
    assert worker is not None
    assert group_members(worker) == [worker]


def assert_group_reaped(worker: int) -> None:
    """The worker's group (it and its ranks) was SIGKILLed: the ranks, orphaned by the
    worker's death, are reaped by init a moment later."""
    deadline = time.monotonic() + 30
    while group_members(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(worker) == []


def assert_two_rank_metrics(metrics: RunMetrics, config: WorkloadConfig) -> None:
    """Two ranks measured: each one's peak memory, the exposed communication as a share
    of the step, and every rank's tokens counted."""
    assert metrics.world_size == 2
    assert len(metrics.rank_peak_memory_gb) == 2 and min(metrics.rank_peak_memory_gb) > 0
    assert metrics.comm_share is not None and 0.0 <= metrics.comm_share <= 1.0
    assert metrics.tokens_per_step == config.tokens_per_step
