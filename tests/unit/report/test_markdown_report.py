"""Specification of the Markdown summary (``--goblin-md``), checked by parsing it as GFM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from helpers.sample_results import audited, errored, run_info
from helpers.workloads import MISTUNED_YAML, TUNED_YAML, WorkloadFactory
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.plugin.xdist_gpus import GpuWorkers
from pytest_goblin.report import markdown
from pytest_goblin.schemas import BudgetCheck, HistoryComparison, WorkloadResult

pytestmark = pytest.mark.usefixtures("no_step_summary")


@pytest.fixture
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def parse(text: str) -> list[Token]:
    """GitHub-flavoured Markdown as far as we use it: CommonMark plus tables."""
    return MarkdownIt("commonmark").enable("table").parse(text)


def table_rows(tokens: list[Token]) -> list[list[str]]:
    """Each table row as the rendered text of its cells, header row first."""
    rows: list[list[str]] = []
    in_table = False
    for token in tokens:
        if token.type in ("table_open", "table_close"):
            in_table = token.type == "table_open"
        elif in_table and token.type == "tr_open":
            rows.append([])
        elif in_table and token.type == "inline":
            rows[-1].append(
                "".join(
                    child.content
                    for child in token.children or []
                    if child.type in ("text", "code_inline")
                )
            )
    return rows


def test_the_summary_is_a_gfm_table_with_a_header_and_one_row_per_workload(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    tokens = parse(markdown.render([failed, passed], run_info(failed)))
    rows = table_rows(tokens)
    assert rows[0] == ["workload", "baseline tok/s", "patched tok/s", "speedup", "verdict"]
    assert [row[0] for row in rows[1:]] == ["llama-mistuned", "llama-tuned"]
    assert rows[1][4] == "❌ failed" and rows[2][4] == "✅ passed"
    assert rows[1][1] == f"{failed.baseline.tokens_per_sec:,.0f}"


def test_the_heading_counts_outcomes_and_the_numbers_are_labelled_projected(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    text = markdown.render([failed, passed, errored()], run_info(failed))
    tokens = parse(text)
    assert tokens[0].type == "heading_open" and tokens[0].tag == "h2"
    assert tokens[1].content == "pytest-goblin: 1 failed, 1 error, 1 passed"
    assert "projected by the analytic model" in text


def test_a_failing_workload_gets_a_collapsible_section_with_its_diff_and_citations(
    failed: WorkloadResult,
) -> None:
    tokens = parse(markdown.render([failed], run_info(failed)))
    html_blocks = [t.content for t in tokens if t.type == "html_block"]
    assert html_blocks[0].startswith("<details>\n<summary>")
    assert "<b>llama-mistuned</b>" in html_blocks[0]
    assert html_blocks[-1].strip() == "</details>"
    fences = [t for t in tokens if t.type == "fence"]
    assert [f.info for f in fences] == ["diff"]
    assert fences[0].content == failed.patch.diff
    links = {
        child.attrs["href"]
        for t in tokens
        if t.type == "inline"
        for child in t.children or []
        if child.type == "link_open"
    }
    assert {url for rule in failed.rules for url in rule.citation} <= links


def test_each_change_is_listed_with_its_rule_inside_the_section(failed: WorkloadResult) -> None:
    text = markdown.render([failed], run_info(failed))
    body = text.split("<details>", 1)[1]
    for change in failed.patch.changes:
        assert f"`{change.field}`" in body and f"(rule `{change.rule_id}`)" in body


def test_a_passing_workload_gets_no_section(passed: WorkloadResult) -> None:
    tokens = parse(markdown.render([passed], run_info(passed)))
    assert not [t for t in tokens if t.type == "html_block"]


def test_an_errored_workload_gets_a_section_with_its_error(failed: WorkloadResult) -> None:
    bad = errored()
    tokens = parse(markdown.render([bad], run_info(failed)))
    assert (
        "⚠️ error <b>bad</b>"
        in tokens[next(i for i, t in enumerate(tokens) if t.type == "html_block")].content
    )
    assert [t.content.strip() for t in tokens if t.type == "fence"] == [bad.error]


def test_workload_names_with_markdown_syntax_render_literally(
    workload: WorkloadFactory,
    context: AuditContext,
) -> None:
    odd = MISTUNED_YAML.replace("name: llama-mistuned", "name: 'a|b *c* <i>d</i> [e](f)'")
    result = audited(workload(odd), context)
    rows = table_rows(parse(markdown.render([result], run_info(result))))
    assert rows[1][0] == "a|b *c* <i>d</i> [e](f)"
    assert len(rows[1]) == 5


def test_the_speedup_cell_shows_the_confidence_interval_when_there_is_one(
    failed: WorkloadResult,
) -> None:
    with_ci = failed.model_copy(update={"speedup_ci": (1.5, 1.9)})
    rows = table_rows(parse(markdown.render([with_ci], run_info(with_ci))))
    assert rows[1][3] == f"{with_ci.speedup:.2f}× (CI 1.50–1.90)"


def test_a_history_column_appears_only_when_a_saved_run_was_compared(
    passed: WorkloadResult,
) -> None:
    assert "vs saved run" not in markdown.render([passed], run_info(passed))
    compared = passed.model_copy(
        update={
            "history": HistoryComparison(
                run="0001_main",
                status="compared",
                saved_tokens_per_sec=100.0,
                tokens_per_sec=80.0,
                change_pct=-20.0,
                regressed=True,
                fail_pct=5.0,
                reason="slower",
            )
        }
    )
    rows = table_rows(parse(markdown.render([compared], run_info(passed, "0001_main"))))
    assert rows[0][-1] == "vs saved run" and rows[1][-1] == "-20.0% regressed"


def test_a_line_under_the_facts_says_when_xdist_workers_shared_the_gpus(
    passed: WorkloadResult,
) -> None:
    info = replace(run_info(passed), parallel=GpuWorkers(workers=3, gpus=2))
    inlines = [t.content for t in parse(markdown.render([passed], info)) if t.type == "inline"]
    assert inlines[1].startswith("Numbers ")
    assert inlines[2] == (
        "goblin: 3 xdist workers share 2 GPUs: benchmarks on a shared GPU wait for its lock"
    )


@pytest.mark.parametrize(
    "parallel", [None, GpuWorkers(workers=2, gpus=2)], ids=["serial", "one-worker-per-gpu"]
)
def test_no_xdist_line_when_no_gpu_was_shared(
    passed: WorkloadResult, parallel: GpuWorkers | None
) -> None:
    info = replace(run_info(passed), parallel=parallel)
    assert "xdist" not in markdown.render([passed], info)


def test_a_section_lists_missed_budgets_and_the_regression_with_their_numbers(
    passed: WorkloadResult,
) -> None:
    regressed = passed.model_copy(
        update={
            "outcome": "failed",
            "budgets": [BudgetCheck(key="min_mfu_pct", limit=50.0, value=33.7, ok=False)],
            "history": HistoryComparison(
                run="0001_main",
                status="compared",
                change_pct=-20.0,
                regressed=True,
                fail_pct=5.0,
                reason="baseline 80 tok/s against 100 tok/s (-20.0%)",
            ),
        }
    )
    text = markdown.render([regressed], run_info(passed))
    section = text.split("<details>", 1)[1]
    assert "**Budgets missed**\n\n- min\\_mfu\\_pct: 33.7%, below the floor of 50.0%" in section
    assert "**Regression:** baseline 80 tok/s against 100 tok/s (-20.0%)" in section
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "min_mfu_pct: 33.7%, below the floor of 50.0%" in rendered


def test_an_unknown_mfu_is_shown_as_unknown(failed: WorkloadResult) -> None:
    assert failed.baseline is not None
    unknown = failed.model_copy(
        update={"baseline": failed.baseline.model_copy(update={"mfu_pct": None})}
    )
    assert "MFU unknown, peak memory" in markdown.render([unknown], run_info(failed))


def test_no_workloads_still_gives_a_valid_document(passed: WorkloadResult) -> None:
    tokens = parse(markdown.render([], run_info(passed)))
    assert tokens[1].content == "pytest-goblin: no workloads"


def test_write_replaces_an_ordinary_file(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("old\n")
    written = markdown.write("summary.md", tmp_path, "new\n", environ={})
    assert written == (tmp_path / "summary.md").resolve()
    assert written.read_text() == "new\n"


def test_write_appends_to_the_github_step_summary_file(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary"
    summary.write_text("# Build\nok\n")
    markdown.write(
        str(summary), tmp_path, "## pytest-goblin\n", environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert summary.read_text() == "# Build\nok\n\n## pytest-goblin\n"


def test_write_to_dash_writes_no_file(tmp_path: Path) -> None:
    assert markdown.write("-", tmp_path, "x\n", environ={}) is None
    assert list(tmp_path.iterdir()) == []


def run_goblin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    (pytester.path / "workloads").mkdir()
    (pytester.path / "workloads/a.goblin.yaml").write_text(MISTUNED_YAML)
    (pytester.path / "workloads/b.goblin.yaml").write_text(TUNED_YAML)
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", *args)


def test_goblin_md_dash_prints_the_summary_after_the_terminal_table(
    pytester: pytest.Pytester,
) -> None:
    result = run_goblin(pytester, "--goblin-md", "-", "workloads")
    result.stdout.fnmatch_lines(
        [
            "*= goblin =*",
            "## pytest-goblin: 1 failed, 1 passed",
            "| workload | baseline tok/s*",
            "<details>",
        ]
    )


def test_goblin_md_appends_to_the_step_summary_named_by_the_environment(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_goblin(pytester, f"--goblin-md={summary}", "workloads")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = summary.read_text()
    assert text.startswith("earlier step\n\n## pytest-goblin: 1 failed, 1 passed\n")
    result.stdout.fnmatch_lines([f"Markdown summary: {summary}"])
