"""One client's ``GET /api/containers/events`` connection, from the upgrade to the close.

The order of the catch-up is what makes the stream gapless and duplicate-free:

1. subscribe to the hub (live events start queueing);
2. read the log (``?since=``: the missed events) or the state (a ``list``) together with the
   position it reflects;
3. send that, then the queued live events, dropping any at or before the position already sent.

Three tasks run per connection: the pump (catch-up, then the queue, the only writer of the
socket), the reader (``ping`` -> ``pong``, and noticing the client's close), and an expiry timer
for the token the stream was opened with. Whichever ends first decides how the socket closes.
Revoking that token (or signing out) closes the stream at once (``backend.auth.live``): a final
``{"type": "error", "error": "unauthorized", "message"}``, then 1008 "token revoked".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode, web

from backend.auth.live import CLOSE_CREDENTIALS, REVOKED_REASON, LiveStreams
from backend.auth.principal import Principal
from backend.db.models import iso, utcnow
from backend.events.hub import PONG, EventHub, Subscription, wire
from backend.events.log import Event, EventLog
from backend.middleware import WS_SUBPROTOCOL
from backend.settings import Settings
from backend.websocket import (
    MAX_CLIENT_MESSAGE,
    Refusal,
    cap_send_buffer,
    client_message,
    close_bounded,
    expiry_timer,
    refusal_of,
    revoked_frame,
)
from corral.shapes import ContainerList, EventType

log = logging.getLogger(__name__)

CLOSE_TOKEN_EXPIRED = CLOSE_CREDENTIALS  # 1008
# How much the socket writer lets through before checking for back-pressure (aiohttp's default
# is 256 KiB, which would let a stalled client hold that much more memory).
WRITER_LIMIT = 16 * 1024


class EventConnection:
    def __init__(
        self,
        request: web.Request,
        *,
        settings: Settings,
        hub: EventHub,
        events: EventLog,
        listing: Callable[[], Awaitable[ContainerList]],
        principal: Principal,
        all_users: bool,
        since: int | None,
        live: LiveStreams,
    ) -> None:
        self.request = request
        self.settings = settings
        self.hub = hub
        self.events = events
        self.live = live
        self.listing = listing  # what GET /api/containers answers this caller
        self.principal = principal
        self.all_users = all_users
        self.since = since
        self.ws = web.WebSocketResponse(
            protocols=(WS_SUBPROTOCOL,),
            heartbeat=settings.event_heartbeat_s,
            timeout=settings.event_close_timeout_s,
            compress=False,  # small messages; deflating each one for each subscriber costs more
            max_msg_size=MAX_CLIENT_MESSAGE,
            writer_limit=WRITER_LIMIT,
        )
        self.position = 0  # the last position sent

    async def run(self) -> web.WebSocketResponse:
        """Serve the stream (the auth middleware has refused a request that is no handshake)."""
        sub = self.hub.subscribe(None if self.all_users else self.principal.user_id)

        def revoked(message: str) -> None:
            sub.close(CLOSE_CREDENTIALS, REVOKED_REASON, revoked_frame(message))

        try:
            async with self.live.opened_with(self.principal, revoked):
                await self.ws.prepare(self.request)
                cap_send_buffer(self.request, self.settings.event_send_buffer_bytes)
                await self._serve(sub)
        finally:
            self.hub.unsubscribe(sub)
        return self.ws

    async def _serve(self, sub: Subscription) -> None:
        pump = asyncio.create_task(self._pump(sub), name="events-pump")
        reader = asyncio.create_task(self._read(sub), name="events-reader")
        told = asyncio.create_task(sub.must_close.wait(), name="events-close")
        tasks = {pump, reader, told}
        expiry = expiry_timer(self.principal.expires_at, "events-expiry")
        if expiry is not None:
            tasks.add(expiry)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failure = pump.exception() if pump in done and not pump.cancelled() else None
        refusal = refusal_of(reader) if reader in done else None
        if told in done and sub.close_code is not None:
            await self._close(sub.close_code, sub.close_reason, sub.final)
        elif refusal is not None:
            await self._close(refusal.code, refusal.reason)
        elif expiry is not None and expiry in done:
            await self._close(CLOSE_TOKEN_EXPIRED, "token expired")
        elif failure is not None and not isinstance(failure, ConnectionError):
            # A bug or a database failure during the catch-up: say so, in the log and the code.
            log.error("event stream failed", exc_info=failure)
            await self._close(int(WSCloseCode.INTERNAL_ERROR), "internal error")
        else:
            await self._close(int(WSCloseCode.OK), "")  # the client left, or its socket broke

    async def _close(self, code: int, reason: str, final: str | None = None) -> None:
        await close_bounded(
            self.ws, self.request, code, reason, self.settings.event_close_timeout_s, final
        )

    # -- the pump: catch-up, then live events -------------------------------------------------

    async def _pump(self, sub: Subscription) -> None:
        await self._catch_up()
        ws = self.ws
        queue = sub.queue
        while True:
            item = await queue.get()
            if item.position and item.position <= self.position:
                continue  # already sent by the catch-up
            await ws.send_str(item.text)
            if item.position:
                self.position = item.position

    async def _catch_up(self) -> None:
        user_id = None if self.all_users else self.principal.user_id
        limit = self.events.keep_per_user
        if self.since is not None:
            if user_id is None:
                until = await self.events.last_id()
                missed = await self.events.since_all(self.since, until, limit)
            else:
                until = await self.events.last_seq(user_id)
                missed = await self.events.since(user_id, self.since, until, limit)
            if self.since <= until and missed is not None:
                await self._send_events(missed)
                self.position = until  # the replay covered everything up to ``until``
                return
        position, listing = await self.events.snapshot(user_id, self.listing)
        await self.ws.send_str(
            wire(
                {
                    "type": EventType.LIST,
                    "container": listing,
                    "timestamp": iso(utcnow()),
                    "seq": position,
                }
            )
        )
        self.position = position

    async def _send_events(self, missed: list[Event]) -> None:
        for event in missed:
            position = event.id if self.all_users else event.seq
            await self.ws.send_str(wire(event.message(seq=position)))
            self.position = position

    # -- the reader -----------------------------------------------------------------------------

    async def _read(self, sub: Subscription) -> Refusal | None:
        """Answer ``{"type": "ping"}`` (through the queue, so the pump stays the only writer);
        ignore other JSON objects. Returns when the client closes, or with the ``Refusal`` of a
        frame that is not a JSON object (``backend.websocket.client_message``)."""
        async for msg in self.ws:
            message = client_message(msg)
            if isinstance(message, Refusal):
                return message
            if message is not None and message.get("type") == "ping":
                sub.offer(PONG)
        return None
