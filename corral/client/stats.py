"""The stats stream (live usage), as an iterator that outlives disconnects.

Unlike events, samples are not numbered or replayed: after a reconnect the next message simply
carries the newest samples again. A dropped connection is noticed within about
``heartbeat_s * 1.5`` (WebSocket pings), then retried with the same backoff as the events
stream. Refusals that retrying cannot fix (401, 403, 400) end the stream with the typed error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, cast

import aiohttp

from corral.client.errors import ApiError, StreamClosed, TransportError
from corral.client.events import FATAL_STATUSES, Backoff, EventConnection, connect_events
from corral.client.types import StatsMessage

if TYPE_CHECKING:
    from corral.client.api import CorralClient

STATS_PATH = "/api/containers/stats"


class StatsStream:
    """Every stats message, across reconnects. Iterate it; ``close()`` (or leaving its
    ``async with``) ends it. ``on_state`` is told "connecting", "connected" and
    "reconnecting"."""

    def __init__(
        self,
        client: CorralClient,
        *,
        all_users: bool = False,
        backoff: Backoff | None = None,
        auth: Literal["header", "query", "subprotocol"] = "header",
        on_state: Callable[[str], None] | None = None,
        heartbeat_s: float = 10.0,
    ) -> None:
        self.client = client
        self.all_users = all_users
        self.backoff = backoff or Backoff()
        self.auth: Literal["header", "query", "subprotocol"] = auth
        self.heartbeat_s = heartbeat_s
        self.connects = 0
        self.last_close_code: int | None = None
        self._on_state = on_state
        self._conn: EventConnection | None = None
        self._failures = 0
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def __aiter__(self) -> StatsStream:
        return self

    async def __aenter__(self) -> StatsStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def ping(self) -> None:
        if self._conn is not None:
            await self._conn.ping()

    async def __anext__(self) -> StatsMessage:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._conn is None:
                self._conn = await self._connect()
            try:
                message = cast(dict[str, object], await self._conn.receive())
            except StreamClosed as exc:
                self.last_close_code = exc.code
                await self._drop()
                continue
            except (aiohttp.ClientError, ConnectionError):
                await self._drop()
                continue
            self._failures = 0
            if message.get("type") == "stats":
                return cast(StatsMessage, message)

    async def _drop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = None
        self._failures += 1
        self._state("reconnecting")

    def _state(self, state: str) -> None:
        if self._on_state is not None:
            self._on_state(state)

    async def _connect(self) -> EventConnection:
        if not self.connects:
            self._state("connecting")
        while True:
            if self._failures:
                await asyncio.sleep(self.backoff.delay(self._failures - 1))
            if self._closed:
                raise StopAsyncIteration
            try:
                conn = await connect_events(
                    self.client,
                    since=None,
                    all_users=self.all_users,
                    auth=self.auth,
                    heartbeat_s=self.heartbeat_s,
                    path=STATS_PATH,
                )
            except ApiError as exc:
                if exc.status in FATAL_STATUSES:
                    raise
                self._failures += 1
            except TransportError:
                self._failures += 1
            else:
                self.connects += 1
                self._state("connected")
                return conn
