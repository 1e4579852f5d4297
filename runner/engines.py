"""Measuring engines: which training stack a measured run times.

``hf`` builds the workload's architecture with transformers, applies LoRA with
PEFT and trains through the Hugging Face Trainer (``runner/hf_engine.py``): the
stack users train with, directly or under TRL, axolotl and LLaMA-Factory.
``native`` is the dependency-light Llama-style decoder and loop of
``runner/training.py``. Both run in the same worker process and answer the same
protocol (``runner/worker.py``); the engine is a field of each request.

Nothing here imports torch or transformers: the settings resolve ``auto`` when
pytest starts, from whether the ``hf`` extra's packages are installed.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal, Protocol, cast

if TYPE_CHECKING:
    import torch

    from pytest_goblin.runner.measurement import Measurement
    from pytest_goblin.runner.training import RunRequest, StepHook
    from pytest_goblin.schemas import WorkloadConfig

EngineName = Literal["hf", "native"]
ENGINE_CHOICES = ("auto", "hf", "native")
ENGINE_HELP = (
    "measuring engine: hf (transformers + PEFT under the Hugging Face Trainer), native "
    "(pytest-goblin's own Llama-style decoder) or auto (hf when the hf extra is installed, "
    "else native)"
)
HF_PACKAGES = ("transformers", "peft", "accelerate")
"""What the ``hf`` extra installs and the engine imports (the Trainer needs accelerate)."""


class Engine(Protocol):
    """What a measured run needs from an engine; ``training`` and ``hf_engine`` are two."""

    def unsupported_reason(self, config: WorkloadConfig, device: torch.device) -> str | None:
        """Why ``device`` cannot run ``config`` with this engine (the item is skipped)."""
        ...

    def measure(
        self, request: RunRequest, device: torch.device, hook: StepHook | None = None
    ) -> Measurement:
        """Train warmup + timed steps and time them (raises UnsupportedConfig, Diverged, OOM)."""
        ...


HF_FSDP_ON_CPU = (
    "the Trainer's FSDP runs on GPUs only: accelerate 1.16 (src/accelerate/state.py, "
    "AcceleratorState) enables its FSDP plugin for multi-GPU runs, not for gloo ranks on the "
    "CPU, where the Trainer would run DDP instead"
)


def hf_rank_gap(strategy: str, device_kind: str) -> str | None:
    """Why the hf engine cannot launch ``strategy``'s ranks on a ``device_kind`` device
    (``cpu``, ``cuda``, ``rocm``) where the native engine can, or None: where
    ``--goblin-engine auto`` chose hf, the native engine measures such a workload.
    DeepSpeed is not here: neither engine launches it, and the hf engine's skip says why."""
    if strategy == "fsdp" and device_kind == "cpu":
        return HF_FSDP_ON_CPU
    return None


def hf_missing() -> list[str]:
    """The ``hf`` extra's packages this interpreter cannot import (found without importing)."""
    return [name for name in HF_PACKAGES if importlib.util.find_spec(name) is None]


def resolve_engine(name: str) -> EngineName:
    """``auto``, ``hf`` or ``native`` → the engine measured runs use.

    A ValueError names the choices for an unknown name, and the install command
    when ``hf`` is asked for without its packages.
    """
    key = name.strip().lower()
    if key not in ENGINE_CHOICES:
        raise ValueError(f"engine {name!r} is not one of {', '.join(ENGINE_CHOICES)}")
    missing = hf_missing()
    if key == "auto":
        return "native" if missing else "hf"
    if key == "hf" and missing:
        raise ValueError(f"engine hf needs {', '.join(missing)}: pip install 'pytest-goblin[hf]'")
    return cast(EngineName, key)


def load_engine(name: str) -> Engine:
    """The engine module (worker side: this imports torch, and transformers for ``hf``)."""
    if name == "hf":
        from pytest_goblin.runner import hf_engine

        return hf_engine
    if name == "native":
        from pytest_goblin.runner import training

        return training
    raise ValueError(f"engine {name!r} is not one of hf, native")
