"""The event stream: one WebSocket (``EventConnection``), and the iterator that outlives
disconnects (``EventStream``, on the reconnecting core it shares with the stats stream,
``ReconnectingStream``).

``EventStream`` remembers the ``seq`` of the last message it yielded and, when the connection
drops (a network failure, a server restart, a 1013 for falling behind), reconnects with
exponential backoff and ``?since=<that seq>``. The server then sends exactly the missed events, or
a fresh ``list`` when it no longer keeps them, so a consumer sees every change once, in order.
Refusals that retrying cannot fix (401, 403, 400) end the stream with the typed ``ApiError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, cast

import aiohttp

from corral.aio import Backoff
from corral.client.errors import (
    ApiError,
    StreamClosed,
    TransportError,
    api_error,
    handshake_headers,
)
from corral.shapes import EventMessage, EventType

if TYPE_CHECKING:
    from corral.client.api import CorralClient

EVENTS_PATH = "/api/containers/events"
SUBPROTOCOL = "corral.v1"
TOKEN_SUBPROTOCOL_PREFIX = "corral.token."
# Statuses a reconnect cannot fix: the stream ends with the error instead of retrying forever.
FATAL_STATUSES = frozenset({400, 401, 403, 404})


class EventConnection:
    """One open event WebSocket. ``receive()`` returns each message (``pong`` included) and
    raises ``StreamClosed`` with the close code once the server closes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.close_code: int | None = None

    async def __aenter__(self) -> EventConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def protocol(self) -> str | None:
        """The subprotocol the server chose (``corral.v1`` when offered)."""
        return self.ws.protocol

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def receive(self) -> EventMessage:
        """The next message (bound the wait with ``asyncio.timeout`` when needed)."""
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    return cast(EventMessage, json.loads(msg.data))
                except ValueError:
                    continue  # not one of ours; the contract has only JSON messages
            if msg.type is aiohttp.WSMsgType.CLOSE:
                self.close_code = int(msg.data) if msg.data is not None else None
                raise StreamClosed(self.close_code, str(msg.extra or ""))
            if msg.type is aiohttp.WSMsgType.ERROR:
                # aiohttp's heartbeat gave up (no pong in time), or the socket failed.
                self.close_code = self.ws.close_code
                raise StreamClosed(self.close_code, str(msg.data or "the connection failed"))
            if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                self.close_code = self.ws.close_code
                raise StreamClosed(self.close_code, "the connection closed")

    async def ping(self) -> None:
        """Ask for ``{"type": "pong"}``: an application-level liveness check."""
        await self.ws.send_str('{"type":"ping"}')

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()


async def connect_events(
    client: CorralClient,
    *,
    since: int | None,
    all_users: bool,
    auth: Literal["header", "query", "subprotocol"],
    heartbeat_s: float | None,
    timeout_s: float | None = None,
    path: str = EVENTS_PATH,
) -> EventConnection:
    """Open one of the server's JSON WebSockets: the events stream, or ``path`` (the stats
    stream). ``timeout_s`` bounds the handshake: a server that accepts the connection but never
    answers (frozen, or behind a dead link) is a ``TransportError`` then, not a wait as long as
    the session's request timeout."""
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    protocols: tuple[str, ...] = (SUBPROTOCOL,)
    if since is not None:
        params["since"] = str(since)
    if all_users:
        params["all"] = "true"
    if client.token:
        if auth == "header":
            headers = client.auth_headers()
        elif auth == "query":
            params["token"] = client.token
        else:
            protocols = (SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + client.token)
    try:
        async with asyncio.timeout(timeout_s):
            ws = await client.session.ws_connect(
                client.url(path),
                params=params,
                headers=headers,
                protocols=protocols,
                heartbeat=heartbeat_s,
                compress=0,
            )
    except aiohttp.WSServerHandshakeError as exc:
        raise await _refusal(client, exc.status, params, path) from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"cannot reach {client.server}: {exc}") from exc
    except TimeoutError as exc:
        raise TransportError(f"{client.server} did not answer in {timeout_s:g} s") from exc
    return EventConnection(ws)


async def _refusal(
    client: CorralClient, status: int, params: dict[str, str], path: str
) -> ApiError:
    """The typed error for a refused handshake. aiohttp drops the refusal's body, so ask again
    (``handshake_headers``), which the server refuses the same way (auth and parameters are
    checked before the upgrade) and with the contract's body."""
    query = {k: v for k, v in params.items() if k != "token"}
    try:
        async with client.session.get(
            client.url(path), params=query, headers={**client.auth_headers(), **handshake_headers()}
        ) as resp:
            body: Any = await resp.json(content_type=None)
            if resp.status == status:
                return api_error(status, body)
    except (aiohttp.ClientError, ValueError):
        pass
    return api_error(status, None)


