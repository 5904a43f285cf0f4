"""Per-key asyncio locks that disappear when nobody holds or waits for them; with replicas, each
also held across processes (``backend.cluster.locks``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


class RemoteLocks(Protocol):
    """Locks another process can see (PostgreSQL advisory locks)."""

    def hold(self, name: str) -> AbstractAsyncContextManager[None]: ...


class KeyedLocks:
    """Serializes work per key (one container, one user) without a global lock.

    With ``remote``, the key's lock is also taken there (named ``<namespace>:<key>``), after the
    local one: replicas on one database serialize on it too, and one process waits on at most
    one remote lock per key."""

    def __init__(self, remote: RemoteLocks | None = None, namespace: str = "") -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._remote = remote
        self._namespace = namespace

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                if self._remote is None:
                    yield
                else:
                    async with self._remote.hold(f"corral:{self._namespace}:{key}"):
                        yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
