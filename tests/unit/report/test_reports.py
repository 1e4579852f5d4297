"""Specification of the reports: terminal table, failure text, JSON document, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_goblin.agent.loop import audit
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.atomic import write_text
from pytest_goblin.report import json_report
from pytest_goblin.report.terminal import (
    advisories_text,
    failure_text,
    header_line,
    summary_table,
)
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.verdict import result as results
from pytest_goblin.workload.read import Workload

THRESHOLD = 0.10


@pytest.fixture
def failed(mistuned: Workload, context: AuditContext) -> WorkloadResult:
    outcome = audit(mistuned, context)
    assert outcome.report is not None
    return results.from_report(
        "workloads/w.goblin.yaml::llama-mistuned", mistuned, outcome.report, THRESHOLD
    )


@pytest.fixture
def passed(tuned: Workload, context: AuditContext) -> WorkloadResult:
    outcome = audit(tuned, context)
    assert outcome.report is not None
    return results.from_report(
        "workloads/tuned.goblin.yaml::llama-tuned", tuned, outcome.report, THRESHOLD
    )


@pytest.fixture
def errored() -> WorkloadResult:
    return results.from_error(
        "workloads/bad.goblin.yaml::bad",
        "workloads/bad.goblin.yaml",
        "bad",
        "workloads/bad.goblin.yaml: file is empty",
        THRESHOLD,
    )


def body_rows(table: str) -> list[str]:
    lines = table.splitlines()
    assert lines[0].split()[0] == "workload"
    return lines[2:]


# --- WorkloadResult ----------------------------------------------------------------------


def test_a_mistuned_workload_becomes_a_failed_result_with_its_rules(
    failed: WorkloadResult,
) -> None:
    assert failed.outcome == "failed"
    assert failed.patch is not None and failed.patch.diff
    assert {"bf16-mixed-precision", "flash-attention"} <= {rule.id for rule in failed.rules}


def test_a_tuned_workload_becomes_a_passed_result_without_a_patch(
    passed: WorkloadResult,
) -> None:
    assert passed.outcome == "passed"
    assert passed.patch is None
    assert passed.rules == []


# --- terminal ------------------------------------------------------------------------------


def test_summary_table_has_one_row_per_result(
    failed: WorkloadResult, passed: WorkloadResult, errored: WorkloadResult
) -> None:
    rows = body_rows(summary_table([failed, passed, errored]))
    assert [row.split()[0] for row in rows] == ["llama-mistuned", "llama-tuned", "bad"]


def test_summary_table_shows_error_for_an_errored_workload(errored: WorkloadResult) -> None:
    (row,) = body_rows(summary_table([errored]))
    assert "ERROR" in row.split()
    assert row.split()[1:4] == ["-", "-", "-"]


def test_summary_table_shows_failed_in_capitals_and_passed_in_lower_case(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    failed_row, passed_row = body_rows(summary_table([failed, passed]))
    assert "FAILED" in failed_row.split()
    assert "passed" in passed_row.split()
    assert "bf16-mixed-precision," in failed_row.split()


def test_summary_table_shows_no_patched_throughput_without_a_patch(
    passed: WorkloadResult,
) -> None:
    (row,) = body_rows(summary_table([passed]))
    assert row.split()[2] == "-"
    assert row.split()[3] == "1.00×"


def test_failure_text_lists_each_change_with_its_rule_id_and_citations(
    failed: WorkloadResult,
) -> None:
    text = failure_text(failed)
    assert "  precision: fp32 -> bf16  [bf16-mixed-precision]" in text.splitlines()
    assert "  attention_impl: eager -> flash  [flash-attention]" in text.splitlines()
    for rule in failed.rules:
        for url in rule.citation:
            assert f"      {url}" in text.splitlines()


def test_failure_text_ends_with_the_diff_to_apply(failed: WorkloadResult) -> None:
    assert failed.patch is not None
    text = failure_text(failed)
    assert "patch for workloads/w.goblin.yaml (git apply):" in text
    assert failed.patch.diff.rstrip("\n") in text
    assert "+precision: bf16   # copied from a tutorial" in text.splitlines()


def test_failure_text_states_the_speedup_label_and_threshold(failed: WorkloadResult) -> None:
    first = failure_text(failed).splitlines()[0]
    assert first.startswith(f"llama-mistuned: a patched config is {failed.speedup:.2f}× faster")
    assert "(projected on AMD Instinct MI300X (simulated))" in first
    assert first.endswith("threshold 1.10×")


def test_advisories_are_listed_once_per_rule_for_all_workloads(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    lines = advisories_text([failed, passed]).splitlines()
    headings = [line.split(" (")[0] for line in lines if line.startswith("advisory ")]
    assert len(headings) == len(set(headings))
    assert any(line.startswith("advisory numa-balancing-off (all workloads): ") for line in lines)
    assert lines[1].startswith("    https://")


def test_header_line_says_whether_numbers_are_projected() -> None:
    line = header_line(None, "planner", 0.1, fake=True)
    assert line == (
        "device: unknown device | backend: planner | threshold: 10% | "
        "numbers: projected (analytic model)"
    )


# --- JSON ----------------------------------------------------------------------------------


def test_json_report_has_schema_version_1_and_the_documented_keys(
    failed: WorkloadResult, errored: WorkloadResult
) -> None:
    document = json_report.build([failed, errored], failed.device, "planner", THRESHOLD, fake=True)
    assert document["schema_version"] == 1
    assert {"schema_version", "device", "backend", "threshold", "projected", "workloads"} <= set(
        document
    )
    assert document["device"]["kind"] == "simulated"
    assert document["backend"] == "planner"
    assert document["threshold"] == THRESHOLD
    assert document["projected"] is True
    assert [w["outcome"] for w in document["workloads"]] == ["failed", "error"]
    assert json.loads(json.dumps(document)) == document


def test_json_report_workloads_round_trip_to_results(failed: WorkloadResult) -> None:
    document = json_report.build([failed], failed.device, "planner", THRESHOLD, fake=True)
    assert WorkloadResult.model_validate(document["workloads"][0]) == failed


def test_json_report_write_produces_the_document(tmp_path: Path, errored: WorkloadResult) -> None:
    document = json_report.build([errored], None, "planner", THRESHOLD, fake=True)
    path = tmp_path / "out" / "goblin.json"
    json_report.write(path, document)
    assert json.loads(path.read_text(encoding="utf-8")) == document


# --- atomic writes -------------------------------------------------------------------------


def test_atomic_write_replaces_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old content that is longer than the new one")
    write_text(path, "new")
    assert path.read_text(encoding="utf-8") == "new"


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_text(tmp_path / "report.json", "data")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_gives_the_permissions_a_plain_write_would(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("data")
    write_text(tmp_path / "report.json", "data")
    assert (tmp_path / "report.json").stat().st_mode == plain.stat().st_mode


def test_atomic_write_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.json"
    write_text(path, "data")
    assert path.read_text(encoding="utf-8") == "data"


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_text(path, "\udcff")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
