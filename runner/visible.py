"""The GPUs a process may use, read from the visible-devices variables without torch.

CUDA reads ``CUDA_VISIBLE_DEVICES``. ROCm reads two layers: ``ROCR_VISIBLE_DEVICES``
(the ROCm runtime: which GPUs exist for the process at all), then
``HIP_VISIBLE_DEVICES`` — or ``CUDA_VISIBLE_DEVICES``, its alias, when HIP's is
unset — whose indices count within what ROCR left visible (PyTorch reads them the
same way). Each is a comma-separated list of indices or UUIDs (``GPU-…``,
``MIG-…``). As CUDA (and PyTorch's reading of it) does, an entry that is neither
ends the list (``-1`` hides every GPU), an empty value hides every GPU, and a
repeated entry hides them all.

An xdist worker pins one GPU by narrowing one variable to one entry
(``pinned_variables``). A selector that names an index (``cuda:1``) means the
index the user sees, so its device worker gets the variables as they were before
pinning (``environ_for``). A device's lock names it physically (``physical_id``):
every pinned worker sees its GPU as index 0, and those must still be different
locks for different GPUs and one lock for one GPU. A multi-rank run on a pinned worker
takes N of the session's GPUs, its own first (``widened``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pytest_goblin.runner import gpu_topology
from pytest_goblin.runner.options import parse_selector

CUDA = "CUDA_VISIBLE_DEVICES"
HIP = "HIP_VISIBLE_DEVICES"
ROCR = "ROCR_VISIBLE_DEVICES"
VARIABLES = (HIP, CUDA, ROCR)
UNPINNED = "GOBLIN_UNPINNED_VISIBLE_DEVICES"
"""Set by pinning: the visible-devices variables as they were before, as JSON (null: unset)."""

KFD_NODES = gpu_topology.KFD_NODES
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
_ENTRY = re.compile(r"\d+|(?:GPU|MIG)-[0-9A-Za-z/_-]+")

Platform = Literal["rocm", "cuda"]


@dataclass(frozen=True)
class Pin:
    """Setting ``variable`` to ``value`` leaves one GPU visible (ROCR's layer, if set,
    stays as it is: HIP's indices count within it)."""

    variable: str
    value: str

    def __str__(self) -> str:
        return f"{self.variable}={self.value}"


def parse(value: str) -> list[str]:
    """The entries of a visible-devices value: ``"0, 2"`` → ``["0", "2"]``."""
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not _ENTRY.fullmatch(entry):
            break
        entry = str(int(entry)) if entry.isdigit() else entry
        if entry in entries:
            return []
        entries.append(entry)
    return entries


def installed(
    kfd_nodes: Path = KFD_NODES,
    nvidia_gpus: Path = NVIDIA_GPUS,
    dev_dri: Path = gpu_topology.DEV_DRI,
) -> tuple[Platform | None, int]:
    """The GPU platform the kernel drivers show, and how many GPUs it has.

    ROCm's KFD topology lists one node per CPU socket and per GPU, and every GPU of the
    host even inside a container: a GPU counts when its render node opens and it is not
    an APU's integrated GPU (``gpu_topology``). NVIDIA's driver has one directory per
    GPU. Read from the file system because the pytest process must not import torch
    (seconds, and a CUDA context in a process that never trains).
    """
    amd = len(rocm_indices(kfd_nodes, dev_dri))
    if amd:
        return "rocm", amd
    nvidia = len(_children(nvidia_gpus))
    return ("cuda", nvidia) if nvidia else (None, 0)


def _children(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def rocm_indices(kfd_nodes: Path = KFD_NODES, dev_dri: Path = gpu_topology.DEV_DRI) -> list[int]:
    """The ROCm runtime's indices of the discrete GPUs this process can open: an APU's
    integrated GPU ahead of them keeps its index, so the indices are not always 0..n-1."""
    usable = gpu_topology.usable_gpus(gpu_topology.read_nodes(kfd_nodes), dev_dri)
    return gpu_topology.discrete_indices(usable)


def pins(
    environ: Mapping[str, str],
    platform: Platform | None,
    count: int,
    indices: Sequence[int] | None = None,
) -> list[Pin]:
    """One pin per GPU this process may use, in the order the runtime numbers them.

    ``count`` is how many GPUs the driver shows (used when no variable narrows
    them), ``indices`` their runtime indices where they are not 0..count-1 (ROCm with
    an integrated GPU among them, ``rocm_indices``). On ROCm a pin sets
    ``HIP_VISIBLE_DEVICES``; with no driver found, the variable the user set, so that
    the pin means the same on either platform.
    """
    if platform == "cuda":
        if CUDA in environ:
            return [Pin(CUDA, entry) for entry in parse(environ[CUDA])]
        return [Pin(CUDA, str(index)) for index in range(count)]
    chooser = HIP if HIP in environ else CUDA if CUDA in environ else None
    if chooser is not None:
        variable = HIP if platform == "rocm" else chooser
        return [Pin(variable, entry) for entry in parse(environ[chooser])]
    if ROCR in environ:
        return [Pin(HIP, str(index)) for index in range(len(parse(environ[ROCR])))]
    return [Pin(HIP, str(index)) for index in (range(count) if indices is None else indices)]


def pinned_variables(environ: Mapping[str, str], pin: Pin) -> dict[str, str]:
    """The variables to set in ``environ`` to pin: the pin itself, and the visible-devices
    variables as they were (``UNPINNED``), kept for selectors that name an index."""
    before = {name: environ.get(name) for name in VARIABLES}
    return {pin.variable: pin.value, UNPINNED: json.dumps(before)}


def environ_for(selector: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a device worker for ``selector``.

    As pinned, unless the selector names an index: ``cuda:1`` counts among the
    GPUs the user made visible, not within the one the xdist worker was given,
    so the variables go back to what they were before pinning.
    """
    saved = environ.get(UNPINNED)
    if saved is None or parse_selector(selector).index is None:
        return dict(environ)
    env = {key: value for key, value in environ.items() if key not in (UNPINNED, *VARIABLES)}
    env.update({key: value for key, value in json.loads(saved).items() if value is not None})
    return env


def widened(
    environ: Mapping[str, str],
    gpus: int,
    platform: Platform | None,
    count: int,
    indices: Sequence[int] | None = None,
) -> dict[str, str]:
    """The variable to set so that a process pinned to one GPU sees ``gpus`` of them: the
    pinned one first, then the GPUs after it in the session's order, wrapping round (its
    own first, so that rank 0 and the worker's device lock are the GPU it was given;
    workers pinned to neighbours claim overlapping sets, which the locks order). All of
    the session's GPUs where it has fewer than ``gpus``, so that a run that cannot fit
    counts all of them when it skips.

    The session's GPUs are ``pins`` of the variables as they were before pinning
    (``UNPINNED``; ``platform``, ``count`` and ``indices`` as for ``pins``), the list the
    xdist controller handed out. Nothing (``{}``) for one GPU, in an environment that is
    not pinned, or whose pin is not among them.
    """
    saved = environ.get(UNPINNED)
    if gpus <= 1 or saved is None:
        return {}
    before = {name: value for name, value in json.loads(saved).items() if value is not None}
    session = pins(before, platform, count, indices)
    own = next((i for i, pin in enumerate(session) if environ.get(pin.variable) == pin.value), None)
    if own is None:
        return {}
    taken = (session[own:] + session[:own])[:gpus]
    return {taken[0].variable: ",".join(pin.value for pin in taken)}


def physical_id(kind: str, index: int, environ: Mapping[str, str]) -> str:
    """``{kind}-{entry}``: the GPU that torch's ``index`` is, followed through the
    variables' layers to the index (or UUID) the driver knows it by.

    CUDA_VISIBLE_DEVICES="3,5" and index 1 → ``cuda-5``, the same as
    CUDA_VISIBLE_DEVICES="5" and index 0; on ROCm, ROCR_VISIBLE_DEVICES="2,3"
    with HIP_VISIBLE_DEVICES="1" and index 0 → ``rocm-3``.
    """
    layers = (
        [environ.get(CUDA)]
        if kind == "cuda"
        else [environ.get(HIP, environ.get(CUDA)), environ.get(ROCR)]
    )
    entry = str(index)
    for value in layers:
        if value is None or not entry.isdigit():
            continue
        entries = parse(value)
        if int(entry) < len(entries):
            entry = entries[int(entry)]
    return f"{kind}-{entry}"
