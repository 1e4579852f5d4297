"""--goblin-calibrate under pytest-xdist: one A/A calibration per physical device and run.

The workers of a run are simulated in one process by separate Calibrations objects
over one shared directory, as each xdist worker has its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.sample_results import run_info
from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin.audit.calibrate import MDE_FACTOR, Calibrations, describe_all
from pytest_goblin.audit.run import audit_workload
from pytest_goblin.kb.loader import KnowledgeBase
from pytest_goblin.plugin.config import CALIBRATIONS_KEY
from pytest_goblin.plugin.settings import GoblinSettings
from pytest_goblin.plugin.shared_floors import SharedFloors, run_directory
from pytest_goblin.report import html, markdown
from pytest_goblin.runner.device_session import DeviceSession, SimulatedDevice
from pytest_goblin.schemas import NoiseFloor, RunMetrics, WorkloadConfig, WorkloadResult
from pytest_goblin.workload.read import Workload


class Measurer:
    """Measures a floor for a device, counting how often it was asked to."""

    def __init__(self) -> None:
        self.measured: list[str] = []

    def measure(self, device_id: str, band: float = 0.02) -> NoiseFloor:
        self.measured.append(device_id)
        return NoiseFloor(
            device="Rig",
            device_id=device_id,
            workload="w",
            projected=False,
            rounds=3,
            n=15,
            ratio=1.0,
            ratio_ci=(1 - band, 1 + band),
            band=band,
            mde=band * MDE_FACTOR,
            cv=0.01,
        )


def worker(directory: Path) -> Calibrations:
    return Calibrations(shared=SharedFloors(directory))


def test_the_second_worker_on_a_device_reads_the_first_ones_floor(tmp_path: Path) -> None:
    counter = Measurer()
    first = worker(tmp_path).floor("rocm-3", lambda: counter.measure("rocm-3"), physical=True)
    second = worker(tmp_path).floor("rocm-3", lambda: counter.measure("rocm-3"), physical=True)
    assert counter.measured == ["rocm-3"]
    assert second == first


def test_workers_on_different_gpus_each_calibrate_their_own(tmp_path: Path) -> None:
    counter = Measurer()
    worker(tmp_path).floor("rocm-0", lambda: counter.measure("rocm-0"), physical=True)
    worker(tmp_path).floor("rocm-1", lambda: counter.measure("rocm-1"), physical=True)
    assert counter.measured == ["rocm-0", "rocm-1"]


def test_a_key_that_does_not_name_the_device_physically_is_not_shared(tmp_path: Path) -> None:
    counter = Measurer()
    for calibrations in (worker(tmp_path), worker(tmp_path)):
        calibrations.floor("rocm:Rig:", lambda: counter.measure("x"))
    assert counter.measured == ["x", "x"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"device": "Rig"}', b"\xff\xfe"])
def test_a_corrupt_shared_floor_is_measured_again_and_replaced(
    tmp_path: Path,
    content: bytes,
) -> None:
    (tmp_path / "cpu.json").write_bytes(content)
    counter = Measurer()
    floor = worker(tmp_path).floor("cpu", lambda: counter.measure("cpu"), physical=True)
    assert counter.measured == ["cpu"]
    assert NoiseFloor.model_validate_json((tmp_path / "cpu.json").read_text()) == floor


def test_a_shared_floor_of_another_device_is_not_used(tmp_path: Path) -> None:
    counter = Measurer()
    worker(tmp_path).floor("cuda-0", lambda: counter.measure("cuda-0"), physical=True)
    (tmp_path / "cuda-0.json").rename(tmp_path / "cuda-1.json")
    floor = worker(tmp_path).floor("cuda-1", lambda: counter.measure("cuda-1"), physical=True)
    assert counter.measured == ["cuda-0", "cuda-1"]
    assert floor.device_id == "cuda-1"


def test_a_floor_that_cannot_be_shared_is_still_measured_and_used(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    counter = Measurer()
    floor = worker(not_a_directory).floor("cpu", lambda: counter.measure("cpu"), physical=True)
    assert counter.measured == ["cpu"] and floor.device_id == "cpu"


def test_without_filelock_racing_workers_both_use_the_floor_written_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "filelock", None)
    counter = Measurer()
    fast = worker(tmp_path)

    def slow_measure() -> NoiseFloor:
        # another worker finishes its measurement of the device while this one measures
        fast.floor("cpu", lambda: counter.measure("cpu", band=0.01), physical=True)
        return counter.measure("cpu", band=0.05)

    slow = worker(tmp_path).floor("cpu", slow_measure, physical=True)
    assert len(counter.measured) == 2
    assert slow == fast.floors["cpu"] and slow.band == 0.01


def test_run_directories_are_named_after_the_test_run() -> None:
    assert run_directory("a1b2").name == "pytest-goblin-calibration-a1b2"
    assert run_directory("../x").parent == run_directory("a1b2").parent


class CountingRig:
    """A measured-looking device with a physical id, counting its runs."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Rig"})
        self.runs = 0

    def unsupported(self, config: WorkloadConfig) -> None:
        return None

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        self.runs += 1
        metrics = self.projector.run(config, steps)
        return metrics.model_copy(
            update={"projected": False, "samples": [metrics.tokens_per_sec] * 5}
        )


