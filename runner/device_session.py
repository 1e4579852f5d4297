"""The devices a pytest session benchmarks on, owned by the ``goblin_device`` fixture.

In fake mode the default device is a simulated one from the catalogue and
every number is projected by the analytic model; a workload's
``goblin.device`` names another simulated device. In measured mode the
default device is the live one ``--goblin-device`` selects, trained on by the
torch runner through worker processes; a workload's ``goblin.device`` selects
another live device (``cpu``, ``cuda:1``, …). Devices are made on first use
and kept for the rest of the run; ``close`` ends every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.measured import LiveDevice, TorchRunner
from pytest_goblin.runner.options import SELECTOR_HELP, MeasureOptions, parse_selector
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.runner.protocol import Runner
from pytest_goblin.runner.self_calibration import projection_target
from pytest_goblin.schemas import DeviceInfo, WorkloadConfig, WorkloadSettings

__all__ = ["DeviceRunner", "DeviceSession", "MeasureOptions", "SimulatedDevice"]


class DeviceRunner(Runner, Protocol):
    """What the session hands an audit: a Runner, plus what the plugin asks first."""

    @property
    def projector(self) -> SimulatedDevice: ...

    def unsupported(self, config: WorkloadConfig) -> str | None: ...


class DeviceSession:
    """The session's device plus any others workloads ask for.

    ``measure`` None means fake mode (simulated ``fake_device``: a catalogue entry,
    or a machine a saved calibration names); otherwise runs are measured on
    ``measure.device``, and ``fake_device``'s catalogue entry projects for a live
    device the catalogue does not list.
    """

    def __init__(
        self,
        fake_device: str,
        measure: MeasureOptions | None = None,
        calibrations: Path | None = None,
    ) -> None:
        self.calibrations = calibrations
        """Storage directory whose saved self-calibrations projected devices use."""
        self.fake_name = fake_device
        """As given: a catalogue entry, or a saved calibration's fingerprint or device name."""
        self.fake_device = projection_target(fake_device, calibrations).spec.name
        """The catalogue entry ``fake_name`` projects from."""
        self.measure = measure
        self._simulated: dict[str, SimulatedDevice] = {}
        self._live: dict[str, LiveDevice] = {}
        self.on_wait: Callable[[str], None] | None = None
        """Told when a measured run waits for a device lock another process holds."""

    @property
    def info(self) -> DeviceInfo:
        return self.runner_for().info

    def runner_for(
        self, device: str | None = None, settings: WorkloadSettings | None = None
    ) -> DeviceRunner:
        """The runner for a workload's ``goblin.device`` (the session default when None).

        A name the mode does not know is a ValueError that lists what it takes.
        """
        if self.measure is None:
            name = device or self.fake_name
            if name not in self._simulated:
                self._simulated[name] = SimulatedDevice.named(name, self.calibrations)
            return self._simulated[name]
        live = self._live_device(device or self.measure.device)
        layers = settings.layers if settings and settings.layers else self.measure.layers
        return TorchRunner(
            live, self.fake_device, layers, settings.sample_cost_ms if settings else None
        )

    def _live_device(self, name: str) -> LiveDevice:
        assert self.measure is not None
        try:
            selector = str(parse_selector(name))
        except ValueError as not_a_selector:
            try:
                get_device(name)
            except ValueError:
                raise not_a_selector from None
            raise ValueError(
                f"device {name!r} is a simulated device (for --goblin-fake); "
                f"measured runs take {SELECTOR_HELP}"
            ) from None
        if selector not in self._live:
            self._live[selector] = LiveDevice(replace(self.measure, device=selector))
            self._live[selector].on_wait = self.on_wait
        return self._live[selector]

    def close(self) -> None:
        """End every worker process (the fixture's teardown; also safe to call twice)."""
        for live in self._live.values():
            live.close()
        self._live.clear()
