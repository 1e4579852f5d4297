"""The built-in reporters: plain implementations of ``pytest_goblin_report``.

The JSON report, the Markdown summary, the HTML page and the saved run are
written through the same hook a user's reporter implements, first (so a
custom reporter sees their lines), and only when their options ask for them.
"""

from __future__ import annotations

import pytest

from pytest_goblin.atomic import describe_write_error
from pytest_goblin.report import json_report
from pytest_goblin.report.publish import publish
from pytest_goblin.report.session_report import SessionReport

PLUGIN_NAME = "goblin-reporters"
"""``-p no:goblin-reporters`` turns the built-in outputs off."""


class BuiltinReporters:
    """``--goblin-json``, ``--goblin-md``, ``--goblin-html`` and ``--goblin-save``."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_goblin_report(self, report: SessionReport) -> None:
        settings = report.settings
        if settings.json_path is not None:
            path = settings.invocation_dir / settings.json_path
            run = report.run
            try:
                json_report.write(
                    path,
                    json_report.build(
                        report.results,
                        run.device,
                        run.backend,
                        run.threshold,
                        run.projected,
                        run.parallel,
                    ),
                )
            except (OSError, ValueError) as exc:
                report.failures.append(f"JSON report {path}: {describe_write_error(exc)}")
            else:
                report.lines.append(f"JSON report: {path}")
        published = publish(
            report.results,
            report.run,
            settings,
            report.rootpath,
            interrupted=report.exitstatus == pytest.ExitCode.INTERRUPTED,
        )
        report.lines.extend(published.lines)
        report.failures.extend(published.failures)
        if published.markdown_stdout:
            report.stdout.append(published.markdown_stdout)
