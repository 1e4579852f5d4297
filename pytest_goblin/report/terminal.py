"""What the terminal shows: the summary table, the failure text, the rules listing."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabulate import MIN_PADDING, tabulate

from pytest_goblin.report import candidates_text
from pytest_goblin.report.attribution_text import heading, share_text, summary
from pytest_goblin.report.summary import RunInfo, ranks_text, run_details_text, verdict_key
from pytest_goblin.schemas import AuditUsage, DeviceInfo, WorkloadResult
from pytest_goblin.verdict import budgets
from pytest_goblin.verdict.gates import Failure, device_name

if TYPE_CHECKING:
    from pytest_goblin.kb.loader import KnowledgeBase
    from pytest_goblin.kb.schema import Rule


def _device_label(device: DeviceInfo | None) -> str:
    if device is None:
        return "unknown device"
    return f"{device.name} (simulated)" if device.kind == "simulated" else device.name


def _tok(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def header_line(device: DeviceInfo | None, backend: str, threshold: float, fake: bool) -> str:
    mode = "projected (analytic model)" if fake else "measured"
    engine = f" | engine: {device.engine}" if not fake and device and device.engine else ""
    return (
        f"device: {_device_label(device)}{engine} | backend: {backend} | "
        f"threshold: {threshold:.0%} | numbers: {mode}"
    )


VERDICT_CELLS = {
    "passed": "✓ passed",
    "inconclusive": "? inconclusive",
    "failed": "✗ FAILED",
    "accepted": "x accepted",
    "error": "! ERROR",
    "skipped": "- SKIPPED",
}
"""The verdict column: a symbol, then the outcome (capitals for what needs a look)."""

COLUMNS = ("workload", "baseline tok/s", "patched tok/s", "speedup", "verdict", "agent", "rules")
FOLD_ORDER = ("agent", "patched tok/s", "rules", "baseline tok/s")
"""What gives way on a narrow terminal, in order; the rules wrap before they go."""


def summary_table(results: Sequence[WorkloadResult], width: int | None = None) -> str:
    """One row per workload: name, baseline and patched tok/s, speedup, verdict, agent, rules.

    With ``width`` (the terminal's), a table too wide for it folds: columns
    are left out in ``FOLD_ORDER`` until it fits — after each, while the rules
    are still shown, wrapping them between rule ids is tried first — and a last
    line says what was left out. Workload, speedup and verdict always stay.
    """
    rows = [_cells(r) for r in results]
    shown = list(COLUMNS)
    rules_room: int | None = None
    left_out = []
    for column in FOLD_ORDER:
        if width is None or _table_width(shown, rows) <= width:
            break
        shown.remove(column)
        left_out.append(column)
        if "rules" in shown and _table_width(shown, rows) > width:
            others = _table_width([c for c in shown if c != "rules"], rows)
            room = width - others - 2
            if _table_width(shown, rows, rules_room=room) <= width:
                rules_room = room
                break
    table = _render(shown, rows, rules_room)
    if left_out:
        table += f"\n(left out to fit {width} columns: {', '.join(left_out)})"
    return table


def _cells(r: WorkloadResult) -> dict[str, Any]:
    speedup = "-" if r.speedup is None else f"{r.speedup:.2f}×"
    if r.speedup_ci:
        speedup += f" [{r.speedup_ci[0]:.2f}, {r.speedup_ci[1]:.2f}]"
    return {
        "workload": r.name,
        "baseline tok/s": _tok(r.baseline.tokens_per_sec if r.baseline else None),
        "patched tok/s": _tok(r.patched.tokens_per_sec if r.patched and r.patch else None),
        "speedup": speedup,
        "verdict": VERDICT_CELLS.get(verdict_key(r), r.outcome),
        "agent": "cached" if r.cached else _agent(r.usage),
        "rules": [rule.id for rule in r.rules],
    }


def _render(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], rules_room: int | None = None
) -> str:
    """The table of ``columns``; with ``rules_room``, rule ids wrap to lines that long."""
    body = [
        [_rules_cell(row[c], rules_room) if c == "rules" else row[c] for c in columns]
        for row in rows
    ]
    return tabulate(body, headers=list(columns), tablefmt="simple", disable_numparse=True)


def _table_width(
    columns: Sequence[str], rows: Sequence[dict[str, Any]], rules_room: int | None = None
) -> int:
    """The width ``_render`` gives these columns, worked out without rendering (a session
    of many workloads would otherwise lay the table out once per folded column): tabulate's
    ``simple`` format strips each cell, makes each column as wide as its widest cell line,
    or its header plus ``tabulate.MIN_PADDING``, and puts two spaces between columns."""
    widths = [
        max(
            [
                len(column) + MIN_PADDING,
                *(
                    _width(
                        (
                            _rules_cell(row[column], rules_room)
                            if column == "rules"
                            else row[column]
                        ).strip()
                    )
                    for row in rows
                ),
            ]
        )
        for column in columns
    ]
    return sum(widths) + 2 * (len(widths) - 1)


def _rules_cell(ids: Sequence[str], room: int | None) -> str:
    """Rule ids joined by commas; with ``room``, broken into lines between ids."""
    if not ids:
        return "-"
    if room is None:
        return ", ".join(ids)
    lines = [""]
    for index, rule_id in enumerate(ids):
        piece = rule_id + ("," if index < len(ids) - 1 else "")
        joined = f"{lines[-1]} {piece}" if lines[-1] else piece
        if lines[-1] and len(joined) > room:
            lines.append(piece)
        else:
            lines[-1] = joined
    return "\n".join(lines)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _agent(usage: AuditUsage | None) -> str:
    """What driving the audit took: turns, and for an LLM its tokens and estimated cost."""
    if usage is None:
        return "-"
    turns = f"{usage.turns} turn{'s' if usage.turns != 1 else ''}"
    if not usage.input_tokens and not usage.output_tokens:
        return turns
    cost = "cost n/a" if usage.cost_usd is None else f"~${usage.cost_usd:.3f}"
    return f"{turns}, {_count(usage.input_tokens)} in/{_count(usage.output_tokens)} out tok, {cost}"


def _count(tokens: int) -> str:
    return f"{tokens / 1000:.1f}k" if tokens >= 1000 else str(tokens)


def advisories_text(results: Sequence[WorkloadResult], width: int | None = None) -> str:
    """Advice that no config change expresses, once per rule, with the workloads it concerns.

    In full (``width`` None, what ``-v`` shows) each advisory gives its whole
    advice and its citations. With ``width`` each is one line cut to it, a long
    list of workloads becomes their count, and a last line says how to see more.
    """
    seen: dict[str, tuple[Any, list[str]]] = {}
    for result in results:
        for advisory in result.advisories:
            seen.setdefault(advisory.id, (advisory, []))[1].append(result.name)
    lines = []
    for advisory, names in seen.values():
        who = "all workloads" if len(names) == len(results) > 1 else ", ".join(names)
        if width is not None and len(who) > width // 3:
            who = f"{len(names)} workloads"
        line = f"advisory {advisory.id} ({who}): {advisory.advice}"
        if width is None:
            lines.append(line)
            lines.extend(f"    {url}" for url in advisory.citation)
        else:
            lines.append(line if len(line) <= width else line[: width - 1] + "…")
    if lines and width is not None:
        lines.append("(-v: each advisory in full, with citations)")
    return "\n".join(lines)


def outcome_line(results: Sequence[WorkloadResult], info: RunInfo) -> str:
    """The section's closing line: ``goblin: 3 failed, 2 passed, 0 inconclusive, 0 errors
    (projected on AMD Instinct MI300X (simulated))``.

    The four counts are always there, in this order; accepted gaps (xfail) and
    skipped workloads follow when there are any. Counted from the results'
    ``verdict_key``, so inconclusive passes and accepted gaps are not passed or failed.
    """
    counts = Counter(verdict_key(r) for r in results)
    errors = f"{counts['error']} error{'' if counts['error'] == 1 else 's'}"
    parts = [
        f"{counts['failed']} failed",
        f"{counts['passed']} passed",
        f"{counts['inconclusive']} inconclusive",
        errors,
    ]
    parts += [f"{counts[key]} {key}" for key in ("accepted", "skipped") if counts[key]]
    how = "projected" if info.projected else "measured"
    return f"goblin: {', '.join(parts)} ({how} on {_device_label(info.device)})"


def failure_text(result: WorkloadResult) -> str:
    """Why a workload failed, what wins how much, and the patch to apply."""
    assert result.baseline is not None and result.patched is not None
    label = "projected" if result.projected else "measured"
    lines = [
        f"{result.name}: a patched config is {result.speedup:.2f}× faster ({label} on "
        f"{_device_label(result.device)}); threshold {1 + result.threshold:.2f}×",
        "",
        f"  baseline: {_metrics_line(result.baseline)}",
        f"  patched:  {_metrics_line(result.patched)}",
    ]
    if result.measurement:
        lines.append(
            f"  evidence: {result.measurement}"
            + (
                f"; CV baseline {result.cv_baseline:.1%}, patched {result.cv_patched:.1%}"
                if result.cv_baseline is not None and result.cv_patched is not None
                else ""
            )
        )
    details = run_details_text(result)
    if details:
        lines.append(f"  run details: {details}")
    lines += ["", "changes:"]
    citations = {rule.id: rule.citation for rule in result.rules}
    shares = {entry.field: entry for entry in result.attribution}
    for change in result.patch.changes if result.patch else []:
        share = shares.get(change.field)
        lines.append(
            f"  {change.field}: {_show(change.old)} -> {_show(change.new)}"
            f"  [{change.rule_id}]" + (f"  {share_text(share)}" if share else "")
        )
        lines.extend(f"      {url}" for url in citations.get(change.rule_id, []))
    lines += _attribution_lines(result)
    lines += candidates_text.lines(result)
    if result.patch and result.patch.diff:
        lines += ["", f"patch for {result.path} (git apply):", result.patch.diff.rstrip("\n")]
    if result.waived:
        lines.append(f"waived (goblin ignore): {', '.join(result.waived)}")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def failure_message(result: WorkloadResult, failure: Failure) -> str:
    """What pytest shows for an item the gates failed (:func:`verdict.gates.judge`): why an
    acceptance no longer covers the gap, the patch's failure text (when it wins), then each
    missed budget, then the regression."""
    blocks = ["\n".join(failure.accept_problems)] if failure.accept_problems else []
    blocks += [failure_text(result)] if failure.patch_wins else []
    where = f"{'projected' if result.projected else 'measured'} on {device_name(result)}"
    missed = budgets.misses(result.budgets)
    if missed:
        lines = [f"{result.name}: misses {len(missed)} budget(s) of its goblin: section ({where})"]
        lines += [f"  {budgets.describe(check)}" for check in missed]
        blocks.append("\n".join(lines))
    comparison = result.history
    if comparison is not None and comparison.regressed:
        commit = f" at commit {comparison.saved_commit[:8]}" if comparison.saved_commit else ""
        # the first line is what pytest's short summary shows: it carries the change
        change = "" if comparison.change_pct is None else f" ({comparison.change_pct:+.1f}%)"
        blocks.append(
            f"{result.name}: regressed against saved run {comparison.run}{commit}"
            f"{change}:\n  {comparison.reason}"
        )
    return "\n\n".join(blocks)


def _attribution_lines(result: WorkloadResult) -> list[str]:
    """Under the changes (each with its share): how the shares add up, and each change's note."""
    if not result.attribution:
        return []
    how = summary(result.attribution)
    lines = [f"attribution ({heading(result.attribution)}):"] + ([f"  {how}"] if how else [])
    lines.extend(f"  {entry.field}: {entry.note}" for entry in result.attribution if entry.note)
    return lines


def _metrics_line(m: Any) -> str:
    mfu = "unknown" if m.mfu_pct is None else f"{m.mfu_pct:.1f}%"
    line = (
        f"{m.tokens_per_sec:,.0f} tok/s, step {m.step_time_s:.3f} s, MFU {mfu}, "
        f"peak memory {m.hbm_peak_gb:.1f} GB"
    )
    if m.extrapolated_from_layers:
        depths = " and ".join(str(n) for n in m.extrapolated_from_layers)
        line += f" (extrapolated from {depths} layers)"
    if ranks_text(m):
        line += f" ({ranks_text(m)})"
    return line


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


RULE_COLUMNS = ("id", "kind", "platforms", "speedup", "cited from")
"""The ``--goblin-rules`` table's columns; on a narrow terminal they are left out from
the right, the id and kind always stay."""


def rules_listing(kb: KnowledgeBase, verbose: bool = False, width: int | None = None) -> str:
    """The knowledge base as ``--goblin-rules`` prints it, one section per category.

    Each rule shows its id, kind, platforms, expected speedup and citations; user
    rules are marked, and a user rule that replaces a built-in one says so. With
    ``verbose`` each rule becomes a block that adds its condition, its change and the
    symptom it addresses.

    With ``width`` (the terminal's) the listing fits it: the table leaves out columns
    from the right, the same ones in every section, and the footer names them (``-v``
    still shows everything); a verbose block wraps its text at the width.
    """
    origins = _origins(kb)
    tables: dict[str, list[dict[str, str]]] = {}
    for category, rules in kb.by_category().items():
        tables[category] = [
            {
                "id": _labelled(rule.id, origins.get(rule.id)),
                "kind": rule.kind,
                "platforms": "\n".join(rule.platforms),
                "speedup": _speedup(rule.expected_speedup),
                "cited from": "\n".join(_hosts(rule.citation)),
            }
            for rule in rules
        ]
    columns = list(RULE_COLUMNS)
    while (
        not verbose
        and width is not None
        and len(columns) > 2
        and any(_width(_rules_table(rows, columns)) > width for rows in tables.values())
    ):
        columns.pop()
    sections = []
    for category, rules in kb.by_category().items():
        heading = f"{category} ({len(rules)} rule{'s' if len(rules) != 1 else ''})"
        if verbose:
            body = "\n\n".join(
                _rule_block(rule, origins.get(rule.id), width or BLOCK_WIDTH) for rule in rules
            )
        else:
            body = _rules_table(tables[category], columns)
        sections.append(f"{heading}\n{'=' * len(heading)}\n{body}")
    files: dict[str, list[str]] = {}
    for rule_id in origins:
        files.setdefault(str(kb.sources[rule_id]), []).append(rule_id)
    left_out = RULE_COLUMNS[len(columns) :]
    footer = [
        f"{len(kb)} rules ({len(kb) - len(origins)} built-in, {len(origins)} user)"
        + ("" if verbose else "; -v: each rule in full, with its citations"),
        *(
            [f"(left out to fit {width} columns: {', '.join(left_out)})"]
            if left_out and width is not None
            else []
        ),
        *(f"user rules from {path}: {', '.join(ids)}" for path, ids in files.items()),
        *(f"user rule {rule_id} replaces the built-in rule" for rule_id, _ in kb.replaced),
    ]
    if verbose:
        sections.append(_facts_section(width or BLOCK_WIDTH))
    return "\n\n".join([*sections, "\n".join(footer)])


def _facts_section(width: int) -> str:
    """The facts about the device and the profile that a ``when`` may read beside the
    config (``pytest_goblin.kb.conditions.FACTS``), each meaning wrapped at ``width``."""
    from pytest_goblin.kb.conditions import FACTS

    heading = "facts a condition can read (about the audited device and the profile run)"
    rows = [
        textwrap.fill(
            meaning,
            width=max(width, 60),
            initial_indent=f"    {path:<34} ",
            subsequent_indent=" " * 39,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for path, (_, meaning) in FACTS.items()
    ]
    return "\n".join([heading, "=" * len(heading), *rows])


def _origins(kb: KnowledgeBase) -> dict[str, str]:
    """``user`` or ``user, replaces built-in`` for each user rule; built-ins are absent."""
    from pytest_goblin.kb.loader import BUNDLED_DIR

    replaced = {rule_id for rule_id, _ in kb.replaced}
    return {
        rule_id: "user, replaces built-in" if rule_id in replaced else "user"
        for rule_id, path in kb.sources.items()
        if path.parent != BUNDLED_DIR
    }


def _rules_table(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    return tabulate(
        [[row[c] for c in columns] for row in rows],
        headers=list(columns),
        tablefmt="simple",
        disable_numparse=True,
    )


def _hosts(citations: list[str]) -> list[str]:
    """Where a rule's citations are, by site (``docs.pytorch.org``): full URLs are 60 to 120
    characters and made the listing wider than any terminal; ``-v`` shows them whole."""
    from urllib.parse import urlsplit

    hosts = [urlsplit(url).netloc or url for url in citations]
    return list(dict.fromkeys(hosts))


def _labelled(rule_id: str, origin: str | None) -> str:
    return f"{rule_id} ({origin})" if origin else rule_id


def _speedup(value: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    low, high = value
    return f"{low:g}×" if low == high else f"{low:g}–{high:g}×"


BLOCK_WIDTH = 100
"""Where a verbose rule block wraps when the terminal's width is not known."""


def _rule_block(rule: Rule, origin: str | None, width: int = BLOCK_WIDTH) -> str:
    """One rule in full, for ``--goblin-rules -v``, its text wrapped at ``width``
    (a citation's URL is never broken: it stays whole to be copied)."""
    change = (
        ", ".join(f"{path} = {json.dumps(value)}" for path, value in rule.set.items())
        if rule.kind == "patch"
        else rule.advice or ""
    )
    if rule.search == "micro_batch":
        change = (
            "batch_size x k, grad_accum_steps / k for each k dividing grad_accum_steps "
            "(the global batch stays the same); the audit compares them"
        )
    elif rule.search == "smaller_micro_batch":
        change += (
            "; where that does not fit, with batch_size / k and grad_accum_steps x k for the "
            "smallest k that fits (the global batch stays the same)"
        )
    fits = (
        f"patched peak memory, predicted from the profile, at most "
        f"{rule.fits.max_memory_fraction:.0%} of the device's memory"
        if rule.fits is not None
        else ""
    )
    fields = [
        ("kind", rule.kind),
        ("platforms", ", ".join(rule.platforms)),
        ("speedup", _speedup(rule.expected_speedup)),
        ("when", rule.when.describe()),
        ("requires", ", ".join(f"{name}{spec}" for name, spec in (rule.requires or {}).items())),
        ("sets" if rule.kind == "patch" else "advice", change),
        ("fits", fits),
        ("symptom", rule.symptom),
        ("citation", "\n".join(rule.citation)),
    ]
    lines = [_labelled(rule.id, origin)]
    for name, text in fields:
        if text:
            lines.extend(_field_lines(name, text, width))
    return "\n".join(lines)


def _field_lines(name: str, text: str, width: int) -> list[str]:
    """``name: text`` indented, wrapped at ``width`` columns, continuation lines aligned."""
    head = f"    {name + ':':<11}"
    pad = " " * len(head)
    lines: list[str] = []
    for paragraph in text.splitlines():
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=max(width - len(head), 20),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return [(head if i == 0 else pad) + line for i, line in enumerate(lines)]


def cache_line(results: Sequence[WorkloadResult], events: bool = False) -> str | None:
    """How many audits were reused from the audit cache, when any were (the header's third line:
    it stays when a narrow terminal folds the agent column and its ``cached`` cells).

    ``events``: --goblin-events is on; a reused audit ran nothing and logs no events, which
    the line says, so an empty event log is not a mystery.
    """
    cached = sum(r.cached for r in results)
    if not cached:
        return None
    no_events = ", so --goblin-events has no events for them" if events else ""
    return (
        f"cache: {cached} of {len(results)} audits reused from an earlier run with the same "
        f"inputs{no_events} (--goblin-no-cache audits afresh)"
    )
