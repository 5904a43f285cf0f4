"""Docker-side truth: a watcher on the engine's event stream (not polling).

A container that dies (an out-of-memory kill included), or is stopped, started or removed outside
Corral, is reflected in its row within a second, and announced like any other change. The stream
is read on a thread of its own; each event schedules a sync of its row, coalesced so a burst of
events costs one inspect. When the engine goes away the watcher reconnects by itself, with
backoff, and reconciles everything on each (re)connect, since events may have been missed.

A sync that cannot be recorded (the database locked by another process, its disk full) is tried
again, with backoff, until it is: a change Docker made while the database could not take it (a
stop whose answer was 503 ``database busy``) reaches the row once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend.containers.reconcile import Reconciler
from backend.containers.sandbox import LABEL_DB_ID, LABEL_INSTANCE
from backend.docker_service import DockerService, EventStream
from backend.errors import DockerError, DockerUnavailable, RetryLater
from corral.aio import Backoff, TaskOwner

log = logging.getLogger(__name__)

# Container actions that can change what a row should say ("create": a sandbox made for a row
# whose write of its Docker ID failed is found by its name).
ACTIONS = frozenset(
    {
        "create",
        "start",
        "restart",
        "die",
        "stop",
        "kill",
        "oom",
        "destroy",
        "pause",
        "unpause",
        "rename",
    }
)
_END = object()
RECONNECT = Backoff(initial_s=0.25, maximum_s=2.0)
# A sync the database could not take (locked by another process, disk full) is tried again.
SYNC_RETRY = Backoff(initial_s=0.5, maximum_s=5.0)


class DockerWatcher:
    def __init__(self, docker: DockerService, reconciler: Reconciler, instance: str) -> None:
        self._docker = docker
        self._reconciler = reconciler
        self._filters = {"type": ["container"], "label": [f"{LABEL_INSTANCE}={instance}"]}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker-events")
        self._stream: EventStream | None = None
        self._pending: set[str] = set()
        self._dirty: set[str] = set()
        self._tasks = TaskOwner("docker-watcher")
        self.connected = asyncio.Event()
        self.reconciled = 0  # how many full reconciles ran (each (re)connect makes one)

    async def lead(self) -> None:
        """Watch until cancelled: the work of this engine's leadership (one replica at a time,
        ``backend.cluster.leader``), run as one of the watcher's own tasks."""
        task = self._tasks.spawn(self.run(), name="docker-watcher")
        try:
            await task
        finally:
            task.cancel()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._watch()
                attempt = 0
            except (DockerUnavailable, DockerError) as exc:
                log.debug("docker event stream unavailable: %s", exc)
            except RetryLater as exc:
                log.warning("could not reconcile with Docker (%s); trying again", exc.error)
            finally:
                self.connected.clear()
                self._close_stream()
            await asyncio.sleep(RECONNECT.delay(attempt))  # reconnect backoff, not synchronisation
            attempt += 1

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        stream = await loop.run_in_executor(None, self._docker.open_events, self._filters)
        self._stream = stream
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def pump() -> None:
            try:
                for item in stream:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except Exception as exc:
                log.debug("docker event stream ended: %s", exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        reader = loop.run_in_executor(self._executor, pump)
        try:
            # Subscribed first, then reconciled: nothing that happens in between is lost.
            await self._reconciler.reconcile_all()
            self.reconciled += 1
            self.connected.set()
            log.info("watching Docker events")
            while (item := await queue.get()) is not _END:
                self._handle(item)
        finally:
            self._close_stream()
            with contextlib.suppress(Exception):
                await reader

    def _handle(self, event: dict[str, Any]) -> None:
        if event.get("Type") != "container":
            return
        action = str(event.get("Action", "")).split(":", 1)[0]
        if action not in ACTIONS:
            return
        db_id = ((event.get("Actor") or {}).get("Attributes") or {}).get(LABEL_DB_ID)
        if db_id:
            self._schedule(str(db_id))

    def _schedule(self, db_id: str) -> None:
        if db_id in self._pending:
            self._dirty.add(db_id)
            return
        self._pending.add(db_id)
        self._tasks.spawn(self._sync(db_id), name=f"docker-sync-{db_id}")

    async def _sync(self, db_id: str) -> None:
        failures = 0
        try:
            while True:
                self._dirty.discard(db_id)
                try:
                    await self._reconciler.sync_from_docker(db_id)
                except (DockerUnavailable, DockerError) as exc:
                    log.warning("could not sync container %s with Docker: %s", db_id, exc)
                except RetryLater as exc:
                    delay = SYNC_RETRY.delay(failures)
                    failures += 1
                    log.warning(
                        "could not record container %s's state (%s); retrying in %.1f s",
                        db_id,
                        exc.error,
                        delay,
                    )
                    self._dirty.add(db_id)
                    await asyncio.sleep(delay)  # a retry's backoff, not synchronisation
                if db_id not in self._dirty:
                    return
        finally:
            self._pending.discard(db_id)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def close(self) -> None:
        self._close_stream()
        await self._tasks.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
