"""pytest-xdist across GPUs: ``-n auto`` starts one worker per visible GPU, and each
worker measures on its own.

The controller counts the GPUs (``runner.visible``: the visible-devices variables,
else the kernel drivers) and hands each worker one, round-robin, in
``node.workerinput``; the worker narrows its visible-devices variable to that GPU
before any device worker starts, so ``--goblin-device auto``/``cuda``/``rocm``
lands on it. Workers beyond the GPU count share GPUs; the per-device lock keeps
their benchmarks apart, and the summary says so. A multi-rank workload's run takes N
GPUs from the worker's own on, claiming their locks (``runner.visible.widened``).

Nothing is pinned in fake mode (nothing runs on a GPU), on the CPU, or when
``--goblin-device`` names an index (``cuda:1``): the user chose the GPU, and every
worker measures on that one, taking turns at its lock; ``-n auto`` then starts one
worker. A workload's ``goblin.device`` naming an index means the same GPU as in a
serial run (``runner.visible.environ_for``). ``-n auto`` without a GPU to spread
over, and with ``PYTEST_XDIST_AUTO_NUM_WORKERS`` set, is xdist's own count.

The hooks are registered only when xdist is installed and ``--goblin`` is on, as
pytest-randomly registers its xdist hooks, but from ``pytest_load_initial_conftests``
rather than ``pytest_configure``: xdist asks ``pytest_xdist_auto_num_workers`` in
its ``pytest_cmdline_main``, before any ``pytest_configure`` runs. This module
never imports xdist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_goblin.plugin import settings as settings_module
from pytest_goblin.plugin.settings import SETTINGS_KEY, GoblinSettings
from pytest_goblin.runner.options import parse_selector
from pytest_goblin.runner.visible import (
    VARIABLES,
    Pin,
    installed,
    pinned_variables,
    pins,
    rocm_indices,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from xdist.workermanage import WorkerController

    from pytest_goblin.runner.visible import Platform

PLUGIN_NAME = "goblin-xdist-gpus"
WORKERINPUT_KEY = "goblin_gpu"
"""The pin a worker is given: ``[variable, value]`` (workerinput crosses execnet)."""


@dataclass(frozen=True)
class GpuPlan:
    """The GPUs a measured session spreads its xdist workers over."""

    gpus: int
    pins: tuple[Pin, ...] = ()
    """One per GPU; none when the user named the GPU and there is nothing to pin."""

    def pin_for(self, worker: int) -> Pin | None:
        """The pin of the ``worker``-th worker: round-robin over the GPUs."""
        return self.pins[worker % len(self.pins)] if self.pins else None


@dataclass(frozen=True)
class GpuWorkers:
    """How many xdist workers measured on how many GPUs (the report's ``parallel``)."""

    workers: int
    gpus: int

    @property
    def shared(self) -> bool:
        return self.workers > self.gpus

    def summary_line(self) -> str:
        """The terminal summary's line for a run whose workers outnumber its GPUs."""
        gpus = f"{self.gpus} GPU{'' if self.gpus == 1 else 's'}"
        return (
            f"goblin: {self.workers} xdist workers share {gpus}: "
            "benchmarks on a shared GPU wait for its lock"
        )

    def as_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "gpus": self.gpus, "shared": self.shared}


def plan(
    settings: GoblinSettings,
    environ: Mapping[str, str],
    platform: Platform | None,
    count: int,
    indices: Sequence[int] | None = None,
) -> GpuPlan | None:
    """The GPUs to spread workers over; None when there are none to spread over (fake
    mode, the CPU, no GPU visible), which leaves ``-n auto`` to xdist."""
    if not settings.enabled or settings.fake:
        return None
    selector = parse_selector(settings.device)
    if selector.kind == "cpu":
        return None
    if selector.index is not None:
        return GpuPlan(gpus=1)
    found = tuple(pins(environ, platform, count, indices))
    return GpuPlan(len(found), found) if found else None


def register(early_config: pytest.Config) -> None:
    """Register the hooks under ``--goblin`` when xdist is installed (and not ``-p no:xdist``)."""
    manager = early_config.pluginmanager
    wanted = early_config.known_args_namespace.goblin and manager.hasplugin("xdist")
    if wanted and not manager.has_plugin(PLUGIN_NAME):
        manager.register(XdistGpus(), PLUGIN_NAME)


def gpu_workers(config: pytest.Config) -> GpuWorkers | None:
    """The workers and GPUs of this run, on the controller of a run that spread its
    workers over GPUs; None otherwise."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin.spread() if isinstance(plugin, XdistGpus) else None


class XdistGpus:
    """The xdist hooks: worker count, the GPU each worker gets, and pinning on the worker."""

    def __init__(self) -> None:
        self._plan: GpuPlan | None = None
        self._planned = False
        self._indexes: dict[str, int] = {}
        self._workers = 0

    def _session_plan(self, config: pytest.Config) -> GpuPlan | None:
        """Made once, on first use: ``-n auto`` asks before ``pytest_configure`` stashed
        the settings, so they are built here then."""
        if not self._planned:
            settings = config.stash.get(SETTINGS_KEY, None) or settings_module.build(config)
            platform, count = installed()
            indices = rocm_indices() if platform == "rocm" else None
            self._plan = plan(settings, os.environ, platform, count, indices)
            self._planned = True
        return self._plan

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_auto_num_workers(self, config: pytest.Config) -> int | None:
        if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
            return None
        gpus = self._session_plan(config)
        return gpus.gpus if gpus else None

    def pytest_configure_node(self, node: WorkerController) -> None:
        """On the controller, before a worker starts: give it its GPU. A restarted worker
        keeps its id, and so its GPU. A worker on another machine (``--tx ssh=…``) has
        other GPUs, and one whose ``--tx`` sets a visible-devices variable
        (``popen//env:CUDA_VISIBLE_DEVICES=1``) was pinned by the user: neither is given one."""
        gpus = self._session_plan(node.config)
        if gpus is None:
            return
        self._workers = node.workerinput["workercount"]
        spec = node.gateway.spec
        if not spec.popen or any(name in spec.env for name in VARIABLES):
            return
        index = self._indexes.setdefault(node.workerinput["workerid"], len(self._indexes))
        pin = gpus.pin_for(index)
        if pin is not None:
            node.workerinput[WORKERINPUT_KEY] = [pin.variable, pin.value]

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        """On a worker: pin its GPU, before any device worker process inherits the
        environment."""
        given = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
        if given:
            os.environ.update(pinned_variables(os.environ, Pin(*given)))

    def spread(self) -> GpuWorkers | None:
        """The controller's workers and the GPUs they were spread over, once any started."""
        if self._plan is None or not self._workers:
            return None
        return GpuWorkers(self._workers, self._plan.gpus)
