"""A reporter plugin as a team would write one: ``-p goblin_report_plugin``, or the
source of a project's ``conftest.py`` (how xdist workers load it too).

It implements ``pytest_goblin_report`` and, standing in for a dashboard, appends
what it received to ``received.json`` in the rootdir (one entry per call), so
a test can check it was called once, on the controller, with every workload.
"""

from __future__ import annotations

import json

import pytest

from pytest_goblin.report.session_report import SessionReport

RECEIVED = "received.json"


def pytest_goblin_report(report: SessionReport, config: pytest.Config) -> None:
    path = report.rootpath / RECEIVED
    calls = json.loads(path.read_text()) if path.exists() else []
    calls.append(
        {
            "outcomes": {r.nodeid: r.outcome for r in report.results},
            "device": report.run.device.name if report.run.device else None,
            "backend": report.run.backend,
            "threshold": report.run.threshold,
            "projected": report.run.projected,
            "exitstatus": report.exitstatus,
            "lines_before": list(report.lines),
            "on_worker": hasattr(config, "workerinput"),
        }
    )
    path.write_text(json.dumps(calls))
    report.lines.append(f"dashboard: posted {len(report.results)} workloads")
