"""The one Runner protocol: what turns a workload config into numbers on one device.

The analytic model's projected device, the measured device's worker pool and any
runner a ``pytest_goblin_make_runner`` plugin returns all satisfy it; the agent's tools,
the confirmation rounds, calibration and attribution ask nothing more of a runner.
What the plugin's device session asks in addition (a projector, whether a config can
run) is :class:`pytest_goblin.runner.device_session.DeviceRunner`, which extends it.
"""

from __future__ import annotations

from typing import Protocol

from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadConfig


class Runner(Protocol):
    """Anything that turns a config into RunMetrics on one device."""

    @property
    def info(self) -> DeviceInfo:
        """The device the numbers are for (projected or measured on)."""
        ...

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        """Train ``config`` for ``steps`` timed steps (or project them) and report."""
        ...
