"""The device a pytest session benchmarks on, owned by the ``goblin_device`` fixture.

In fake mode the "device" is a simulated one from the catalogue and every
number is projected by the analytic model. A workload may name another
simulated device in its ``goblin.device`` setting; sessions for those are made
on first use and kept for the rest of the run.
"""

from __future__ import annotations

from pytest_goblin.runner.devices import get_device
from pytest_goblin.runner.fake import FakeRunner
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadConfig


class SimulatedDevice:
    """A catalogue device driven by the FakeRunner; satisfies the agent's Runner protocol."""

    def __init__(self, name: str) -> None:
        self.spec = get_device(name)
        self.info: DeviceInfo = self.spec.info()
        self._runner = FakeRunner(self.spec)

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        return self._runner.run(config, steps)


class DeviceSession:
    """The session's device plus any simulated devices workloads ask for.

    Only simulated devices exist in this version; measured runs come with the
    torch runner.
    """

    def __init__(self, default_device: str) -> None:
        self.default = SimulatedDevice(default_device)
        self._by_name: dict[str, SimulatedDevice] = {self.default.spec.name: self.default}

    @property
    def info(self) -> DeviceInfo:
        return self.default.info

    def runner_for(self, device: str | None = None) -> SimulatedDevice:
        """The runner for a workload's ``goblin.device`` (the session default when None)."""
        if device is None:
            return self.default
        key = get_device(device).name
        if key not in self._by_name:
            self._by_name[key] = SimulatedDevice(key)
        return self._by_name[key]