class RigSession(DeviceSession):
    def __init__(self, rig: CountingRig) -> None:
        super().__init__("mi300x")
        self.rig = rig

    def runner_for(self, device=None, settings=None):  # type: ignore[no-untyped-def]
        return self.rig


def audit_runs(
    calibrations: Calibrations | None, workload: Workload, kb: KnowledgeBase
) -> tuple[int, NoiseFloor | None]:
    """How many runs auditing ``workload`` made on a fresh rig on GPU rocm-2, and its floor."""
    rig = CountingRig("rocm-2")
    outcome = audit_workload(
        workload, RigSession(rig), GoblinSettings(max_repeats=2), kb, calibrations=calibrations
    )
    return rig.runs, outcome.noise_floor


def test_audits_in_two_workers_on_one_gpu_calibrate_it_once(
    tmp_path: Path,
    workload,
    kb: KnowledgeBase,  # type: ignore[no-untyped-def]
) -> None:
    mistuned: Workload = workload(MISTUNED_YAML)
    uncalibrated, _ = audit_runs(None, mistuned, kb)
    first_runs, first = audit_runs(worker(tmp_path), mistuned, kb)
    second_runs, second = audit_runs(worker(tmp_path), mistuned, kb)
    assert (first_runs, second_runs) == (uncalibrated + 6, uncalibrated)
    assert first is not None and first.device_id == "rocm-2"
    assert second == first


def test_floors_of_two_gpus_of_one_model_name_their_devices() -> None:
    counter = Measurer()
    one, two = counter.measure("rocm-0"), counter.measure("rocm-1")
    cpu = counter.measure("cpu").model_copy(update={"device": "AMD EPYC"})
    lines = describe_all([one, two, cpu])
    assert lines[0].startswith("noise floor on Rig (rocm-0): ±2.0%")
    assert lines[1].startswith("noise floor on Rig (rocm-1): ±2.0%")
    assert lines[2].startswith("noise floor on AMD EPYC: ±2.0%")


def test_the_markdown_and_html_reports_name_the_gpus_of_floors_of_one_model(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    counter = Measurer()
    results = [
        failed.model_copy(update={"noise_floor": counter.measure("rocm-0")}),
        passed.model_copy(update={"noise_floor": counter.measure("rocm-1")}),
    ]
    info = run_info(failed)
    for text in (markdown.render(results, info), html.render(results, info)):
        assert "noise floor on Rig (rocm-0)" in text and "noise floor on Rig (rocm-1)" in text


def test_without_xdist_workers_a_session_keeps_its_floors_to_itself(
    pytester: pytest.Pytester,
) -> None:
    config = pytester.parseconfigure("--goblin", "--goblin-fake", "--goblin-calibrate")
    assert config.stash[CALIBRATIONS_KEY].shared is None


SHARED_FILES_AT_THE_END = '''
import tempfile
from pathlib import Path


def pytest_goblin_report(report):
    """On the controller, after the last workload: the floors the workers shared."""
    shared = Path(tempfile.gettempdir()).glob("pytest-goblin-calibration-*/*.json")
    Path("shared.txt").write_text(" ".join(path.name for path in shared))
'''


def test_two_workers_on_one_device_report_a_single_floor_and_leave_no_files(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pytest.importorskip("xdist")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    pytester.makeconftest(SHARED_FILES_AT_THE_END)
    pytester.makefile(".goblin.yaml", a=MISTUNED_YAML, b=TUNED_YAML)
    result = pytester.runpytest_subprocess(
        "--goblin",
        "--goblin-fake",
        "--goblin-calibrate",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--goblin-json",
        "out.json",
    )
    result.assert_outcomes(failed=1, passed=1)
    document = json.loads((pytester.path / "out.json").read_text())
    (only,) = document["noise_floors"]
    assert only["device_id"] == "simulated-mi300x"
    assert [w["noise_floor"] for w in document["workloads"]] == [only, only]
    assert result.stdout.str().count("noise floor on AMD Instinct MI300X") == 1
    assert (pytester.path / "shared.txt").read_text() == "simulated-mi300x.json"
    assert [
        path.name for path in temp.iterdir() if path.name.startswith("pytest-goblin-calibration-")
    ] == []
