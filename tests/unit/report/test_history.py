"""Specification of saved runs and regression against them (--goblin-save / --goblin-compare)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import paths
from helpers.sample_results import errored
from helpers.workloads import TUNED_YAML
from pytest_goblin import history
from pytest_goblin.gitinfo import Commit
from pytest_goblin.history import HistoryError
from pytest_goblin.report.junit import properties
from pytest_goblin.schemas import DeviceInfo, HistoryComparison, WorkloadResult

EXAMPLE = paths.EXAMPLE_PROJECT
SAVED_AT = datetime(2025, 1, 31, 12, 0, tzinfo=timezone.utc)
COMMIT = Commit(id="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", branch="main", dirty=False)

# A run as version 1 wrote it, with a field a later 1.x writer might add: it must stay readable.
V1_DOCUMENT = {
    "schema_version": 1,
    "generator": "pytest-goblin 0.1.0",
    "id": "0007_main",
    "name": "main",
    "saved_at": "2025-01-31T12:00:00Z",
    "commit": {"id": COMMIT.id, "branch": "main", "dirty": False},
    "added_later": {"anything": True},
    "workloads": {
        "workloads/w.goblin.yaml::llama-mistuned": {
            "name": "llama-mistuned",
            "path": "workloads/w.goblin.yaml",
            "outcome": "failed",
            "config_hash": "c58f6fd03bcd1fde",
            "device": {
                "kind": "simulated",
                "name": "AMD Instinct MI300X",
                "platform": "rocm-instinct",
                "memory_gb": 192.0,
                "arch": "gfx942",
            },
            "device_fingerprint": history.device_fingerprint(
                {
                    "kind": "simulated",
                    "name": "AMD Instinct MI300X",
                    "platform": "rocm-instinct",
                    "memory_gb": 192.0,
                    "arch": "gfx942",
                }
            ),
            "baseline": {
                "tokens_per_sec": 1500.0,
                "step_time_s": 2.7,
                "mfu_pct": 3.5,
                "hbm_peak_gb": 160.8,
                "projected": True,
                "new_metric": 1,
            },
            "patched": None,
            "speedup": 1.0,
            "speedup_ci": None,
        },
    },
}


def slower(result: WorkloadResult, factor: float) -> WorkloadResult:
    assert result.baseline is not None
    baseline = result.baseline.model_copy(
        update={"tokens_per_sec": result.baseline.tokens_per_sec * factor}
    )
    return result.model_copy(update={"baseline": baseline})


def on_device(result: WorkloadResult, **changes: object) -> WorkloadResult:
    assert result.device is not None
    return result.model_copy(update={"device": result.device.model_copy(update=changes)})


def measured(result: WorkloadResult, windows: list[float]) -> WorkloadResult:
    """``result`` as a measured run on a ROCm device whose baseline windows gave these tokens/s."""
    assert result.baseline is not None
    baseline = result.baseline.model_copy(
        update={
            "samples": windows,
            "tokens_per_sec": statistics.median(windows),
            "projected": False,
        }
    )
    return on_device(result, kind="rocm").model_copy(
        update={"baseline": baseline, "projected": False}
    )


# --- storage -------------------------------------------------------------------------------


def test_a_saved_run_reads_back_with_metrics_fingerprint_config_hash_and_commit(
    tmp_path: Path,
    failed: WorkloadResult,
) -> None:
    path = history.save(tmp_path, "main", [failed], COMMIT, SAVED_AT)
    assert path == tmp_path / "runs" / "0001_main.json"
    run = history.load_run(path)
    entry = run.workloads[failed.nodeid]
    assert failed.baseline is not None and failed.device is not None
    assert entry.baseline.tokens_per_sec == failed.baseline.tokens_per_sec
    assert entry.config_hash == failed.baseline.config_hash != ""
    assert entry.device_fingerprint == history.device_fingerprint(failed.device)
    assert run.commit is not None and run.commit.id == COMMIT.id
    assert (run.id, run.name, run.saved_at) == ("0001_main", "main", "2025-01-31T12:00:00Z")


def test_runs_are_numbered_and_never_overwritten(tmp_path: Path, failed: WorkloadResult) -> None:
    first = history.save(tmp_path, "main", [failed], None)
    second = history.save(tmp_path, "main", [failed], None)
    assert (first.name, second.name) == ("0001_main.json", "0002_main.json")


def test_a_name_selects_the_newest_run_of_that_name_and_an_id_selects_exactly(
    tmp_path: Path,
    failed: WorkloadResult,
) -> None:
    for name in ("main", "pr", "main", "pr"):
        history.save(tmp_path, name, [failed], None)

    def selected(wanted: str) -> str | None:
        run = history.select(tmp_path, wanted)
        return run.id if run else None

    assert selected("main") == "0003_main"
    assert selected("0001_main") == "0001_main"
    assert selected("latest") == "0004_pr"
    assert selected("nightly") is None


def test_errored_workloads_are_not_saved(tmp_path: Path, failed: WorkloadResult) -> None:
    run = history.load_run(history.save(tmp_path, "main", [failed, errored()], None))
    assert list(run.workloads) == [failed.nodeid]


def test_the_written_file_is_versioned_json(tmp_path: Path, failed: WorkloadResult) -> None:
    data = json.loads(history.save(tmp_path, "x", [failed], None).read_text())
    assert data["schema_version"] == history.SCHEMA_VERSION == 1
    assert data["generator"].startswith("pytest-goblin ")


def test_a_version_1_document_with_fields_added_later_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "0007_main.json"
    path.parent.mkdir()
    path.write_text(json.dumps(V1_DOCUMENT))
    run = history.load_run(path)
    assert run.workloads["workloads/w.goblin.yaml::llama-mistuned"].baseline.tokens_per_sec == 1500


def test_a_run_from_a_newer_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "0001_future.json"
    path.write_text(
        json.dumps({**V1_DOCUMENT, "schema_version": 2, "generator": "pytest-goblin 9.0"})
    )
    with pytest.raises(
        HistoryError,
        match=r"newer pytest-goblin \(pytest-goblin 9.0, schema "
        r"version 2\).*upgrade pytest-goblin",
    ):
        history.load_run(path)


@pytest.mark.parametrize("content", ["{not json", '{"schema_version": 1, "id": "x"}', "[1, 2]"])
def test_a_corrupt_run_is_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "0001_bad.json"
    path.write_text(content)
    with pytest.raises(
        HistoryError,
        match=r"0001_bad\.json: (saved run is corrupt|not a "
        r"pytest-goblin saved run)",
    ):
        history.load_run(path)


def test_the_device_fingerprint_separates_devices_and_projected_from_measured(
    failed: WorkloadResult,
) -> None:
    assert failed.device is not None
    simulated = history.device_fingerprint(failed.device)
    measured = history.device_fingerprint(failed.device.model_copy(update={"kind": "rocm"}))
    other = history.device_fingerprint(
        DeviceInfo(
            kind="simulated", name="NVIDIA H100 SXM", platform="cuda", memory_gb=80, arch="sm_90"
        )
    )
    assert len({simulated, measured, other}) == 3
    assert history.device_fingerprint(failed.device.model_dump()) == simulated


# --- comparing ---------------------------------------------------------------------------


def saved_run(tmp_path: Path, *results: WorkloadResult) -> history.SavedRun:
    return history.load_run(history.save(tmp_path, "main", list(results), COMMIT, SAVED_AT))


def test_the_same_workload_on_the_same_device_is_compared_by_baseline_tokens_per_second(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    comparison = history.compare(saved_run(tmp_path, passed), slower(passed, 0.8), None)
    assert comparison is not None and comparison.status == "compared"
    assert comparison.change_pct == pytest.approx(-20.0)
    assert not comparison.regressed and comparison.saved_commit == COMMIT.id


def test_a_drop_beyond_the_fail_percentage_is_a_regression(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    run = saved_run(tmp_path, passed)

    def regressed(factor: float) -> bool:
        comparison = history.compare(run, slower(passed, factor), 10.0)
        assert comparison is not None
        return comparison.regressed

    assert (regressed(0.8), regressed(0.95), regressed(1.3)) == (True, False, False)


STEADY = [1000.0, 1010.0, 990.0, 1005.0, 995.0, 1002.0]
"""Windows of a measured run whose spread is about 1%."""


def test_a_measured_drop_beyond_the_fail_percentage_with_an_interval_beyond_it_is_a_regression(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    run = saved_run(tmp_path, measured(passed, STEADY))
    comparison = history.compare(run, measured(passed, [w * 0.8 for w in STEADY]), 10.0)
    assert comparison is not None and comparison.regressed
    assert comparison.change_ci_pct is not None and comparison.change_ci_pct[1] < -10.0
    assert "at 95% confidence, measured): slower by more than 10%" in comparison.reason


def test_a_measured_drop_whose_interval_reaches_inside_the_fail_percentage_is_not_a_regression(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    run = saved_run(tmp_path, measured(passed, STEADY))
    noisy = [850.0, 1150.0, 700.0, 1190.0, 860.0, 500.0]
    comparison = history.compare(run, measured(passed, noisy), 10.0)
    assert comparison is not None and comparison.change_pct is not None
    assert comparison.change_pct < -10.0 and not comparison.regressed
    assert comparison.change_ci_pct is not None and comparison.change_ci_pct[1] > -10.0
    assert "within the two runs' noise, not a regression" in comparison.reason


def test_the_interval_of_a_measured_change_is_the_same_on_every_comparison(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    run = saved_run(tmp_path, measured(passed, STEADY))
    now = measured(passed, [w * 0.93 for w in reversed(STEADY)])
    first, second = history.compare(run, now, 5.0), history.compare(run, now, 5.0)
    assert first is not None and second is not None
    assert first.change_ci_pct == second.change_ci_pct


def test_a_measured_run_with_too_few_windows_is_judged_on_its_point_and_says_so(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    run = saved_run(tmp_path, measured(passed, STEADY))
    comparison = history.compare(run, measured(passed, [800.0, 790.0]), 10.0)
    assert comparison is not None and comparison.regressed and comparison.change_ci_pct is None
    assert "point estimates: a run has fewer than 3 windows" in comparison.reason


def test_a_projected_change_has_no_interval(tmp_path: Path, passed: WorkloadResult) -> None:
    comparison = history.compare(saved_run(tmp_path, passed), slower(passed, 0.8), 10.0)
    assert comparison is not None and comparison.change_ci_pct is None
    assert "(-20.0%, projected): slower by more than 10%" in comparison.reason


def test_the_change_text_carries_the_interval_when_there_is_one() -> None:
    point = HistoryComparison(run="0001_main", status="compared", change_pct=-7.94)
    ranged = point.model_copy(update={"change_ci_pct": (-9.42, -6.2)})
    assert (history.change_text(point), history.change_text(ranged)) == (
        "-7.9%",
        "-7.9% [-9.4%, -6.2%]",
    )


def test_the_interval_of_a_change_becomes_a_junit_property(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    now = measured(passed, [w * 0.8 for w in STEADY])
    comparison = history.compare(saved_run(tmp_path, measured(passed, STEADY)), now, 10.0)
    assert comparison is not None and comparison.change_ci_pct is not None
    props = dict(properties(now.model_copy(update={"history": comparison})))
    low, high = comparison.change_ci_pct
    assert props["goblin_history_change_ci_pct"] == f"{low:.2f},{high:.2f}"


def test_another_device_is_not_comparable_and_never_a_regression(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    moved = on_device(slower(passed, 0.5), name="NVIDIA H100 SXM", platform="cuda")
    comparison = history.compare(saved_run(tmp_path, passed), moved, 5.0)
    assert comparison is not None and comparison.status == "not_comparable"
    assert not comparison.regressed and comparison.change_pct is None
    assert "saved on AMD Instinct MI300X (simulated), now on NVIDIA H100 SXM" in comparison.reason


def test_a_measured_number_is_not_compared_with_a_projected_one(
    tmp_path: Path,
    passed: WorkloadResult,
) -> None:
    comparison = history.compare(saved_run(tmp_path, passed), on_device(passed, kind="rocm"), 5.0)
    assert comparison is not None and comparison.status == "not_comparable"


def test_a_workload_the_saved_run_lacks_is_new(
    tmp_path: Path, passed: WorkloadResult, failed: WorkloadResult
) -> None:
    comparison = history.compare(saved_run(tmp_path, passed), failed, 5.0)
    assert comparison is not None and comparison.status == "new" and not comparison.regressed


def test_a_changed_config_is_flagged(tmp_path: Path, passed: WorkloadResult) -> None:
    assert passed.baseline is not None
    edited = passed.model_copy(
        update={"baseline": passed.baseline.model_copy(update={"config_hash": "0000000000000000"})}
    )
    comparison = history.compare(saved_run(tmp_path, passed), edited, None)
    assert comparison is not None and comparison.config_changed
    assert "the config changed since" in comparison.reason


# --- through pytest -----------------------------------------------------------------------


def example_project(pytester: pytest.Pytester) -> None:
    shutil.copytree(
        EXAMPLE,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".goblin", ".pytest_cache", "__pycache__"),
    )


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args, "workloads"
    )


def outcomes(pytester: pytest.Pytester, report: str) -> dict[str, str]:
    document = json.loads((pytester.path / report).read_text())
    return {w["nodeid"]: w["outcome"] for w in document["workloads"]}


def test_a_save_compare_round_trip_fails_only_the_workload_that_regressed(
    pytester: pytest.Pytester,
) -> None:
    example_project(pytester)
    first = run_goblin(pytester, "--goblin-save=main", "--goblin-json=first.json")
    first.stdout.fnmatch_lines(["history: saved run 0001_main to *"])
    nodeid = "workloads/llama3-8b-lora-tuned.goblin.yaml::llama3-8b-lora-tuned"
    before_outcomes = outcomes(pytester, "first.json")
    assert before_outcomes[nodeid] == "passed"
    tuned = pytester.path / "workloads" / "llama3-8b-lora-tuned.goblin.yaml"
    tuned.write_text(tuned.read_text().replace("batch_size: 4", "batch_size: 2"))

    second = run_goblin(
        pytester, "--goblin-compare=main", "--goblin-compare-fail=5", "--goblin-json=second.json"
    )

    assert outcomes(pytester, "second.json") == {**before_outcomes, nodeid: "failed"}
    then = json.loads((pytester.path / ".goblin/runs/0001_main.json").read_text())
    before = then["workloads"][nodeid]["baseline"]["tokens_per_sec"]
    (now,) = [
        w
        for w in json.loads((pytester.path / "second.json").read_text())["workloads"]
        if w["nodeid"] == nodeid
    ]
    after = now["baseline"]["tokens_per_sec"]
    assert after < before * 0.95
    second.stdout.fnmatch_lines(
        [
            "*_ goblin workload: llama3-8b-lora-tuned _*",
            f"llama3-8b-lora-tuned: regressed against saved run 0001_main "
            f"({(after - before) / before * 100:+.1f}%):",
            f"  baseline {after:,.0f} tok/s against {before:,.0f} tok/s in saved run 0001_main "
            f"({(after - before) / before * 100:+.1f}%, projected): slower by more than 5%; "
            "the config changed since",
        ]
    )
    second.stdout.fnmatch_lines(
        ["history: against 0001_main (saved *): * compared, 1 regressed beyond 5%"]
    )
    assert second.stdout.str().count("regressed against saved run") == 1


def test_without_compare_fail_a_drop_is_reported_but_fails_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save=base")
    (pytester.path / "w.goblin.yaml").write_text(
        TUNED_YAML.replace("batch_size: 4", "batch_size: 2")
    )
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-compare", "--goblin-md=-")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["history: against 0001_base *: 1 compared", "| llama-tuned | * | ✅ passed | -1?.?% |"]
    )


def test_a_run_on_another_device_is_reported_not_comparable(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save")
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "--goblin-fake-device=h100", "--goblin-compare-fail=1"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "history: against 0001_* (*): 0 compared, 0 regressed beyond "
            "1%, 1 not comparable (other device)"
        ]
    )


def test_nothing_saved_yet_is_said_and_is_not_an_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-compare-fail=5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "history: no saved run under *runs yet: nothing to compare "
            "with (save one with --goblin-save); --goblin-compare-fail 5 "
            "fails nothing in this run"
        ]
    )


def test_a_mistyped_run_name_is_answered_with_the_closest_saved_names(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save=main")
    result = pytester.runpytest(
        "--goblin", "--goblin-fake", "--goblin-compare=mian", "--goblin-compare-fail=5"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "history: no saved run named 'mian' (did you mean 'main'?) under *runs: nothing to "
            "compare with (latest: 0001_main); --goblin-compare-fail 5 fails nothing in this run"
        ]
    )


def test_a_corrupt_latest_run_is_a_usage_error_naming_the_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    runs = pytester.path / ".goblin" / "runs"
    runs.mkdir(parents=True)
    (runs / "0001_main.json").write_text('{"schema_version": 1, "workl')
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --goblin-compare: *0001_main.json: saved run is corrupt*"])


def test_a_run_from_a_newer_version_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    runs = pytester.path / "perf-history" / "runs"
    runs.mkdir(parents=True)
    (runs / "0001_main.json").write_text(json.dumps({**V1_DOCUMENT, "schema_version": 99}))
    pytester.makeini("[pytest]\ngoblin_storage = perf-history\n")
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-compare=main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*saved by a newer pytest-goblin*schema version 99*"])


def test_a_bare_save_before_a_path_is_a_usage_error_that_says_how(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save", "workloads/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'workloads/' is not a run name*write --goblin-save=NAME*"])


@pytest.mark.parametrize("value", ["fast", "0", "150%"])
def test_a_bad_compare_fail_percentage_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    result = pytester.runpytest("--goblin", "--goblin-fake", f"--goblin-compare-fail={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--goblin-compare-fail must be*"])


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_run_saved_in_a_git_checkout_records_the_commit(pytester: pytest.Pytester) -> None:
    pytester.makefile(".goblin.yaml", w=TUNED_YAML)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "w.goblin.yaml"], ["commit", "-q", "-m", "w"]):
        subprocess.run([*git, *args], cwd=pytester.path, check=True, capture_output=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pytester.path, check=True, capture_output=True, text=True
    ).stdout.strip()
    pytester.runpytest("--goblin", "--goblin-fake", "--goblin-save")
    (saved,) = (pytester.path / ".goblin" / "runs").iterdir()
    assert saved.name == f"0001_{head[:12]}.json"
    commit = json.loads(saved.read_text())["commit"]
    assert (commit["id"], commit["dirty"]) == (head, False)


def test_an_interrupted_run_is_not_saved(tmp_path: Path, failed: WorkloadResult) -> None:
    from pytest_goblin.plugin.settings import GoblinSettings
    from pytest_goblin.report.publish import publish
    from pytest_goblin.report.summary import RunInfo

    settings = GoblinSettings(save="main", storage=tmp_path / ".goblin", invocation_dir=tmp_path)
    info = RunInfo(device=failed.device, backend="planner", threshold=0.1, projected=True)
    published = publish([failed], info, settings, tmp_path, interrupted=True)
    assert published.lines == ["history: not saved: the run was interrupted"]
    assert not (tmp_path / ".goblin").exists()
    saved = publish([failed], info, settings, tmp_path)
    assert saved.lines[0].startswith("history: saved run 0001_main")
