"""The HTML report (``--goblin-html PATH``): one self-contained file that opens offline.

No script, no stylesheet or font from elsewhere: the CSS is inline and the
chart is inline SVG. The chart draws baseline and patched tokens/s per
workload as horizontal bars, with the speedup's CI as a whisker on the patched
bar when the verdict has one; then come the summary table and a collapsible
section per workload with its numbers (and a measured run's details),
changes, citations, budgets, history and diff. Citations are ordinary links: nothing is fetched to show the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from pytest_goblin.audit.calibrate import describe_all, noise_floors
from pytest_goblin.history import change_text
from pytest_goblin.report import candidates_text
from pytest_goblin.report.attribution_text import heading, share_text, summary
from pytest_goblin.report.summary import (
    RunInfo,
    counts_text,
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
from pytest_goblin.schemas import RunMetrics, WorkloadResult
from pytest_goblin.verdict import budgets

BASELINE_COLOUR = "#4e79a7"
PATCHED_COLOUR = "#f28e2b"
WHISKER_COLOUR = "#000000"
CHART_WIDTH = 960
LABEL_WIDTH = 270
VALUE_MARGIN = 110
BAR_HEIGHT = 16
ROW_GAP = 14
AXIS_HEIGHT = 30
LABEL_CHARS = 36
Scale = Callable[[float], float]

_CSS = f"""
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       margin: 24px auto; max-width: 1000px; padding: 0 16px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }}
h2 {{ font-size: 18px; margin-top: 28px; }}
.facts {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }}
td a {{ overflow-wrap: anywhere; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.passed {{ color: #1a7f37; }} .failed {{ color: #cf222e; font-weight: 600; }}
.error {{ color: #9a6700; font-weight: 600; }} .skipped {{ color: #57606a; }}
.accepted {{ color: #8250df; }} .inconclusive {{ color: #9a6700; }}
details {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 10px; margin: 8px 0; }}
summary {{ cursor: pointer; }}
pre {{ background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12.5px; }}
pre .add {{ color: #1a7f37; }} pre .del {{ color: #cf222e; }} pre .hunk {{ color: #8250df; }}
#chart {{ overflow-x: auto; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #1b1b1b; }}
svg .tick {{ fill: #57606a; }}
svg .grid {{ stroke: #e5e7eb; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
                vertical-align: -1px; }}
.legend .baseline {{ background: {BASELINE_COLOUR}; }}
.legend .patched {{ background: {PATCHED_COLOUR}; }}
"""


def render(results: Sequence[WorkloadResult], info: RunInfo) -> str:
    """The whole page."""
    title = f"pytest-goblin: {counts_text(results)}"
    facts = [
        f"Numbers {numbers_text(info)}",
        f"threshold {info.threshold:.0%}",
        f"backend {info.backend}",
    ]
    if info.compared_with:
        facts.append(f"history against saved run {info.compared_with}")
    parallel = parallel_text(info)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="facts">{escape(" · ".join(facts))}.</p>',
        *([f'<p class="facts parallel">{escape(parallel)}</p>'] if parallel else []),
        *(
            f'<p class="facts noise-floor">{escape(line)}</p>'
            for line in describe_all(noise_floors(results))
        ),
    ]
    if not results:
        parts.append("<p>No workloads were audited.</p>")
    else:
        parts += [
            '<section id="chart"><h2>Throughput: baseline and patched</h2>',
            '<p class="legend"><span class="baseline"></span>baseline tokens/s'
            '<span class="patched"></span>patched tokens/s (whisker: speedup CI)</p>',
            chart(results),
            "</section>",
            '<section id="summary"><h2>Summary</h2>',
            _summary_table(results),
            "</section>",
            '<section id="workloads"><h2>Workloads</h2>',
            *(_workload(r) for r in results),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def chart(results: Sequence[WorkloadResult]) -> str:
    """An inline SVG bar chart: two bars per workload, the CI as a whisker, a tick axis."""
    top = max((_chart_max(r) for r in results), default=0.0)
    step, limit = _ticks(top)
    plot = CHART_WIDTH - LABEL_WIDTH - VALUE_MARGIN
    row = 2 * BAR_HEIGHT + ROW_GAP
    height = AXIS_HEIGHT + row * len(results) + 8

    def x(value: float) -> float:
        return LABEL_WIDTH + (value / limit * plot if limit else 0.0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{CHART_WIDTH}" '
        # drawn at its own width, never scaled down (at 400 px a 960-wide chart's 12 px
        # text became 5 px): the #chart section scrolls sideways instead
        f'height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" '
        'aria-label="baseline and patched tokens per second per workload">'
    ]
    tick = 0.0
    while tick <= limit + step / 2:
        tx = x(tick)
        out.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{tx:.1f}" '
            f'y2="{height - 4}"/>'
        )
        out.append(
            f'<text class="tick" x="{tx:.1f}" y="{AXIS_HEIGHT - 12}" '
            f'text-anchor="middle">{escape(_short(tick))}</text>'
        )
        tick += step
    for index, result in enumerate(results):
        y = AXIS_HEIGHT + index * row
        label = (
            result.name if len(result.name) <= LABEL_CHARS else result.name[: LABEL_CHARS - 1] + "…"
        )
        out.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT + 4}" text-anchor="end">'
            f"<title>{escape(result.name)}</title>{escape(label)}</text>"
        )
        if result.baseline is None:
            out.append(
                f'<text class="tick" x="{LABEL_WIDTH + 4}" y="{y + BAR_HEIGHT + 4}">'
                f"{escape(result.outcome)}: no numbers</text>"
            )
            continue
        baseline = result.baseline.tokens_per_sec
        out += [_bar(result, "baseline", baseline, y, x), _value(baseline, x(baseline), y)]
        patched = patched_tokens(result)
        if patched is None:
            out.append(
                f'<text class="tick" x="{LABEL_WIDTH + 4}" '
                f'y="{y + 2 * BAR_HEIGHT - 3}">no patch</text>'
            )
            continue
        out.append(_bar(result, "patched", patched, y + BAR_HEIGHT, x))
        end = x(patched)
        if result.speedup_ci:
            out.append(_whisker(result, y + BAR_HEIGHT, x))
            end = max(end, x(baseline * result.speedup_ci[1]))
        out.append(_value(patched, end, y + BAR_HEIGHT))
    out.append("</svg>")
    return "\n".join(out)


def _bar(result: WorkloadResult, kind: str, value: float, y: float, x: Scale) -> str:
    colour = BASELINE_COLOUR if kind == "baseline" else PATCHED_COLOUR
    width = max(x(value) - LABEL_WIDTH, 1.0)
    return (
        f'<rect class="bar {kind}" data-workload="{escape(result.name)}" '
        f'data-value="{value:.1f}" x="{LABEL_WIDTH}" y="{y:.1f}" width="{width:.1f}" '
        f'height="{BAR_HEIGHT - 2}" fill="{colour}" shape-rendering="crispEdges">'
        f"<title>{escape(result.name)} {kind}: {value:,.0f} tok/s</title></rect>"
    )


def _value(value: float, end: float, y: float) -> str:
    return f'<text x="{end + 6:.1f}" y="{y + BAR_HEIGHT - 4:.1f}">{value:,.0f}</text>'


def _whisker(result: WorkloadResult, y: float, x: Scale) -> str:
    assert result.baseline is not None and result.speedup_ci is not None
    low = result.baseline.tokens_per_sec * result.speedup_ci[0]
    high = result.baseline.tokens_per_sec * result.speedup_ci[1]
    mid = y + (BAR_HEIGHT - 2) / 2
    attrs = f'stroke="{WHISKER_COLOUR}" stroke-width="2" shape-rendering="crispEdges"'
    caps = "".join(
        f'<line x1="{x(v):.1f}" y1="{y + 1:.1f}" x2="{x(v):.1f}" y2="{y + BAR_HEIGHT - 3:.1f}" '
        f"{attrs}/>"
        for v in (low, high)
    )
    return (
        f'<g class="whisker" data-workload="{escape(result.name)}" data-low="{low:.1f}" '
        f'data-high="{high:.1f}"><title>speedup CI {result.speedup_ci[0]:.2f}–'
        f"{result.speedup_ci[1]:.2f}×: {low:,.0f}–{high:,.0f} tok/s</title>"
        f'<line x1="{x(low):.1f}" y1="{mid:.1f}" x2="{x(high):.1f}" y2="{mid:.1f}" {attrs}/>'
        f"{caps}</g>"
    )


def _chart_max(result: WorkloadResult) -> float:
    if result.baseline is None:
        return 0.0
    values = [result.baseline.tokens_per_sec, patched_tokens(result) or 0.0]
    if result.speedup_ci and patched_tokens(result) is not None:
        values.append(result.baseline.tokens_per_sec * result.speedup_ci[1])
    return max(values)


def _ticks(top: float) -> tuple[float, float]:
    """A 1-2-5 tick step giving about five ticks, and the axis end (a whole number of steps)."""
    if top <= 0:
        return 1.0, 1.0
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return step, math.ceil(top / step) * step


def _short(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _summary_table(results: Sequence[WorkloadResult]) -> str:
    with_history = any(r.history is not None for r in results)
    head = ["workload", "baseline tok/s", "patched tok/s", "speedup", "verdict", "rules"]
    numeric = {1, 2, 3}
    if with_history:
        head.append("vs saved run")
    rows = [
        "<table><thead><tr>"
        + "".join(
            f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
            for i, h in enumerate(head)
        )
        + "</tr></thead><tbody>"
    ]
    for r in results:
        cells = [
            f'<td><a href="#{_anchor(r)}">{escape(r.name)}</a></td>',
            f'<td class="num">{tokens_text(r.baseline.tokens_per_sec if r.baseline else None)}'
            "</td>",
            f'<td class="num">{tokens_text(patched_tokens(r))}</td>',
            f'<td class="num">{escape(speedup_text(r))}</td>',
            f'<td class="{verdict_key(r)}">{escape(verdict_key(r))}</td>',
            f"<td>{escape(', '.join(rule.id for rule in r.rules) or '-')}</td>",
        ]
        if with_history:
            cells.append(f'<td class="num">{escape(_history_cell(r))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows) + "</tbody></table>"


def _history_cell(result: WorkloadResult) -> str:
    comparison = result.history
    if comparison is None:
        return "-"
    if comparison.status != "compared" or comparison.change_pct is None:
        return comparison.status.replace("_", " ")
    text = change_text(comparison)
    return f"{text} (regressed)" if comparison.regressed else text


def _anchor(result: WorkloadResult) -> str:
    return "w-" + "".join(ch if ch.isalnum() else "-" for ch in result.nodeid)


def _workload(result: WorkloadResult) -> str:
    opened = " open" if result.outcome in ("failed", "error") else ""
    why = result.error if result.outcome == "error" and result.error else result.reason
    parts = [
        f'<details id="{_anchor(result)}"{opened}><summary><b>{escape(result.name)}</b> '
        f'<span class="{verdict_key(result)}">{escape(verdict_key(result))}</span>: '
        f"{escape(why)}</summary>",
        f"<p><code>{escape(result.path)}</code></p>",
    ]
    if result.baseline is not None:
        parts.append(_metrics_table(result))
    details = run_details_text(result)
    if details:
        parts.append(f'<p class="run-details">run details: {escape(details)}</p>')
    if result.patch and result.patch.changes:
        parts.append(_changes(result))
    if result.attribution:
        parts.append(_attribution(result))
    if candidates_text.shown(result):
        parts.append(_candidates(result))
    if result.budgets:
        parts.append(
            "<h4>Budgets</h4><ul>"
            + "".join(
                f'<li class="{"passed" if c.ok else "failed"}">{escape(budgets.describe(c))}</li>'
                for c in result.budgets
            )
            + "</ul>"
        )
    if result.history is not None:
        parts.append(f"<h4>History</h4><p>{escape(result.history.reason)}</p>")
    if result.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in result.notes) + "</ul>")
    if result.advisories:
        parts.append(
            "<h4>Advisories</h4><ul>"
            + "".join(
                f"<li>{escape(a.advice)} {_links(a.citation)}</li>" for a in result.advisories
            )
            + "</ul>"
        )
    if result.patch and result.patch.diff:
        parts.append(f"<h4>Patch (git apply)</h4>{_diff(result.patch.diff)}")
    if result.outcome == "error" and result.error:
        parts.append(f"<pre>{escape(result.error)}</pre>")
    return "\n".join(parts) + "</details>"


def _metrics_table(result: WorkloadResult) -> str:
    arms: list[tuple[str, RunMetrics]] = [("baseline", result.baseline)] if result.baseline else []
    if result.patched is not None and result.patch is not None:
        arms.append(("patched", result.patched))
    rows = [
        ("tokens/s", lambda m: f"{m.tokens_per_sec:,.0f}"),
        ("step time (s)", lambda m: f"{m.step_time_s:.3f}"),
        ("MFU", lambda m: mfu_text(m.mfu_pct)),
        ("peak memory (GB)", lambda m: f"{m.hbm_peak_gb:.1f}"),
        ("steps", lambda m: str(m.steps)),
        ("numbers", lambda m: "projected" if m.projected else f"measured ({m.runner_kind})"),
    ]
    if any(ranks_text(m) for _, m in arms):
        rows.append(("ranks", lambda m: ranks_text(m) or "1"))
    head = "".join(f'<th class="num">{name}</th>' for name, _ in arms)
    body = "".join(
        f"<tr><td>{label}</td>"
        + "".join(f'<td class="num">{escape(show(m))}</td>' for _, m in arms)
        + "</tr>"
        for label, show in rows
    )
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _changes(result: WorkloadResult) -> str:
    assert result.patch is not None
    citations = {rule.id: rule.citation for rule in result.rules}
    rows = "".join(
        f"<tr><td><code>{escape(c.field)}</code></td><td>{escape(show_value(c.old))}</td>"
        f"<td>{escape(show_value(c.new))}</td><td><code>{escape(c.rule_id)}</code></td>"
        f"<td>{_links(citations.get(c.rule_id, []))}</td></tr>"
        for c in result.patch.changes
    )
    return (
        "<h4>Changes</h4><table><thead><tr><th>field</th><th>from</th><th>to</th>"
        f"<th>rule</th><th>citations</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _attribution(result: WorkloadResult) -> str:
    """Each change's share of the speedup (``--goblin-attribution``), as a table."""
    entries = result.attribution
    rows = "".join(
        f"<tr><td><code>{escape(e.field)}</code></td><td>{escape(show_value(e.old))}</td>"
        f"<td>{escape(show_value(e.new))}</td><td><code>{escape(e.rule_id)}</code></td>"
        f'<td class="num">{escape(share_text(e))}</td><td>{escape(e.note)}</td></tr>'
        for e in entries
    )
    how = summary(entries)
    return (
        f"<h4>Attribution ({escape(heading(entries))})</h4><table><thead><tr>"
        "<th>field</th><th>from</th><th>to</th><th>rule</th><th>share</th><th>note</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>" + (f"<p>{escape(how)}</p>" if how else "")
    )


def _candidates(result: WorkloadResult) -> str:
    """The search's best candidates, with what each changes beyond the shared changes."""
    top = candidates_text.shown(result)
    shared = candidates_text.shared_text(top)
    rows = "".join(
        f'<tr><td class="num">{escape(candidates_text.figures_text(c))}</td>'
        f"<td><code>{escape(candidates_text.changes_text(c, top))}</code></td></tr>"
        for c in top
    )
    return (
        f"<h4>Candidates ({escape(candidates_text.heading(result))})</h4>"
        + (f"<p>All of them: <code>{escape(shared)}</code></p>" if shared else "")
        + "<table><thead><tr><th>speedup</th><th>changes</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _links(urls: Sequence[str]) -> str:
    return " ".join(f'<a href="{escape(url)}" rel="noreferrer">{escape(url)}</a>' for url in urls)


def _diff(diff: str) -> str:
    lines = []
    for line in diff.rstrip("\n").splitlines():
        kind = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else ""
        )
        lines.append(f'<span class="{kind}">{escape(line)}</span>' if kind else escape(line))
    return '<pre class="diff">' + "\n".join(lines) + "</pre>"
