"""The options of measured runs: which device (``auto``, ``cpu``, ``cuda[:N]``,
``rocm[:N]``), how long a run may take, how many steps and layers.

Nothing here imports torch or pydantic: the settings module parses these when
pytest starts, so that a typo in ``--goblin-device`` is a usage error then,
not a failure inside a worker process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

SELECTOR_HELP = "auto, cpu, cuda, cuda:N, rocm or rocm:N"
SCRATCH_ENV = "PYTEST_GOBLIN_SCRATCH_DIR"
"""Where a device worker keeps files of its own (a multi-rank run's launcher logs): in the
session's directory, which the pytest side removes at the end even after a killed worker."""
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_WARMUP = 3
_PATTERN = re.compile(r"(auto|cpu|cuda|rocm)(?::(\d+))?")


SelectorKind = Literal["auto", "cpu", "cuda", "rocm"]


@dataclass(frozen=True)
class DeviceSelector:
    """A parsed selector. ``kind`` auto means: ROCm or CUDA when torch sees a GPU, else CPU."""

    kind: SelectorKind
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_selector(text: str) -> DeviceSelector:
    """``cuda:1`` → DeviceSelector("cuda", 1); a ValueError that lists the forms otherwise."""
    match = _PATTERN.fullmatch(text.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) in ("auto", "cpu")):
        raise ValueError(f"device {text!r} is not one of {SELECTOR_HELP}")
    index = match.group(2)
    kind = cast(SelectorKind, match.group(1))  # the pattern admits only the four kinds
    return DeviceSelector(kind, None if index is None else int(index))


@dataclass(frozen=True)
class MeasureOptions:
    """Session-wide settings of measured runs (``--goblin-device``, ``--goblin-steps``, …)."""

    device: str = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S  # per run; the worker is killed after it
    steps: int | None = None  # timed steps of every run; None: what the audit asks for
    warmup: int = DEFAULT_WARMUP  # untimed steps before them
    layers: int | None = None  # measure this many layers and extrapolate; None: all
    engine: str = "native"  # hf or native (runner/engines.py resolves auto before this)
    max_world_size: int | None = None  # measure at most this many ranks (a shrunk run)
    # multi-rank runs' engine where auto chose hf and hf cannot launch the strategy's ranks
    # on this device (engines.hf_rank_gap: FSDP on the CPU)
    rank_engine: str | None = None
