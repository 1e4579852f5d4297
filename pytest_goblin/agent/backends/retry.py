"""Retrying an LLM request the way the server asks: backoff, ``retry-after`` honoured.

huggingface_hub's InferenceClient makes exactly one attempt per call (the
anthropic SDK retries by itself), so the qwen backend retries rate limits,
overloads and transport failures with this policy. The sleep is injectable so
that tests exercise the real retry path without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth another attempt: timeouts, rate limits and server-side overloads."""


@dataclass(frozen=True)
class RetryPolicy:
    """The anthropic SDK's defaults: two retries, 0.5 s doubling to 8 s, 25 % jitter."""

    retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_wait_s: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after_s is not None and retry_after_s > 0:
            return min(retry_after_s, self.max_wait_s)
        backoff = min(self.base_delay_s * 2.0**attempt, self.max_delay_s)
        return backoff * (1 - 0.25 * random.random())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, else ``retry-after`` (seconds, a date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw) * scale
        except ValueError:
            pass
    raw = headers.get("retry-after")
    parsed = email.utils.parsedate_tz(raw) if raw else None
    return None if parsed is None else email.utils.mktime_tz(parsed) - time.time()
