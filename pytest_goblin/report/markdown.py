"""The Markdown summary (``--goblin-md PATH``) for a CI step summary or a PR comment.

GitHub-flavoured Markdown: a heading with the counts, a line saying what the
numbers are (and one saying so when xdist workers shared GPUs), a table with
one row per workload (baseline, patched, speedup with its CI, verdict, and the
change against a saved run when there is one), a "run details" line per
measured workload (device key, attention kernel, memory peaks, skipped fp16
steps, telemetry: ``summary.run_details``), then a collapsible
``<details>`` section per failed or errored workload with the reason, the
changes and their citations, missed budgets, the regression and the diff.

``-`` prints it to stdout. When PATH is the file ``$GITHUB_STEP_SUMMARY`` names,
the summary is appended, as GitHub expects: other steps' summaries in the same
job stay. Any other PATH is replaced, atomically.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_goblin.atomic import write_text
from pytest_goblin.audit.calibrate import describe_all, noise_floors
from pytest_goblin.history import change_text
from pytest_goblin.report import candidates_text
from pytest_goblin.report.attribution_text import heading, share_text, summary
from pytest_goblin.report.summary import (
    RunInfo,
    counts_text,
    failing,
    mfu_text,
    numbers_text,
    parallel_text,
    patched_tokens,
    ranks_text,
    run_details_text,
    show_value,
    speedup_text,
    tokens_text,
    verdict_key,
)
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.verdict import budgets

STDOUT = "-"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
VERDICT = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "⚠️ error",
    "skipped": "⏭️ skipped",
    "accepted": "☑️ accepted gap (xfail)",
    "inconclusive": "❔ inconclusive",
}
_CELL_SPECIALS = re.compile(r"([\\`*_\[\]<>|&~])")


def render(results: Sequence[WorkloadResult], info: RunInfo) -> str:
    """The whole summary as Markdown text, ending in a newline."""
    lines = [f"## pytest-goblin: {counts_text(results)}", ""]
    facts = [
        f"Numbers {numbers_text(info)}",
        f"threshold {info.threshold:.0%}",
        f"backend `{info.backend}`",
    ]
    if info.compared_with:
        facts.append(f"history against saved run {_cell(info.compared_with)}")
    lines += [" · ".join(facts) + ".", ""]
    parallel = parallel_text(info)
    if parallel:
        lines += [_cell(parallel), ""]
    floors = noise_floors(results)
    if floors:
        lines += [*(f"- {_cell(line)}" for line in describe_all(floors)), ""]
    if results:
        lines += _table(results)
        lines += _ranks(results)
        lines += _run_details(results)
    else:
        lines.append("No workloads were audited.")
    for result in failing(results):
        lines += ["", *_details(result)]
    return "\n".join(lines) + "\n"


def _table(results: Sequence[WorkloadResult]) -> list[str]:
    with_history = any(r.history is not None for r in results)
    headers = ["workload", "baseline tok/s", "patched tok/s", "speedup", "verdict"]
    align = ["---", "---:", "---:", "---:", "---"]
    if with_history:
        headers.append("vs saved run")
        align.append("---:")
    rows = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    for r in results:
        cells = [
            _cell(r.name),
            tokens_text(r.baseline.tokens_per_sec if r.baseline else None),
            tokens_text(patched_tokens(r)),
            speedup_text(r),
            _verdict(verdict_key(r)),
        ]
        if with_history:
            cells.append(_cell(_history_cell(r)))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _ranks(results: Sequence[WorkloadResult]) -> list[str]:
    """Under the table, each multi-rank workload's ranks: a shrunk run says so here."""
    lines = []
    for result in results:
        text = ranks_text(result.baseline) if result.baseline is not None else ""
        if text:
            lines.append(f"- {_code(result.name)}: {_cell(text)}")
    return ["", *lines] if lines else []


def _run_details(results: Sequence[WorkloadResult]) -> list[str]:
    """Under the table, each measured workload's run details (device key, attention kernel,
    memory peaks, skipped fp16 steps, telemetry), for every workload, not only failures."""
    lines = [
        f"- {_code(result.name)}: run details: {_cell(text)}"
        for result in results
        if (text := run_details_text(result))
    ]
    return ["", *lines] if lines else []


def _verdict(outcome: str) -> str:
    return VERDICT.get(outcome, outcome)


def _history_cell(result: WorkloadResult) -> str:
    comparison = result.history
    if comparison is None:
        return "-"
    if comparison.status == "new":
        return "new"
    if comparison.status == "not_comparable":
        return "not comparable (other device)"
    text = change_text(comparison)
    return f"{text} regressed" if comparison.regressed else text


