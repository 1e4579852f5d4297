"""Estimated LLM cost of a turn, from a price table keyed by model id.

Prices are data (``prices.yaml``, with sources), never constants in code; a
model missing from the table gets no estimate rather than a guessed one, and
``GOBLIN_LLM_PRICE`` prices any model (a provider's own rate, a discount).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

PRICE_ENV = "GOBLIN_LLM_PRICE"
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1
_DATED = re.compile(r"-\d{8}$")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> float:
        """``input_tokens`` is the uncached input; cached tokens are priced by their factors."""
        weighted_input = (
            input_tokens
            + cache_write_tokens * CACHE_WRITE_FACTOR
            + cache_read_tokens * CACHE_READ_FACTOR
        )
        return (weighted_input * self.input + output_tokens * self.output) / 1e6


@functools.cache
def _table() -> dict[str, Price]:
    text = resources.files(__package__).joinpath("prices.yaml").read_text(encoding="utf-8")
    return {model: Price(**entry) for model, entry in yaml.safe_load(text).items()}


def price_for(model: str | None, environ: Mapping[str, str] = os.environ) -> Price | None:
    """The price of ``model`` (a dated id falls back to its undated alias), if known."""
    override = environ.get(PRICE_ENV)
    if override:
        return _parse(override)
    if model is None:
        return None
    table = _table()
    return table.get(model) or table.get(_DATED.sub("", model))


def _parse(raw: str) -> Price:
    try:
        input_price, output_price = (float(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(
            f"{PRICE_ENV} must be INPUT,OUTPUT in USD per million tokens (e.g. 3,15), got {raw!r}"
        ) from None
    return Price(input_price, output_price)
