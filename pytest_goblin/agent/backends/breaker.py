"""Fail fast once an LLM backend has failed several workloads in a row.

An endpoint that accepts connections and never answers costs each workload its
request timeout times the retries (120 s x 3 by default): eleven workloads would take an
hour to report the same failure eleven times. After ``FAILURES_IN_A_ROW`` workloads in
one session whose audits ended on a backend failure, the others are not sent: they
error at once with that failure's message and why they were not tried. A workload
whose backend answers resets the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

FAILURES_IN_A_ROW: Final = 2
"""Consecutive workloads a backend may fail before the rest of the session fails fast.
Two, not one: a single failure may be a transient outage the retries did not outlast."""


@dataclass
class BackendBreaker:
    """One session's count of consecutive backend failures, per backend and server."""

    limit: int = FAILURES_IN_A_ROW
    _failures: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)

    def refusal(self, backend: str, base_url: str | None) -> str | None:
        """Why an audit with this backend is not tried, or None when it may be."""
        failures = self._failures.get((backend, base_url), [])
        if len(failures) < self.limit:
            return None
        return (
            f"{failures[-1]} (not tried: the {backend} backend failed the last "
            f"{len(failures)} workloads in a row in this session)"
        )

    def record(self, backend: str, base_url: str | None, failure: str | None) -> None:
        """An audit's end: the backend's failure message, or None when it answered."""
        key = (backend, base_url)
        if failure is None:
            self._failures.pop(key, None)
        else:
            self._failures.setdefault(key, []).append(failure)
