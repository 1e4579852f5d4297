"""The JSON report (``--goblin-json``): versioned, written atomically.

Schema version 1. Top level: ``schema_version``, ``device`` {kind, name, …},
``backend``, ``threshold``, ``projected``, ``parallel`` ({workers, gpus, shared}
when a measured run spread xdist workers over GPUs, else null), ``noise_floors``
(``--goblin-calibrate``: one NoiseFloor per device, empty without it), ``workloads``
(one WorkloadResult each). Names are a public contract: fields are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_goblin import __version__
from pytest_goblin.atomic import write_text
from pytest_goblin.schemas import DeviceInfo, WorkloadResult

if TYPE_CHECKING:
    from pytest_goblin.plugin.xdist_gpus import GpuWorkers

SCHEMA_VERSION = 1


def build(
    results: Sequence[WorkloadResult],
    device: DeviceInfo | None,
    backend: str,
    threshold: float,
    fake: bool,
    parallel: GpuWorkers | None = None,
) -> dict[str, Any]:
    from pytest_goblin.audit.calibrate import noise_floors

    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"pytest-goblin {__version__}",
        "device": device.model_dump(mode="json") if device else None,
        "backend": backend,
        "threshold": threshold,
        "projected": fake,
        "parallel": parallel.as_json() if parallel else None,
        "noise_floors": [floor.model_dump(mode="json") for floor in noise_floors(results)],
        "workloads": [r.model_dump(mode="json") for r in results],
    }


def write(path: Path, document: dict[str, Any]) -> None:
    # allow_nan=False: a bare NaN is not JSON, and most parsers refuse the whole report
    write_text(path, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
