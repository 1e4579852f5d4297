"""What the terminal shows: the summary table, the failure text, the rules listing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from pytest_goblin.schemas import DeviceInfo, WorkloadResult


def _device_label(device: DeviceInfo | None) -> str:
    if device is None:
        return "unknown device"
    return f"{device.name} (simulated)" if device.kind == "simulated" else device.name


def _tok(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def header_line(device: DeviceInfo | None, backend: str, threshold: float, fake: bool) -> str:
    mode = "projected (analytic model)" if fake else "measured"
    return (
        f"device: {_device_label(device)} | backend: {backend} | "
        f"threshold: {threshold:.0%} | numbers: {mode}"
    )


def summary_table(results: Sequence[WorkloadResult]) -> str:
    """One row per workload: name, baseline and patched tok/s, speedup, verdict, rules."""
    rows = []
    for r in results:
        speedup = "-" if r.speedup is None else f"{r.speedup:.2f}×"
        if r.speedup_ci:
            speedup += f" [{r.speedup_ci[0]:.2f}, {r.speedup_ci[1]:.2f}]"
        rows.append([
            r.name,
            _tok(r.baseline.tokens_per_sec if r.baseline else None),
            _tok(r.patched.tokens_per_sec if r.patched and r.patch else None),
            speedup,
            r.outcome.upper() if r.outcome != "passed" else "passed",
            ", ".join(rule.id for rule in r.rules) or "-",
        ])
    headers = ["workload", "baseline tok/s", "patched tok/s", "speedup", "verdict", "rules"]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def advisories_text(results: Sequence[WorkloadResult]) -> str:
    """Advice that no config change expresses, once per rule, with the workloads it concerns."""
    seen: dict[str, tuple[Any, list[str]]] = {}
    for result in results:
        for advisory in result.advisories:
            seen.setdefault(advisory.id, (advisory, []))[1].append(result.name)
    lines = []
    for advisory, names in seen.values():
        who = "all workloads" if len(names) == len(results) > 1 else ", ".join(names)
        lines.append(f"advisory {advisory.id} ({who}): {advisory.advice}")
        lines.extend(f"    {url}" for url in advisory.citation)
    return "\n".join(lines)


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
        "",
        "changes:",
    ]
    citations = {rule.id: rule.citation for rule in result.rules}
    for change in result.patch.changes if result.patch else []:
        lines.append(f"  {change.field}: {_show(change.old)} -> {_show(change.new)}"
                     f"  [{change.rule_id}]")
        lines.extend(f"      {url}" for url in citations.get(change.rule_id, []))
    if result.patch and result.patch.diff:
        lines += ["", f"patch for {result.path} (git apply):", result.patch.diff.rstrip("\n")]
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _metrics_line(m: Any) -> str:
    return (f"{m.tokens_per_sec:,.0f} tok/s, step {m.step_time_s:.3f} s, MFU {m.mfu_pct:.1f}%, "
            f"peak memory {m.hbm_peak_gb:.1f} GB")


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def rules_listing(rules: Sequence[Any]) -> str:
    """The knowledge base as ``--goblin-rules`` prints it."""
    rows = [
        [rule.id, rule.category, rule.kind, ", ".join(rule.platforms), "\n".join(rule.citation)]
        for rule in rules
    ]
    table = tabulate(rows, headers=["id", "category", "kind", "platforms", "citation"],
                     tablefmt="simple")
    return f"{table}\n\n{len(rows)} rules"
