"""A catalogue device driven by the analytic model: every number it gives is projected."""

from __future__ import annotations

from pathlib import Path

from pytest_goblin.catalogue.devices import get_device
from pytest_goblin.runner.analytic import AnalyticModel
from pytest_goblin.runner.self_calibration import SavedCalibration, projection_target
from pytest_goblin.schemas import DeviceInfo, RunMetrics, WorkloadConfig


class SimulatedDevice:
    """A catalogue device driven by the AnalyticModel; satisfies the agent's Runner protocol."""

    def __init__(
        self, name: str, calibration: SavedCalibration | None = None, *, as_measured: bool = False
    ) -> None:
        """``name`` is a catalogue entry; ``as_measured`` names the device after the machine
        ``calibration`` was fitted on (a fake device named by a saved calibration)."""
        self.spec = get_device(name)
        self.calibration = calibration
        """The device's self-calibration, when one was saved: its numbers stay projected."""
        self.info: DeviceInfo = self.spec.info()
        self.device_id = f"simulated-{self.spec.name}"
        """One catalogue entry is one device: xdist workers share its noise floor."""
        if as_measured and calibration is not None:
            # still kind "simulated": history never compares it with the measured machine
            self.info = self.info.model_copy(update={"name": calibration.device_name})
            self.device_id += f"-{calibration.fingerprint}"
        self._runner = AnalyticModel(self.spec, calibration.correction if calibration else None)

    @classmethod
    def named(cls, name: str, storage: Path | None) -> SimulatedDevice:
        """The device ``--goblin-fake-device NAME`` projects for: a catalogue entry (with the
        newest calibration saved for it under ``storage``), or the machine a saved
        calibration names by fingerprint or device name. A ValueError lists both kinds."""
        target = projection_target(name, storage)
        return cls(target.spec.name, target.calibration, as_measured=target.by_calibration)

    @property
    def projector(self) -> SimulatedDevice:
        """What projects this device's numbers when an audit needs both sides projected."""
        return self

    def unsupported(self, config: WorkloadConfig) -> str | None:
        """Nothing is refused: the analytic model prices what a device lacks as a fallback
        and says so in the run's warnings."""
        return None

    def run(self, config: WorkloadConfig, steps: int) -> RunMetrics:
        metrics = self._runner.run(config, steps)
        if self.calibration is None:
            return metrics
        return metrics.model_copy(update={"calibration": self.calibration.ref()})