class ReconnectingStream:
    """The reconnecting core shared by the events and stats streams: one WebSocket at a time,
    opened again with backoff when it drops, until ``close()`` (or leaving its ``async with``).

    A server that vanishes without closing (killed host, frozen process, dead link) is noticed
    by WebSocket pings: one every ``heartbeat_s`` while nothing arrives, and the connection is
    given up when its pong is ``heartbeat_s / 2`` late. ``connect_timeout_s`` bounds each
    reconnection attempt the same way. Refusals that retrying cannot fix (401, 403, 400, 404)
    end the stream with the typed ``ApiError``."""

    def __init__(
        self,
        client: CorralClient,
        *,
        all_users: bool,
        backoff: Backoff | None,
        auth: Literal["header", "query", "subprotocol"],
        on_state: Callable[[str], None] | None = None,
        on_retry: Callable[[float, str], None] | None = None,
        heartbeat_s: float = 5.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        # Told "connecting", "connected" and "reconnecting" (a console shows it in its header).
        self._on_state = on_state
        # Told before each wait between attempts: its length (s) and why the connection was
        # lost or the last attempt failed (a command line says so).
        self._on_retry = on_retry
        self.heartbeat_s = heartbeat_s
        self.connect_timeout_s = connect_timeout_s
        self.last_error: str | None = None
        self.all_users = all_users
        self.backoff = backoff or Backoff()
        self.auth: Literal["header", "query", "subprotocol"] = auth
        self.connects = 0  # successful connections so far; reconnects = connects - 1
        self.last_close_code: int | None = None
        self._conn: EventConnection | None = None
        self._failures = 0  # consecutive attempts that yielded nothing
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    async def __aenter__(self) -> Self:
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

    async def _open(self) -> EventConnection:
        """One connection attempt (the subclass says where)."""
        raise NotImplementedError

    async def _receive(self) -> dict[str, Any]:
        """The next message from the server, reconnecting as needed; ``pong`` included.
        Raises StopAsyncIteration once closed."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._conn is None:
                self._conn = await self._connect()
            try:
                message = cast(dict[str, Any], await self._conn.receive())
            except StreamClosed as exc:
                self.last_close_code = exc.code
                await self._drop(_closed_reason(exc))
                continue
            except (aiohttp.ClientError, ConnectionError) as exc:
                await self._drop(str(exc) or type(exc).__name__)
                continue
            self._failures = 0
            return message

    async def _drop(self, reason: str) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = None
        self._failures += 1
        self.last_error = reason
        self._state("reconnecting")

    def _state(self, state: str) -> None:
        if self._on_state is not None:
            self._on_state(state)

    async def _connect(self) -> EventConnection:
        if not self.connects:
            self._state("connecting")
        while True:
            if self._failures:
                delay = self.backoff.delay(self._failures - 1)
                if self._on_retry is not None:
                    self._on_retry(delay, self.last_error or "the connection was lost")
                await asyncio.sleep(delay)
            if self._closed:
                raise StopAsyncIteration
            try:
                conn = await self._open()
            except ApiError as exc:
                if exc.status in FATAL_STATUSES:
                    raise
                self._failures += 1
                self.last_error = f"{exc.status} {exc.error or ''}: {exc.message}"
            except TransportError as exc:
                self._failures += 1
                self.last_error = str(exc)
            else:
                self.connects += 1
                self._state("connected")
                return conn


class EventStream(ReconnectingStream):
    """Every event, once, in order, across reconnects (resuming with ``since``). Iterate it."""

    def __init__(
        self,
        client: CorralClient,
        *,
        since: int | None,
        all_users: bool,
        backoff: Backoff | None,
        auth: Literal["header", "query", "subprotocol"],
        on_state: Callable[[str], None] | None = None,
        on_retry: Callable[[float, str], None] | None = None,
        heartbeat_s: float = 5.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            client,
            all_users=all_users,
            backoff=backoff,
            auth=auth,
            on_state=on_state,
            on_retry=on_retry,
            heartbeat_s=heartbeat_s,
            connect_timeout_s=connect_timeout_s,
        )
        self.last_seq: int | None = since

    def __aiter__(self) -> EventStream:
        return self

    async def _open(self) -> EventConnection:
        return await connect_events(
            self.client,
            since=self.last_seq,
            all_users=self.all_users,
            auth=self.auth,
            heartbeat_s=self.heartbeat_s,
            timeout_s=self.connect_timeout_s,
        )

    async def __anext__(self) -> EventMessage:
        while True:
            message = await self._receive()
            kind = message.get("type")
            seq = message.get("seq")
            if kind == "pong":
                continue
            if kind == "error":
                # The server's last word before it closes (a revoked token): the reconnect is
                # then refused, and the stream ends with that typed error.
                self.last_error = str(message.get("message") or message.get("error"))
                continue
            duplicate = isinstance(seq, int) and self.last_seq is not None and seq <= self.last_seq
            if kind != EventType.LIST and duplicate:
                continue  # the server never sends one; still, never yield an event twice
            if isinstance(seq, int):
                self.last_seq = seq
            return cast(EventMessage, message)


def _closed_reason(exc: StreamClosed) -> str:
    """Why a connection ended, in words: a server's close says its code and reason."""
    if exc.code in (None, 1006) and exc.reason:
        return exc.reason
    text = f"closed by the server (code {exc.code}"
    return text + (f": {exc.reason})" if exc.reason else ")")
