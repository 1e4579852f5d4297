"""Optimizer names a workload may write (Hugging Face ``optim`` strings) and their aliases.

Both sides read these: the analytic model prices an optimizer by its canonical name, and
the torch runner builds it by that name. Keeping the aliases here, below both, means the
torch side does not import the analytic model for a name table.
"""

from __future__ import annotations

OPTIMIZER_ALIASES: dict[str, str] = {
    "adamw": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
}
"""Names that stand for another: ``adamw`` is ``adamw_torch``."""


def canonical_optimizer(name: str) -> str:
    """The name behind an alias, lowercased (``AdamW`` → ``adamw_torch``)."""
    key = name.strip().lower()
    return OPTIMIZER_ALIASES.get(key, key)
