"""``-v`` during a measured audit says which verdict round is running (issue 18, case 17).

After the agent's estimate, a measured verdict runs its own paired rounds, which took
~20 s in silence; each round is now announced before it is measured. A runner plugin
stands in for the device (numbers from the analytic model, reported as measured), so
no torch runs.
"""

from __future__ import annotations

import pytest

from helpers.workloads import MISTUNED_YAML

RIG = """
from pytest_goblin.runner.device_session import SimulatedDevice


class Rig:
    def __init__(self):
        self.projector = SimulatedDevice("mi300x")
        self.info = self.projector.info.model_copy(update={"kind": "rocm", "name": "Rig"})

    def unsupported(self, config):
        return None

    def run(self, config, steps):
        return self.projector.run(config, steps).model_copy(update={"projected": False})

    def close(self):
        pass


def pytest_goblin_make_runner(device, settings):
    return Rig() if device is None and not settings.fake else None
"""


def test_each_verdict_round_is_announced_after_the_agents_estimate(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RIG)
    (pytester.path / "w.goblin.yaml").write_text(MISTUNED_YAML)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--goblin", "--goblin-max-repeats=2", "-v", "w.goblin.yaml"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    agent's estimate: *",
            "    verdict: measuring round 1 of at most 2 (a baseline and a patched run)",
            "    verdict: measuring round 2 of at most 2 (a baseline and a patched run)",
            "w.goblin.yaml::llama-mistuned FAILED*",
        ]
    )
