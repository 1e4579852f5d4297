"""The optimizers a workload can name (Hugging Face ``optim`` strings), built for real.

Hyperparameters are the Hugging Face Trainer's defaults (betas 0.9/0.999, eps
1e-8, no weight decay) with the workload's learning rate; what differs between
the names is the implementation, which is what the runner measures.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

import torch

from pytest_goblin.catalogue.optimizer_names import canonical_optimizer
from pytest_goblin.runner import bitsandbytes_build

BITSANDBYTES: dict[str, str] = {
    "adamw_bnb_8bit": "AdamW8bit",
    "paged_adamw_8bit": "PagedAdamW8bit",
}
"""HF names of 8-bit optimizers and their bitsandbytes classes."""

BUILT_IN = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "sgd", "adafactor")


def canonical(name: str) -> str:
    """The HF name behind an alias (``adamw`` is ``adamw_torch``), lowercased."""
    return canonical_optimizer(name)


def unsupported_reason(name: str) -> str | None:
    """Why this process cannot build the optimizer, or None when it can."""
    key = canonical(name)
    if key in BITSANDBYTES:
        if importlib.util.find_spec("bitsandbytes") is None:
            return f"optimizer {name!r} needs bitsandbytes, which is not installed"
        return bitsandbytes_build.installed_reason()
    if key == "adafactor" and not hasattr(torch.optim, "Adafactor"):
        return f"optimizer {name!r} needs torch.optim.Adafactor (PyTorch 2.5 or later)"
    if key not in BUILT_IN:
        known = ", ".join([*BUILT_IN, *BITSANDBYTES])
        return f"optimizer {name!r} is not one the torch runner builds ({known})"
    return None


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """The optimizer over ``params``; call ``unsupported_reason`` first."""
    key = canonical(name)
    params = list(params)
    if key == "adamw_torch":
        # multi-tensor kernels: HF adamw_torch on an accelerator
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, foreach=True)
    if key == "adamw_torch_fused":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    if key == "adamw_hf":
        # transformers' own AdamW loops over parameters one at a time, as this does
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, foreach=False)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if key == "adafactor":
        return torch.optim.Adafactor(params, lr=lr)
    if key in BITSANDBYTES:
        # optional: unsupported_reason has checked that it is installed
        import bitsandbytes

        return getattr(bitsandbytes.optim, BITSANDBYTES[key])(params, lr=lr, weight_decay=0.0)
    raise ValueError(unsupported_reason(name) or f"optimizer {name!r} is not supported")
