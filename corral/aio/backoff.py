"""Delays between reconnection attempts: exponential, capped, with full jitter.

Full jitter (a delay drawn uniformly between zero and the exponential ceiling) spreads the
clients a restarted server sees over the whole window, rather than the upper half of it as
"equal jitter" does, and costs no more total waiting (see "Exponential Backoff And Jitter",
AWS Architecture Blog, 2015). Every reconnecting loop uses this one: the backend's Docker event
watcher, the client's event and stats streams, and the agent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """The wait before attempt ``n + 1`` after ``n`` failures in a row (``delay(n - 1)``): a
    uniform draw in ``[0, min(maximum_s, initial_s * factor**attempt)]``."""

    initial_s: float = 0.25
    maximum_s: float = 15.0
    factor: float = 2.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait after ``attempt + 1`` failures in a row."""
        return min(self.maximum_s, self.initial_s * self.factor ** max(0, attempt))

    def delay(self, attempt: int) -> float:
        """A wait for this attempt (0 is the first retry), drawn anew on every call."""
        return random.uniform(0.0, self.ceiling(attempt))