def _details(result: WorkloadResult) -> list[str]:
    """One collapsible section: blank lines around the Markdown inside, as GFM needs."""
    why = result.error if result.outcome == "error" and result.error else result.reason
    summary = (
        f"{_verdict(verdict_key(result))} <b>{html.escape(result.name)}</b> "
        f"(<code>{html.escape(result.path)}</code>): {html.escape(why)}"
    )
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    if result.outcome == "error":
        lines += _fence(result.error or result.reason, "text")
    else:
        lines += (
            _metrics(result)
            + _changes(result)
            + _attribution(result)
            + _candidates(result)
            + _budgets(result)
            + _history(result)
        )
        for note in result.notes:
            lines += [f"> {_cell(note)}", ""]
        if result.patch and result.patch.diff:
            lines += [f"Patch for {_code(result.path)} (`git apply`):", ""]
            lines += _fence(result.patch.diff, "diff")
    return lines + ["</details>"]


def _metrics(result: WorkloadResult) -> list[str]:
    lines = []
    for label, metrics in (("Baseline", result.baseline), ("Patched", result.patched)):
        if metrics is None or (label == "Patched" and result.patch is None):
            continue
        lines.append(
            f"- **{label}:** {metrics.tokens_per_sec:,.0f} tok/s, step "
            f"{metrics.step_time_s:.3f} s, MFU {mfu_text(metrics.mfu_pct)}, peak memory "
            f"{metrics.hbm_peak_gb:.1f} GB"
            + (f" ({ranks_text(metrics)})" if ranks_text(metrics) else "")
        )
    if result.speedup is not None and result.patch is not None:
        lines.append(
            f"- **Speedup:** {speedup_text(result)}, threshold {1 + result.threshold:.2f}×"
        )
    return lines + [""] if lines else []


def _changes(result: WorkloadResult) -> list[str]:
    if result.patch is None or not result.patch.changes:
        return []
    citations = {rule.id: rule.citation for rule in result.rules}
    lines = ["**Changes**", ""]
    for change in result.patch.changes:
        lines.append(
            f"- {_code(change.field)}: {_code(show_value(change.old))} → "
            f"{_code(show_value(change.new))} (rule {_code(change.rule_id)})"
        )
        lines += [f"  - <{url}>" for url in citations.get(change.rule_id, [])]
    return lines + [""]


def _attribution(result: WorkloadResult) -> list[str]:
    """Each change's share of the speedup (``--goblin-attribution``), as a table."""
    entries = result.attribution
    if not entries:
        return []
    lines = [
        f"**Attribution** ({heading(entries)})",
        "",
        "| change | rule | share | note |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        change = (
            f"{_code(entry.field)}: {_code(show_value(entry.old))} → {_code(show_value(entry.new))}"
        )
        lines.append(
            f"| {change} | {_code(entry.rule_id)} | {_cell(share_text(entry))} | "
            f"{_cell(entry.note) or '-'} |"
        )
    how = summary(entries)
    return lines + (["", _cell(how)] if how else []) + [""]


def _candidates(result: WorkloadResult) -> list[str]:
    """The search's best candidates, with what each changes beyond the shared changes."""
    top = candidates_text.shown(result)
    if not top:
        return []
    shared = candidates_text.shared_text(top)
    lines = [f"**Candidates** ({candidates_text.heading(result)})", ""]
    if shared:
        lines += [f"All of them: {_code(shared)}", ""]
    lines += ["| speedup | changes |", "|---|---|"]
    for candidate in top:
        changes = candidates_text.changes_text(candidate, top)
        lines.append(f"| {_cell(candidates_text.figures_text(candidate))} | {_code(changes)} |")
    return lines + [""]


def _budgets(result: WorkloadResult) -> list[str]:
    missed = budgets.misses(result.budgets)
    if not missed:
        return []
    return ["**Budgets missed**", "", *(f"- {_cell(budgets.describe(c))}" for c in missed), ""]


def _history(result: WorkloadResult) -> list[str]:
    comparison = result.history
    if comparison is None or not comparison.regressed:
        return []
    return [f"**Regression:** {_cell(comparison.reason)}", ""]


def _cell(text: str) -> str:
    """Text that renders literally in a table cell or a paragraph: specials escaped, one line."""
    return _CELL_SPECIALS.sub(r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """A code span that survives backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fence(text: str, info: str) -> list[str]:
    """A fenced block longer than any backtick run inside, so a diff cannot close it."""
    longest = max((len(run) for run in re.findall(r"^\s*(`{3,})", text, re.M)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text.rstrip("\n"), fence, ""]


def write(
    target: str, base: Path, text: str, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Write the summary to ``target`` (relative to ``base``); None when it went to stdout.

    The step-summary file is appended to; any other file is replaced atomically.
    """
    if target == STDOUT:
        return None
    path = (base / target).resolve()
    summary_file = (environ if environ is not None else os.environ).get(STEP_SUMMARY_ENV)
    if summary_file and Path(summary_file).resolve() == path and path.exists():
        existing = path.read_text(encoding="utf-8").rstrip("\n")
        text = f"{existing}\n\n{text}" if existing else text
    write_text(path, text)
    return path
