"""The Python API: explore workload configs from a script or a notebook, without pytest.

Four things the plugin does for every workload file are available as plain functions:
read the file (:func:`load_workload`), list the devices the analytic model knows
(:func:`devices`), project a config on one of them (:func:`project`, :func:`memory`),
and run the knowledge base against a config (:func:`match_rules`). Numbers from here
are *projected* by the analytic model, as under ``--goblin-fake``; measuring needs a
pytest run. ``docs/api.md`` shows them in use.

Every function takes a :class:`~pytest_goblin.workload.read.Workload` (what
:func:`load_workload` returns) or a bare :class:`~pytest_goblin.schemas.WorkloadConfig`,
so a config can be edited with ``config.model_copy(update={...})`` and projected again.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

from pytest_goblin.catalogue.devices import DEVICES, DeviceSpec, get_device
from pytest_goblin.kb.loader import KnowledgeBase, MatchResult, load_kb
from pytest_goblin.runner.analytic import AnalyticModel, MemoryEstimate
from pytest_goblin.runner.projected import SimulatedDevice
from pytest_goblin.schemas import RunMetrics, WorkloadConfig
from pytest_goblin.workload.read import Workload
from pytest_goblin.workload.read import load_workload as _load_workload

__all__ = [
    "DEFAULT_DEVICE",
    "devices",
    "load_workload",
    "match_rules",
    "memory",
    "project",
]

DEFAULT_DEVICE = "mi300x"
"""The device :func:`project` and :func:`match_rules` use when none is named: the
default of ``--goblin-fake-device``."""

PROFILE_STEPS = 10
"""Steps a projection reports by default: what an audit's first (profiling) run takes.
The analytic model projects every step alike, so the figures per step do not depend on it."""


def load_workload(path: str | os.PathLike[str]) -> Workload:
    """Read and validate one workload file, in any format the plugin collects.

    The same reader the plugin uses: a file it would error on raises
    :class:`pytest_goblin.errors.WorkloadError` (naming the file and the field) here, and
    a file that is not a workload raises :class:`pytest_goblin.errors.NotAWorkload`.
    """
    return _load_workload(Path(path))


def devices() -> list[DeviceSpec]:
    """The catalogue devices the analytic model can project for, in catalogue order.

    Each entry's ``name`` is what ``device=`` (and ``--goblin-fake-device``) takes;
    ``display_name``, ``memory_gb``, ``peak_tflops`` and ``sources`` say what it is.
    """
    return list(DEVICES.values())


def project(
    workload: Workload | WorkloadConfig, device: str = DEFAULT_DEVICE, steps: int = PROFILE_STEPS
) -> RunMetrics:
    """The analytic model's numbers for ``steps`` optimizer steps of the config on
    ``device`` (a catalogue name: see :func:`devices`).

    Raises :class:`pytest_goblin.errors.OutOfMemory` when the projected peak exceeds the
    device's memory (its ``memory`` holds the estimate), and ``ValueError`` for an unknown
    device or a config the model cannot price.
    """
    return SimulatedDevice(get_device(device).name).run(_config(workload), steps)


def memory(workload: Workload | WorkloadConfig, device: str = DEFAULT_DEVICE) -> MemoryEstimate:
    """The projected peak memory of one rank, by component, whether or not it fits."""
    return AnalyticModel(get_device(device)).memory(_config(workload))


def match_rules(
    workload: Workload | WorkloadConfig,
    device: str = DEFAULT_DEVICE,
    *,
    kb_dirs: Sequence[str | os.PathLike[str]] = (),
    ignore: Collection[str] = (),
    kb: KnowledgeBase | None = None,
) -> MatchResult:
    """The knowledge base's rules that apply to the config on ``device``.

    The built-in rules plus those in ``kb_dirs`` (as ``--goblin-kb`` adds them), or the
    knowledge base ``kb`` when given. A rule is matched as an audit's first look at the
    workload matches it: on the device's platform, with the device's memory and the
    projected peak as the facts its conditions and fit guards read. ``ignore`` waives
    rule ids (as ``goblin_ignore`` does), on top of a workload file's own
    ``goblin: ignore:``; an id that names no rule is a
    :class:`pytest_goblin.kb.loader.KnowledgeBaseError`.
    """
    from pytest_goblin.kb.facts import catalogue_facts

    config = _config(workload)
    spec = get_device(device)
    rules = kb if kb is not None else load_kb([Path(d) for d in kb_dirs])
    facts = catalogue_facts({"name": spec.name}, {}, config)
    waived = set(ignore) | set(workload.settings.ignore if isinstance(workload, Workload) else ())
    return rules.match(config, spec.platform, ignore=waived, facts=facts)


def _config(workload: Workload | WorkloadConfig) -> WorkloadConfig:
    return workload.config if isinstance(workload, Workload) else workload
