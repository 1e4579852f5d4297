"""The example project under pytest-xdist: every workload once, the same verdicts as serially."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import paths

EXAMPLE = paths.EXAMPLE_PROJECT


def verdicts(pytester: pytest.Pytester, report: str, *args: str) -> list[tuple[str, str]]:
    pytester.runpytest_subprocess(
        "--goblin",
        "--goblin-fake",
        "workloads",
        "-p",
        "no:cacheprovider",
        "--goblin-json",
        report,
        *args,
    )
    document = json.loads((pytester.path / report).read_text())
    return sorted((w["nodeid"], w["outcome"]) for w in document["workloads"])


def test_two_workers_report_every_workload_once_with_the_serial_verdicts(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    for name in ("workloads", "rules", "pytest.ini"):
        source = EXAMPLE / name
        if source.is_dir():
            shutil.copytree(source, pytester.path / name)
        else:
            shutil.copy(source, pytester.path / name)
    serial = verdicts(pytester, "serial.json")
    parallel = verdicts(pytester, "parallel.json", "-n", "2")
    assert len(serial) == len(list((EXAMPLE / "workloads").iterdir()))
    assert len({nodeid for nodeid, _ in parallel}) == len(parallel)
    assert parallel == serial
