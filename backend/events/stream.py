"""One client's ``GET /api/containers/events`` connection, from the upgrade to the close.

The order of the catch-up is what makes the stream gapless and duplicate-free:

1. subscribe to the hub (live events start queueing);
2. read the log (``?since=``: the missed events) or the state (a ``list``) together with the
   position it reflects;
3. send that, then the queued live events, dropping any at or before the position already sent.

The connection's life (its tasks, the token's expiry and revocation, the close) is
``backend.json_stream.JsonStream``'s; here is what the events stream writes: the catch-up, then
the queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from backend.auth.live import LiveStreams
from backend.auth.principal import Principal
from backend.db.models import iso, utcnow
from backend.events.hub import PONG, EventHub, Subscription, wire
from backend.events.log import Event, EventLog
from backend.json_stream import JsonStream
from backend.settings import Settings
from corral.shapes import ContainerList, EventType


class EventConnection(JsonStream[Subscription]):
    kind = "events"

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
        super().__init__(
            request, settings=settings, principal=principal, all_users=all_users, live=live
        )
        self.hub = hub
        self.events = events
        self.listing = listing  # what GET /api/containers answers this caller
        self.since = since
        self.position = 0  # the last position sent

    def subscribe(self) -> Subscription:
        return self.hub.subscribe(self.user_id)

    def unsubscribe(self, sub: Subscription) -> None:
        self.hub.unsubscribe(sub)

    def pong(self, sub: Subscription) -> None:
        sub.offer(PONG)  # through the queue, behind what is already waiting there

    # -- the writer: catch-up, then live events ------------------------------------------------

    async def write(self, sub: Subscription) -> None:
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
        user_id = self.user_id
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
