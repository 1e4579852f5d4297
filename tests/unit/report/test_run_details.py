"""Specification of the run details a measured workload shows in every report: the device's
catalogue key, the attention kernel that ran, memory peaks, skipped fp16 steps, telemetry."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from helpers.sample_results import audited, run_info
from pytest_goblin.agent.state import AuditContext
from pytest_goblin.report import html, markdown
from pytest_goblin.report.summary import run_details, run_details_text
from pytest_goblin.report.terminal import failure_text
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadResult
from pytest_goblin.workload.read import Workload

GPU = DeviceInfo(kind="rocm", name="AMD Radeon Graphics", platform="rocm-instinct")
CPU = DeviceInfo(kind="cpu", name="x86_64", platform="cpu")


@pytest.fixture
def projected(mistuned: Workload, context: AuditContext) -> WorkloadResult:
    """The mistuned workload's failed result, as the analytic model projects it."""
    result = audited(mistuned, context)
    assert result.outcome == "failed" and result.projected and result.patch is not None
    return result


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def measured(
    result: WorkloadResult,
    device: DeviceInfo,
    baseline: dict[str, Any],
    patched: dict[str, Any],
) -> WorkloadResult:
    """``result`` as a measured run on ``device`` whose arms carry these RunMetrics fields."""

    def arm(metrics: RunMetrics | None, fields: dict[str, Any]) -> RunMetrics:
        assert metrics is not None
        return metrics.model_copy(update={"projected": False, "runner_kind": "torch", **fields})

    return result.model_copy(
        update={
            "projected": False,
            "device": device,
            "baseline": arm(result.baseline, {"hbm_peak_gb": 61.25, **baseline}),
            "patched": arm(result.patched, {"hbm_peak_gb": 40.5, **patched}),
        }
    )


def on_gpu(result: WorkloadResult) -> WorkloadResult:
    return measured(
        result,
        GPU.model_copy(update={"catalogue_key": "mi300x"}),
        {
            "attention_backend": "eager",
            "hbm_reserved_peak_gb": 70.0,
            "hbm_device_peak_gb": 72.5,
            "skipped_steps": 3,
            "window_telemetry": [
                {"clock_mhz": 1800.0, "power_w": 610.2, "temp_c": 61.0},
                {},  # a boundary where no sensor answered
                {"clock_mhz": 2100.0, "power_w": 705.8, "temp_c": 68.4},
            ],
        },
        {
            "attention_backend": "sdpa:flash_attention",
            "hbm_reserved_peak_gb": 44.0,
            "skipped_steps": 0,
            "window_telemetry": [{"clock_mhz": 2100.0}],
        },
    )


GPU_PARTS = [
    "device key mi300x",
    "baseline: attention eager, peak memory 61.25 allocated / 70.00 reserved / 72.50 device GB, "
    "3 fp16 steps skipped, clock 1800–2100 MHz, power 610–706 W, temp 61–68 °C (2 readings)",
    "patched: attention sdpa:flash_attention, peak memory 40.50 allocated / 44.00 reserved GB, "
    "clock 2100 MHz (1 reading)",
]


def markdown_text(result: WorkloadResult) -> str:
    """The Markdown summary as a reader sees it (rendered, escapes resolved)."""
    page = (
        MarkdownIt("commonmark").enable("table").render(markdown.render([result], run_info(result)))
    )
    return unescape(page)


class Paragraphs(HTMLParser):
    """The text of each ``<p class="run-details">`` of a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self.inside = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p" and ("class", "run-details") in attrs:
            self.inside = True
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "p"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.found[-1] += data


def test_a_gpu_run_shows_key_kernel_peaks_skipped_steps_and_telemetry(
    projected: WorkloadResult,
) -> None:
    assert run_details(on_gpu(projected)) == GPU_PARTS


def test_the_terminal_failure_text_has_the_run_details_line(projected: WorkloadResult) -> None:
    lines = failure_text(on_gpu(projected)).splitlines()
    assert f"  run details: {'; '.join(GPU_PARTS)}" in lines
    # with the numbers it qualifies, before the changes
    assert lines.index(f"  run details: {'; '.join(GPU_PARTS)}") < lines.index("changes:")


def test_the_markdown_summary_has_a_run_details_line_per_measured_workload(
    projected: WorkloadResult,
) -> None:
    text = markdown_text(on_gpu(projected))
    assert f"<li><code>llama-mistuned</code>: run details: {'; '.join(GPU_PARTS)}</li>" in text


def test_the_html_report_has_the_run_details_in_the_workload_section(
    projected: WorkloadResult,
) -> None:
    page = html.render([on_gpu(projected)], run_info(projected))
    assert Paragraphs(page).found == [f"run details: {'; '.join(GPU_PARTS)}"]


def test_a_cpu_run_shows_only_what_the_cpu_measures(projected: WorkloadResult) -> None:
    result = measured(
        projected,
        CPU.model_copy(update={"catalogue_key": "cpu"}),
        {"attention_backend": "sdpa:math"},
        {"attention_backend": "sdpa:math"},
    )
    parts = ["device key cpu", "baseline: attention sdpa:math", "patched: attention sdpa:math"]
    assert run_details(result) == parts
    line = "; ".join(parts)
    assert f"  run details: {line}" in failure_text(result).splitlines()
    assert f"run details: {line}</li>" in markdown_text(result)
    assert Paragraphs(html.render([result], run_info(result))).found == [f"run details: {line}"]


def test_a_measured_run_with_none_of_these_shows_no_run_details(
    projected: WorkloadResult,
) -> None:
    result = measured(projected, CPU, {}, {})
    assert run_details(result) == [] and run_details_text(result) == ""
    assert "run details" not in failure_text(result)
    assert "run details" not in markdown.render([result], run_info(result))
    assert "run-details" not in html.render([result], run_info(result))


def test_a_projected_run_shows_no_run_details_even_with_the_fields_set(
    projected: WorkloadResult,
) -> None:
    gpu = on_gpu(projected)
    result = gpu.model_copy(
        update={
            "projected": True,
            "baseline": gpu.baseline.model_copy(update={"projected": True})
            if gpu.baseline
            else None,
        }
    )
    assert run_details(result) == []
    assert "run details" not in failure_text(result)
    assert "run-details" not in html.render([result], run_info(result))


def test_the_patched_arm_is_left_out_without_a_patch(projected: WorkloadResult) -> None:
    result = on_gpu(projected).model_copy(update={"patch": None})
    assert run_details(result) == GPU_PARTS[:2]
