"""Specification of the HTML report (``--goblin-html``), down to the pixels Chromium draws."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.sample_results import audited, errored, run_info
from helpers.workloads import MISTUNED_YAML, TUNED_YAML, WorkloadFactory
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.plugin.xdist_gpus import GpuWorkers
from pytest_goblin.report import html
from pytest_goblin.schemas import WorkloadResult
from pytest_goblin.workload.read import Workload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=1100,900",
)


@pytest.fixture
def failed(mistuned: Workload, context: AuditContext) -> WorkloadResult:
    """The mistuned workload, with a CI around its speedup as a measured verdict would have."""
    result = audited(mistuned, context)
    assert result.speedup is not None
    return result.model_copy(update={"speedup_ci": (result.speedup * 0.9, result.speedup * 1.1)})


@pytest.fixture
def passed(tuned: Workload, context: AuditContext) -> WorkloadResult:
    return audited(tuned, context)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, css_class: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and (css_class is None or css_class in attrs.get("class", "").split())
        ]


def test_the_page_loads_nothing_from_elsewhere(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    page = html.render([failed, passed], run_info(failed))
    elements = Elements(page)
    assert not elements.find("script") and not elements.find("link") and not elements.find("img")
    assert not [attrs for _, attrs in elements.tags if "src" in attrs]
    assert "url(" not in page and "@import" not in page


def test_the_chart_has_a_baseline_bar_per_workload_and_a_patched_bar_per_patch(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    elements = Elements(html.render([failed, passed], run_info(failed)))
    baseline = {bar["data-workload"]: bar for bar in elements.find("rect", "baseline")}
    patched = {bar["data-workload"]: bar for bar in elements.find("rect", "patched")}
    assert set(baseline) == {"llama-mistuned", "llama-tuned"}
    assert set(patched) == {"llama-mistuned"}


def test_bar_lengths_are_proportional_to_tokens_per_second(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    elements = Elements(html.render([failed, passed], run_info(failed)))
    bars = elements.find("rect", "bar")
    per_token = {float(b["width"]) / float(b["data-value"]) for b in bars}
    assert max(per_token) == pytest.approx(min(per_token), rel=1e-3)


def test_a_whisker_spans_the_speedup_ci_in_tokens_per_second(failed: WorkloadResult) -> None:
    elements = Elements(html.render([failed], run_info(failed)))
    (whisker,) = elements.find("g", "whisker")
    assert failed.baseline is not None and failed.speedup_ci is not None
    assert float(whisker["data-low"]) == pytest.approx(
        failed.baseline.tokens_per_sec * failed.speedup_ci[0], abs=0.1
    )
    assert float(whisker["data-high"]) == pytest.approx(
        failed.baseline.tokens_per_sec * failed.speedup_ci[1], abs=0.1
    )


def test_there_is_no_whisker_without_a_ci(passed: WorkloadResult, failed: WorkloadResult) -> None:
    no_ci = failed.model_copy(update={"speedup_ci": None})
    assert not Elements(html.render([no_ci, passed], run_info(passed))).find("g", "whisker")


def test_the_summary_table_and_a_details_section_per_workload_follow_the_chart(
    failed: WorkloadResult,
    passed: WorkloadResult,
) -> None:
    bad = errored()
    elements = Elements(html.render([failed, passed, bad], run_info(failed)))
    sections = [attrs["id"] for attrs in elements.find("section")]
    assert sections == ["chart", "summary", "workloads"]
    details = elements.find("details")
    assert len(details) == 3
    assert [("open" in d) for d in details] == [True, False, True]
    text = "".join(elements.text)
    assert "file is empty" in text and failed.reason in text


def test_citations_are_links_and_the_diff_is_shown(
    failed: WorkloadResult, passed: WorkloadResult
) -> None:
    elements = Elements(html.render([failed, passed], run_info(failed)))
    hrefs = {a["href"] for a in elements.find("a")}
    assert {url for rule in failed.rules for url in rule.citation} <= hrefs
    assert elements.find("pre", "diff")


def test_workload_names_are_escaped(workload: WorkloadFactory, context: AuditContext) -> None:
    odd = MISTUNED_YAML.replace("name: llama-mistuned", "name: '<script>x</script>'")
    result = audited(workload(odd), context)
    page = html.render([result], run_info(result))
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_a_line_under_the_heading_says_when_xdist_workers_shared_the_gpus(
    passed: WorkloadResult,
) -> None:
    info = replace(run_info(passed), parallel=GpuWorkers(workers=3, gpus=2))
    page = html.render([passed], info)
    line = (
        '<p class="facts parallel">'
        "goblin: 3 xdist workers share 2 GPUs: benchmarks on a shared GPU wait for its lock"
        "</p>"
    )
    assert page.index("<h1>") < page.index(line) < page.index('<section id="chart">')


@pytest.mark.parametrize(
    "parallel", [None, GpuWorkers(workers=2, gpus=2)], ids=["serial", "one-worker-per-gpu"]
)
def test_no_xdist_line_when_no_gpu_was_shared(
    passed: WorkloadResult, parallel: GpuWorkers | None
) -> None:
    info = replace(run_info(passed), parallel=parallel)
    assert not Elements(html.render([passed], info)).find("p", "parallel")


def test_goblin_html_writes_the_page_and_says_where(pytester: pytest.Pytester) -> None:
    (pytester.path / "workloads").mkdir()
    (pytester.path / "workloads/a.goblin.yaml").write_text(MISTUNED_YAML)
    (pytester.path / "workloads/b.goblin.yaml").write_text(TUNED_YAML)
    result = pytester.runpytest(
        "--goblin",
        "--goblin-fake",
        "-p",
        "no:cacheprovider",
        "--goblin-html=out/report.html",
        "workloads",
    )
    page = (pytester.path / "out/report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "llama-mistuned" in page
    result.stdout.fnmatch_lines([f"HTML report: {pytester.path / 'out/report.html'}"])


# --- in a real browser --------------------------------------------------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (
                    line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)
                ) & 0xFF
        rows.append(bytes(b for x in range(width) for b in line[x * channels : x * channels + 3]))
        previous = line
    return width, height, rows


def longest_run(rows: list[bytes], colour: str) -> int:
    """The longest horizontal run of exactly this colour anywhere in the image."""
    target = bytes.fromhex(colour.lstrip("#"))
    best = 0
    for row in rows:
        run = 0
        for x in range(0, len(row), 3):
            run = run + 1 if row[x : x + 3] == target else 0
            best = max(best, run)
    return best


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_chromium_draws_the_bars_and_the_whisker_to_scale(
    failed: WorkloadResult,
    passed: WorkloadResult,
    tmp_path: Path,
) -> None:
    page = tmp_path / "report.html"
    page.write_text(html.render([failed, passed], run_info(failed)), encoding="utf-8")
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    _, _, rows = read_png(shot)
    longest_baseline = longest_run(rows, html.BASELINE_COLOUR)
    patched = longest_run(rows, html.PATCHED_COLOUR)
    whisker = longest_run(rows, html.WHISKER_COLOUR)
    assert passed.baseline is not None and failed.patched is not None
    assert failed.speedup is not None and failed.speedup_ci is not None
    assert longest_baseline > 100
    assert patched / longest_baseline == pytest.approx(
        failed.patched.tokens_per_sec / passed.baseline.tokens_per_sec, abs=0.02
    )
    ci_span = (failed.speedup_ci[1] - failed.speedup_ci[0]) / failed.speedup
    assert whisker == pytest.approx(patched * ci_span, abs=3)


def test_the_chart_is_never_scaled_down_so_its_text_stays_readable(
    failed: WorkloadResult,
) -> None:
    """At 400 px wide, a chart shrunk to fit had 5 px text; it scrolls sideways instead."""
    page = html.render([failed], run_info(failed))
    (svg,) = Elements(page).find("svg")
    assert svg["width"] == str(html.CHART_WIDTH)
    assert "style" not in svg
    assert "#chart { overflow-x: auto; }" in page
