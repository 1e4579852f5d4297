"""Specification of the goblin terminal section: verdict symbols, the counts line, folding."""

from __future__ import annotations

import dataclasses
import random
import string

import pytest

from helpers.sample_results import errored, run_info
from helpers.workloads import MISTUNED_YAML, TUNED_YAML
from pytest_goblin.report import terminal
from pytest_goblin.report.terminal import advisories_text, outcome_line, summary_table
from pytest_goblin.schemas import Acceptance, RuleRef, WorkloadResult


def rows(table: str) -> list[str]:
    """The body lines, without the note on what was left out."""
    return [line for line in table.splitlines()[2:] if not line.startswith("(left out")]


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def run_goblin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, columns: int, *args: str
) -> pytest.RunResult:
    """Audit a mistuned and a tuned workload on a terminal ``columns`` wide."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for relpath, text in {
        "w/bad.goblin.yaml": MISTUNED_YAML,
        "w/good.goblin.yaml": TUNED_YAML,
    }.items():
        path = pytester.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pytester.runpytest("--goblin", "--goblin-fake", "-p", "no:cacheprovider", "w", *args)


# --- one line per workload, with a verdict symbol ------------------------------------------


def test_each_row_starts_its_verdict_with_a_symbol(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    accepted = failed.model_copy(
        update={
            "name": "accepted",
            "accepted": Acceptance(until="2999-12-31", reason="later", max_speedup=20),
        }
    )
    unsure = passed.model_copy(update={"name": "unsure", "inconclusive": True})
    table = summary_table([failed, passed, errored(), accepted, unsure])
    verdicts = [row.split("  ")[0] + " " + " ".join(row.split()[4:6]) for row in rows(table)]
    assert verdicts == [
        "llama-mistuned ✗ FAILED",
        "llama-tuned ✓ passed",
        "bad ! ERROR",
        "accepted x accepted",
        "unsure ? inconclusive",
    ]


# --- the closing counts line ---------------------------------------------------------------


def test_the_section_ends_with_the_counts_and_where_the_numbers_come_from(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_goblin(pytester, monkeypatch, 120)
    result.stdout.fnmatch_lines(
        [
            "goblin: 1 failed, 1 passed, 0 inconclusive, 0 errors "
            "(projected on AMD Instinct MI300X (simulated))",
            "*short test summary info*",
        ]
    )


def test_an_inconclusive_pass_is_counted_as_inconclusive_not_passed(
    passed: WorkloadResult,
) -> None:
    unsure = passed.model_copy(update={"inconclusive": True})
    assert outcome_line([passed, unsure], run_info(passed)).startswith(
        "goblin: 0 failed, 1 passed, 1 inconclusive, 0 errors ("
    )


def test_accepted_gaps_and_skips_join_the_counts_only_when_there_are_some(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    accepted = failed.model_copy(
        update={"accepted": Acceptance(until="2999-12-31", reason="later", max_speedup=20)}
    )
    skipped = passed.model_copy(update={"outcome": "skipped"})
    line = outcome_line([accepted, skipped, errored()], run_info(failed))
    assert line == (
        "goblin: 0 failed, 0 passed, 0 inconclusive, 1 error, 1 accepted, "
        "1 skipped (projected on AMD Instinct MI300X (simulated))"
    )


def test_measured_numbers_are_labelled_measured(passed: WorkloadResult) -> None:
    line = outcome_line([passed], dataclasses.replace(run_info(passed), projected=False))
    assert line.endswith("(measured on AMD Instinct MI300X (simulated))")


# --- folding --------------------------------------------------------------------------------


def test_a_table_that_fits_keeps_every_column(failed: WorkloadResult) -> None:
    assert summary_table([failed], width=400) == summary_table([failed])
    assert "agent" in summary_table([failed]).splitlines()[0]


def test_the_agent_column_goes_first_on_a_narrower_terminal(failed: WorkloadResult) -> None:
    full = summary_table([failed])
    table = summary_table([failed], width=widest(full) - 1)
    assert table.splitlines()[0].split() == [
        "workload",
        "baseline",
        "tok/s",
        "patched",
        "tok/s",
        "speedup",
        "verdict",
        "rules",
    ]
    assert table.splitlines()[-1] == f"(left out to fit {widest(full) - 1} columns: agent)"


def test_rules_wrap_between_rule_ids_before_they_are_left_out(failed: WorkloadResult) -> None:
    ids = [rule.id for rule in failed.rules]
    table = summary_table([failed], width=widest(summary_table([failed])) - 30)
    cells = [line[table.splitlines()[1].rindex(" ") + 1 :].strip() for line in rows(table)]
    assert len([cell for cell in cells if cell]) > 1
    assert " ".join(cell for cell in cells if cell).split(", ") == ids


def test_workload_speedup_and_verdict_stay_on_the_narrowest_terminal(
    failed: WorkloadResult,
) -> None:
    table = summary_table([failed], width=40)
    assert table.splitlines()[0].split() == ["workload", "speedup", "verdict"]
    assert table.splitlines()[-1] == (
        "(left out to fit 40 columns: agent, patched tok/s, rules, baseline tok/s)"
    )


def test_the_table_folds_to_the_terminal_width(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_goblin(pytester, monkeypatch, 80)
    lines = result.stdout.lines
    table = lines[lines.index(next(line for line in lines if line.startswith("workload "))) :]
    table = table[: table.index("")]
    assert max(len(line) for line in table) <= 80
    assert table[-1].startswith("(left out to fit 80 columns: agent")


# --- advisories -----------------------------------------------------------------------------


def test_advisories_take_one_line_each_cut_to_the_width(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    text = advisories_text([failed, passed], width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert all(line.startswith("advisory ") for line in lines[:-1])
    assert any(line.endswith("…") for line in lines)
    assert lines[-1] == "(-v: each advisory in full, with citations)"


def test_a_long_list_of_workloads_becomes_their_count(failed: WorkloadResult) -> None:
    names = [failed.model_copy(update={"name": f"workload-number-{n}"}) for n in range(6)]
    first = advisories_text(
        [*names[:5], names[5].model_copy(update={"advisories": []})], width=90
    ).splitlines()[0]
    assert first.startswith(f"advisory {failed.advisories[0].id} (5 workloads): ")


def test_the_terminal_shows_advisories_compactly_and_in_full_under_verbose(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    compact = run_goblin(pytester, monkeypatch, 80).stdout.str()
    verbose = run_goblin(pytester, monkeypatch, 80, "-v").stdout.str()
    assert "    https://" not in compact.split("= goblin =")[1]
    assert "(-v: each advisory in full, with citations)" in compact
    assert "    https://" in verbose.split("= goblin =")[1]


def test_rule_ids_in_wrapped_cells_keep_their_order(failed: WorkloadResult) -> None:
    many = failed.model_copy(
        update={"rules": [RuleRef(id=f"rule-{n}", citation=[]) for n in range(12)]}
    )
    table = summary_table([many], width=widest(summary_table([many])) - 40)
    assert "rule-0, rule-1," in rows(table)[0]
    assert rows(table)[-1].rstrip().endswith("rule-11")


@pytest.mark.parametrize("seed", range(40))
def test_the_width_worked_out_for_folding_is_the_rendered_width(seed: int) -> None:
    rng = random.Random(seed)

    def text() -> str:
        return "".join(rng.choices(string.ascii_letters + "×[], .", k=rng.randint(0, 30)))

    rows = [
        {
            column: (
                [
                    "".join(rng.choices("abc-", k=rng.randint(1, 25)))
                    for _ in range(rng.randint(0, 6))
                ]
                if column == "rules"
                else text()
            )
            for column in terminal.COLUMNS
        }
        for _ in range(rng.randint(0, 6))
    ]
    columns = [c for c in terminal.COLUMNS if rng.random() < 0.8] or ["workload"]
    room = rng.choice([None, 5, 12, 30]) if "rules" in columns else None
    rendered = terminal._render(columns, rows, room)
    assert terminal._table_width(columns, rows, room) == terminal._width(rendered)
