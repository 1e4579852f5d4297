"""Facts about the audited device and the baseline's profile run, and the fit guard.

A rule's condition reads the config, and also these facts (``device.memory_gb``,
``profile.memory_fraction``, ``profile.buckets.memory_headroom``, ... listed in
``pytest_goblin.kb.conditions.FACTS``): whether a change is worth making, and
whether it fits, depends on the device and on what the run showed, not on the
shape of the config alone.

A patch rule that uses more memory declares a fit guard (``fits:
{max_memory_fraction: 0.85}``). The patched config is admitted only when its
peak memory, projected by the analytic memory model and *scaled by the
baseline's profiled peak* (so a measured run corrects the model's error for this
model, framework and device), stays under that fraction of the device's memory.
Where the device's memory or the profile is unknown the guard cannot be
checked, and a guarded rule stays out rather than risk an out-of-memory patch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_goblin.schemas import WASTE_BUCKETS, RunMetrics, WorkloadConfig

PeakModel = Callable[[WorkloadConfig], float]
"""Projected peak memory of one rank of a config on the audited device, in GB."""


@dataclass(frozen=True)
class AuditFacts:
    """The facts one audit's rules see, and how to predict a changed config's peak memory.

    ``data`` is what conditions read (``{"device": {...}, "profile": {...}}``);
    ``peak_model`` projects a config's peak, and ``scale`` is the baseline's
    profiled peak over its projected peak (1 for a projected profile).
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    memory_gb: float | None = None
    peak_model: PeakModel | None = None
    scale: float = 1.0

    def peak_gb(self, config: WorkloadConfig) -> float | None:
        """The predicted peak memory of ``config`` on this device, GB; None when unknown."""
        if self.peak_model is None:
            return None
        return self.peak_model(config) * self.scale

    def misfit(self, config: WorkloadConfig, max_fraction: float) -> str | None:
        """Why ``config`` does not fit under ``max_fraction`` of device memory, or None."""
        peak = self.peak_gb(config)
        if peak is None or not self.memory_gb:
            return "its fit guard cannot be checked: the device's memory or the profile is unknown"
        if peak > max_fraction * self.memory_gb:
            return (
                f"does not fit: predicted peak {peak:.1f} GB is over {max_fraction:.0%} of "
                f"{self.memory_gb:g} GB"
            )
        return None


def audit_facts(
    device_name: str,
    platform: str,
    memory_gb: float | None,
    baseline: WorkloadConfig,
    profile: RunMetrics | None,
    peak_model: PeakModel | None,
) -> AuditFacts:
    """The facts of an audit whose baseline ``profile`` ran on this device.

    The profile's peak calibrates the analytic memory model: a measured peak 20%
    above the projected one makes every patched config's prediction 20% higher.
    Without a profile the model's projection stands as it is.
    """
    device: dict[str, Any] = {"name": device_name, "platform": platform}
    if memory_gb:
        device["memory_gb"] = float(memory_gb)
    data: dict[str, Any] = {"device": device}
    scale = 1.0
    if profile is not None:
        peak = profile.hbm_peak_gb
        budget = profile.waste_budget.model_dump()
        total = sum(budget.values())
        facts: dict[str, Any] = {"peak_memory_gb": peak}
        if memory_gb:
            facts["memory_fraction"] = peak / memory_gb
        if total > 0:
            facts["buckets"] = {bucket: budget[bucket] / total for bucket in WASTE_BUCKETS}
        data["profile"] = facts
        if peak_model is not None and peak > 0:
            scale = peak / peak_model(baseline)
    return AuditFacts(
        data=data,
        memory_gb=float(memory_gb) if memory_gb else None,
        peak_model=peak_model,
        scale=scale,
    )


def catalogue_facts(
    device: Mapping[str, Any], profile: Mapping[str, Any], config: WorkloadConfig
) -> AuditFacts:
    """Facts for a rule's example: ``device.name`` picks a catalogue device, whose
    memory and analytic model fill what the example leaves out (the profile's peak
    defaults to the baseline's projected peak)."""
    from pytest_goblin.catalogue.devices import get_device
    from pytest_goblin.runner.analytic import AnalyticModel

    spec = get_device(str(device["name"]))
    runner = AnalyticModel(spec)

    def peak_model(cfg: WorkloadConfig) -> float:
        return runner.memory(cfg).total_gb

    memory_gb = float(device.get("memory_gb", spec.memory_gb))
    peak = float(profile.get("peak_memory_gb", peak_model(config)))
    data: dict[str, Any] = {
        "device": {"name": spec.name, "platform": spec.platform, "memory_gb": memory_gb},
        "profile": {"peak_memory_gb": peak, "memory_fraction": peak / memory_gb},
    }
    if "buckets" in profile:
        data["profile"]["buckets"] = dict(profile["buckets"])
    return AuditFacts(
        data=data, memory_gb=memory_gb, peak_model=peak_model, scale=peak / peak_model(config)
    )
