"""One workload's measuring time: ``--goblin-time-budget``, shared by its verdict and its
attribution.

The budget is one allowance per workload for the measuring the harness adds to
the audit, counted from the moment the verdict's paired rounds start (the
agent's own profile and benchmark runs come before and are not counted). The
verdict spends first — it is what gates CI — and stops sampling once the budget
is spent (``pytest_goblin.audit.confirm``; a fallback to a smaller patch goes on from
where the rejected whole patch stopped); ``--goblin-attribution`` then measures with
what is left and starts no leave-one-out pair once it is spent
(``pytest_goblin.audit.attribution``). One allowance rather than one per phase keeps
the option's promise when attribution is on: a patch with six changes does not
add minutes to a workload that was given one. A verdict that needed the whole
budget leaves attribution nothing, and the changes say so instead of showing a
share.

The clock is injectable (``time.monotonic`` by default), as ``confirm`` takes
one, so tests drive the budget with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TimeBudget:
    """``seconds`` of measuring (None: no limit), on ``clock``, from the first ``start``."""

    seconds: float | None
    clock: Callable[[], float] = time.monotonic
    started: float | None = None

    def start(self) -> None:
        """Start counting, once: a later phase's start keeps the first phase's time."""
        if self.started is None:
            self.started = self.clock()

    def spent(self) -> bool:
        """Whether the budget's seconds have passed (never without a limit); a budget read
        before anything started it starts now."""
        if self.seconds is None:
            return False
        self.start()
        assert self.started is not None
        return self.clock() - self.started >= self.seconds

    def describe(self) -> str:
        """The limit as the user set it, for a note: ``--goblin-time-budget 120 s``."""
        assert self.seconds is not None
        return f"--goblin-time-budget {self.seconds:g} s"
