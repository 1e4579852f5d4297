"""The session object: the hooks that exist only under ``--goblin``.

Registered by ``pytest_configure`` when ``--goblin`` is given. It decides which files
are workloads (collection), gathers every item's result (on the xdist controller too),
prints the goblin summary, and hands the results to the ``pytest_goblin_report``
reporters at the end of the session.
"""

from __future__ import annotations

import fnmatch
import gc
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_goblin import history
from pytest_goblin.agent.backends import describe, resolve_name, select
from pytest_goblin.atomic import describe_write_error
from pytest_goblin.audit.calibrate import describe_all, noise_floors
from pytest_goblin.events import append_records, start_log
from pytest_goblin.plugin.config import SAVED_RUN_KEY
from pytest_goblin.plugin.items import WorkloadFile
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.plugin.xdist_gpus import gpu_workers
from pytest_goblin.report.session_report import SessionReport
from pytest_goblin.report.summary import RunInfo, ranks_text
from pytest_goblin.report.terminal import (
    advisories_text,
    cache_line,
    header_line,
    outcome_line,
    summary_table,
)
from pytest_goblin.runner import self_calibration
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.workload.fix import fix_summary
from pytest_goblin.workload.read import WORKLOAD_SUFFIXES, may_hold_workload


class GoblinSession:
    """The hooks that only exist under ``--goblin``: collection and reporting."""

    def __init__(self, config: pytest.Config, settings: GoblinSettings) -> None:
        self.config = config
        self.settings = settings
        self.results: list[WorkloadResult] = []
        self.report: SessionReport | None = None
        given = config.args_source == pytest.Config.ArgsSource.ARGS
        self._explicit = [
            real_path(settings.invocation_dir / arg.split("::", 1)[0])
            for arg in (config.args if given else [])
        ]
        self._collected: dict[Path, Path] = {}
        self._writes_events = settings.events_path is not None and not hasattr(
            config, "workerinput"
        )
        self._write_failures: list[str] = []
        # what an earlier session in this process froze (pytest.main called again from a
        # script, pytester's in-process runs) goes back into the collector's care
        gc.unfreeze()
        self._calibration_line: str | None = None
        """What --goblin-save-calibration did, for the summary."""
        """Outputs written during the run (the event log) that failed, with the reason."""
        if self._writes_events:
            self._log_events(start_log)

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.File | None:
        if file_path.suffix not in WORKLOAD_SUFFIXES:
            return None
        matched = any(fnmatch.fnmatch(file_path.name, p) for p in self.settings.patterns)
        resolved = real_path(file_path)
        named = resolved in self._explicit
        under = any(resolved.is_relative_to(arg) for arg in self._explicit if arg.is_dir())
        # a file reached again through a symlinked directory (or a loop of them) is one workload
        if not (matched or named or under) or self._collected.get(resolved, file_path) != file_path:
            return None

        if not may_hold_workload(file_path, self.config.getini("python_files")):
            return None
        self._collected[resolved] = file_path
        return WorkloadFile.from_parent(parent, path=file_path, matched=matched, named=named)

    @pytest.hookimpl(wrapper=True, specname="pytest_collect_file")
    def pytest_collect_file_of_scripts(
        self, file_path: Path
    ) -> Generator[None, list[pytest.Collector], list[pytest.Collector]]:
        """A training script named on the command line is ours alone: pytest's Python
        collector would import it as a test module, running its module scope."""
        collected = yield
        if file_path.suffix == ".py" and real_path(file_path) in self._collected:
            return [node for node in collected if not isinstance(node, pytest.Module)]
        return collected

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Exempt what collection leaves alive from cyclic garbage collection.

        Imports, the knowledge base's rules and the collected items live until the session
        ends, yet every full collection would walk them again: during the audits, which
        allocate many short-lived objects, when pytest collects at exit
        (``_pytest/unraisableexception.py``) and when the interpreter finalises.
        ``gc.freeze`` moves them to the permanent generation
        (https://docs.python.org/3/library/gc.html#gc.freeze): about a tenth of a session
        of 200 projected audits (docs/dev/performance.md). A later session in the same
        process unfreezes them when it starts (``__init__``), so at most one session's
        cyclic garbage waits for it."""
        gc.freeze()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "goblin", None)
        if data:
            self.results.append(WorkloadResult.model_validate(data))
        events = getattr(report, "goblin_events", None)
        if events and self._writes_events:
            self._log_events(lambda path: append_records(path, events))

    def _log_events(self, write: Any) -> None:
        """Write to the event log; when it cannot be written, say so at the end and stop
        trying, instead of ending the session in a traceback that loses every report."""
        try:
            write(self._events_path())
        except (OSError, ValueError) as exc:
            self._writes_events = False
            self._write_failures.append(
                f"event log {self._events_path()}: {describe_write_error(exc)}"
            )

    def _events_path(self) -> Path:
        assert self.settings.events_path is not None
        return self.settings.invocation_dir / self.settings.events_path

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            self._report_write_failures(terminalreporter)
            return

        width = self.config.get_terminal_writer().fullwidth
        terminalreporter.section("goblin")
        terminalreporter.line(self._header())
        others = self._other_devices()
        if others:
            terminalreporter.line(others)
        calibration = self._calibration_line or self._calibration_used()
        if calibration:
            terminalreporter.line(calibration)
        for line in describe_all(noise_floors(self._sorted())):
            terminalreporter.line(line)
        terminalreporter.line(self._agent_line())
        spread = gpu_workers(self.config)
        if spread is not None and spread.shared:
            terminalreporter.line(spread.summary_line())
        cached = cache_line(self._sorted(), events=self.settings.events_path is not None)
        if cached:
            terminalreporter.line(cached)
        terminalreporter.line("")
        for line in summary_table(self._sorted(), width).splitlines():
            terminalreporter.line(line)
        # pytest shows a skip's reason only under -rs; a skipped workload is a gap in the gate
        for result in self._sorted():
            if result.outcome == "skipped":
                terminalreporter.line(f"skipped {result.name} ({result.path}): {result.reason}")
        # a multi-rank run says how many ranks ran, and when fewer than the workload's (shrunk)
        for result in self._sorted():
            if result.baseline is not None and ranks_text(result.baseline):
                terminalreporter.line(
                    f"ranks {result.name} ({result.path}): {ranks_text(result.baseline)}"
                )
        advice = advisories_text(self._sorted(), None if self.config.get_verbosity() > 0 else width)
        if advice:
            terminalreporter.line("")
            for line in advice.splitlines():
                terminalreporter.line(line)
        if self.settings.fix:
            fixed = fix_summary(self._sorted())
            if fixed:
                terminalreporter.line("")
                for line in fixed.splitlines():
                    terminalreporter.line(line)
        self._report_history_and_outputs(terminalreporter)

    def _report_history_and_outputs(self, terminalreporter: Any) -> None:
        """What the reporters wrote, the history comparison, the closing counts line, and
        the text a reporter meant for stdout."""

        lines = list(self.report.lines) if self.report else []
        saved = self.config.stash.get(SAVED_RUN_KEY, None)
        if saved is not None:
            lines.insert(0, history.summary_line(saved, self.results, self.settings.compare_fail))
        elif self.settings.compare is not None:
            lines.insert(
                0,
                "history: "
                + history.missing_text(
                    self.settings.storage, self.settings.compare, self.settings.compare_fail
                ),
            )
        for line in ["", *lines] if lines else []:
            terminalreporter.line(line)
        terminalreporter.line("")
        terminalreporter.line(outcome_line(self._sorted(), self._run_info()))
        for text in self.report.stdout if self.report else []:
            terminalreporter.line("")
            terminalreporter.write(text)
        self._report_write_failures(terminalreporter)

    def _failures(self) -> list[str]:
        return [*self._write_failures, *(self.report.failures if self.report else [])]

    def _report_write_failures(self, terminalreporter: Any) -> None:
        """Last, after the summary: each output that could not be written, and why."""
        failures = self._failures()
        if not failures:
            return
        terminalreporter.line("")
        for failure in failures:
            terminalreporter.line(f"goblin: could not write {failure}", red=True)
        terminalreporter.line(
            "goblin: the run's results are above; the exit status is pytest's internal-error "
            f"status ({int(pytest.ExitCode.INTERNAL_ERROR)})",
            red=True,
        )

    def _run_info(self) -> RunInfo:

        saved = self.config.stash.get(SAVED_RUN_KEY, None)
        return RunInfo(
            device=self._device(),
            backend=self._backend(),
            threshold=self.settings.threshold,
            projected=self.settings.fake,
            compared_with=saved.describe() if saved else None,
            parallel=gpu_workers(self.config),
        )

    def _header(self) -> str:

        return header_line(
            self._device(), self._backend(), self.settings.threshold, self.settings.fake
        )

    def _device(self) -> Any:
        if not self.settings.fake:
            # measured: the device the workloads ran on, as their worker found it
            return next((r.device for r in self._sorted() if r.device is not None), None)

        return SimulatedDevice.named(self.settings.fake_device, self.settings.storage).info

    def _other_devices(self) -> str | None:
        """Under the header, which devices the workloads ran on when some ran on another
        than the header's (a workload's ``goblin.device``), with how many each."""
        header = self._device()
        counts: dict[str, int] = {}
        for result in self._sorted():
            if result.device is not None:
                counts[result.device.name] = counts.get(result.device.name, 0) + 1
        if not counts or (header is not None and set(counts) == {header.name}):
            return None
        ran = ", ".join(f"{name} ({n} workload{'s' * (n > 1)})" for name, n in counts.items())
        return f"devices: the workloads ran on {ran}"

    def _backend(self) -> str:

        return resolve_name(self.settings.backend, self.settings.base_url)

    def _agent_line(self) -> str:
        """Which backend drove the audits, with its model, and why it was chosen."""

        selection = select(self.settings.backend, self.settings.base_url)
        return describe(selection, self.settings.model, self.settings.base_url)

    def _sorted(self) -> list[WorkloadResult]:
        return sorted(self.results, key=lambda r: r.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Hand every result to the ``pytest_goblin_report`` reporters, once, on the controller."""
        if hasattr(self.config, "workerinput"):
            return
        if self.settings.save_calibration and not self.settings.fake:
            self._calibration_line = self._save_calibration()

        self.report = SessionReport(
            results=self._sorted(),
            run=self._run_info(),
            settings=self.settings,
            rootpath=self.config.rootpath,
            exitstatus=int(exitstatus),
        )
        try:
            self.config.hook.pytest_goblin_report(report=self.report, config=self.config)
        except Exception as exc:  # a user's reporter: the built-in outputs are written
            self.report.failures.append(
                f"a pytest_goblin_report reporter failed: {type(exc).__name__}: {exc}"
            )
        if self._failures():
            # a report that is missing must not read as an ordinary failing gate
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def _save_calibration(self) -> str:
        """Fit the analytic model to the session's measured runs and save it (thin: the
        fit and the file live in ``runner.self_calibration``)."""
        device = self._device()
        if device is None:
            return "calibration: not saved: the session has no measured run to fit"
        fingerprint = history.device_fingerprint(device)
        # one device per calibration: workloads a goblin.device sent elsewhere are left out
        same = [
            r
            for r in self._sorted()
            if r.device is not None and history.device_fingerprint(r.device) == fingerprint
        ]
        runs = self_calibration.runs_from_results(same)
        if not runs:
            return "calibration: not saved: the session has no measured run to fit"
        spec = self_calibration.fitted_spec(
            device, self.settings.fake_device, self.settings.storage
        )
        saved = self_calibration.calibrate(spec, fingerprint, device.name, runs)
        refused = self_calibration.rejection(saved)
        if refused is not None:
            return f"calibration: not saved: {refused}"
        try:
            path = self_calibration.save_calibration(self.settings.storage, saved)
        except OSError as exc:
            self._write_failures.append(f"the calibration: {describe_write_error(exc)}")
            return "calibration: not saved"
        return (
            f"calibration: saved {path} from {len(runs)} measured runs "
            f"(RMS error {saved.rms_log_error:.1%}); --goblin-fake --goblin-fake-device "
            f"{spec.name} (or {fingerprint}) projects with it"
        )

    def _calibration_used(self) -> str | None:
        """The self-calibration the projected runs used, if any."""
        for result in self._sorted():
            for metrics in (result.baseline, result.patched):
                if metrics is not None and metrics.calibration is not None:
                    return self_calibration.describe(metrics.calibration)
        return None


def real_path(path: Path) -> Path:
    """The path with symlinks resolved; a symlink loop stays as it is (``Path.resolve``
    raises on one)."""
    return Path(os.path.realpath(path))
