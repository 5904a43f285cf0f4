"""Answers read from the database, kept in memory until a write says they changed.

Why: a list or a sign-in check that goes to SQLite costs a round trip through aiosqlite's thread
(about 1 ms each, and two per request), which capped the list route at ~150-300 requests/s. The
rows only change through this process's services, and each of those writes tells the cache
(``changed``) after its transaction commits, so a read can be answered from memory.

The race this guards against: a read starts, a write commits and invalidates, then the read
(which may have seen the old rows) stores its answer. Each read takes a ``stamp`` before it
queries; ``put`` keeps the answer only if no write to that key happened since the stamp.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    """A bounded map of answers by key, with write stamps; see the module docstring."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}
        self._changed_at: dict[K, int] = {}
        self._writes = 0
        self._floor = 0  # stamps older than this predate a reset of ``_changed_at``

    def stamp(self) -> int:
        """Take before reading the database; hand to ``put`` with the answer."""
        return self._writes

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, stamp: int, value: V) -> None:
        if stamp < self._floor or self._changed_at.get(key, 0) > stamp:
            return  # a write landed while this answer was read: it may be stale
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[key] = value

    def changed(self, *keys: K) -> None:
        """Those keys' answers are stale (call after the write commits)."""
        self._writes += 1
        if len(self._changed_at) >= self._limit:
            self._changed_at.clear()
            self._floor = self._writes
        for key in keys:
            self._values.pop(key, None)
            self._changed_at[key] = self._writes

    def clear(self) -> None:
        """Everything is stale (a write whose keys are not known)."""
        self._writes += 1
        self._values.clear()
        self._changed_at.clear()
        self._floor = self._writes
