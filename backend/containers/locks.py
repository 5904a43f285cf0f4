"""Per-key asyncio locks that disappear when nobody holds or waits for them; with replicas, each
also held across processes (``backend.cluster.locks``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Protocol


class RemoteLocks(Protocol):
    """Locks another process can see (PostgreSQL advisory locks)."""

    def hold(self, *names: str) -> AbstractAsyncContextManager[None]: ...


class KeyedLocks:
    """Serializes work per key (one container, one user) without a global lock.

    With ``remote``, the keys' locks are also taken there (named ``<namespace>:<key>``), after
    the local ones: replicas on one database serialize on them too, and one process waits on
    at most one remote lock per key."""

    def __init__(self, remote: RemoteLocks | None = None, namespace: str = "") -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._remote = remote
        self._namespace = namespace

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold every key's lock. Several are taken in one order (sorted), so two holders of
        several never wait for each other; remotely, all in one request."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._local(key))
            if self._remote is not None and keys:
                names = [f"corral:{self._namespace}:{key}" for key in keys]
                await stack.enter_async_context(self._remote.hold(*names))
            yield

    @asynccontextmanager
    async def _local(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
