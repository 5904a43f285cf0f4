"""Fan-out of committed events to the live subscribers of ``GET /api/containers/events``.

The hub is an ``EventLog`` listener. The log calls it synchronously right after each commit, so
it must never wait: it serializes the event once (not once per subscriber) and ``put_nowait``s it
into each interested subscriber's bounded queue. A subscriber whose queue is full has stopped
keeping up; it is marked to be closed with 1013 and gets nothing more, so it can neither slow the
others down nor make the server hold an unbounded backlog for it. Each subscriber's WebSocket is
written by its own task (``backend.events.stream``), which drains the queue.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import WSCloseCode

from backend.events.log import Event
from backend.json_answer import json_text
from backend.websocket import CloseRequest

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = int(WSCloseCode.TRY_AGAIN_LATER)  # 1013
CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)  # 1001


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for the wire. ``position`` orders it in its stream (the user's ``seq``,
    or the row ID on an all-users stream); 0 marks a message outside the order (``pong``)."""

    position: int
    text: str


PONG = Outgoing(0, '{"type":"pong"}')


def wire(message: object) -> str:
    """The compact JSON every event message is sent as."""
    return json_text(message)


class Subscription(CloseRequest):
    """One subscriber: its bounded queue, and whether (and why) its socket must be closed."""

    def __init__(self, user_id: str | None, queue_size: int) -> None:
        super().__init__()
        self.user_id = user_id  # None: every user's events (an admin's ?all=true)
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=max(1, queue_size))

    @property
    def all_users(self) -> bool:
        return self.user_id is None

    def offer(self, item: Outgoing) -> bool:
        """Queue ``item`` without waiting; a full queue closes the subscription (1013)."""
        if self.close_code is not None:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.close(CLOSE_TOO_SLOW, "too slow: events were not read fast enough")
            return False
        return True

    def close(self, code: int, reason: str, final: str | None = None) -> None:
        """As ``CloseRequest.close``; the backlog is dropped at once too: a closing subscriber
        holds no memory for events it will never be sent."""
        super().close(code, reason, final)
        while not self.queue.empty():
            self.queue.get_nowait()


class EventHub:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._by_user: dict[str, set[Subscription]] = {}
        self._all_users: set[Subscription] = set()
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.kicked = 0  # subscribers closed for not keeping up, since start

    def __len__(self) -> int:
        return self._count

    def subscribe(self, user_id: str | None) -> Subscription:
        """A new subscriber for one user's events, or for everyone's when ``user_id`` is None.
        Subscribe *before* reading the log or the state, so nothing falls between them."""
        sub = Subscription(user_id, self.queue_size)
        if user_id is None:
            self._all_users.add(sub)
        else:
            self._by_user.setdefault(user_id, set()).add(sub)
        self._count += 1
        self._idle.clear()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.user_id is None:
            found = sub in self._all_users
            self._all_users.discard(sub)
        else:
            subs = self._by_user.get(sub.user_id, set())
            found = sub in subs
            subs.discard(sub)
            if not subs:
                self._by_user.pop(sub.user_id, None)
        if found:
            self._count -= 1
        if self._count == 0:
            self._idle.set()

    def deliver(self, event: Event) -> None:
        """The ``EventLog`` listener: queue ``event`` for everyone who may see it. Never waits."""
        subs = self._by_user.get(event.user_id)
        if subs:
            item = Outgoing(event.seq, wire(event.message()))
            self._offer(subs, item)
        if self._all_users:
            item = Outgoing(event.id, wire(event.message(seq=event.id)))
            self._offer(self._all_users, item)

    def _offer(self, subs: set[Subscription], item: Outgoing) -> None:
        for sub in list(subs):
            if sub.close_code is None and not sub.offer(item):
                self.kicked += 1
                log.info(
                    "closing an event subscriber of %s: %s",
                    sub.user_id or "all users",
                    sub.close_reason,
                )

    def subscriptions(self) -> list[Subscription]:
        return [*self._all_users, *(s for subs in self._by_user.values() for s in subs)]

    async def close_all(self, code: int, reason: str, timeout_s: float) -> None:
        """Close every subscriber with ``code`` and wait (bounded) until their connections have
        finished closing, so shutdown does not leave clients to time out on their own."""
        for sub in self.subscriptions():
            sub.close(code, reason)
        if self._count:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("%d event subscribers did not close in time", self._count)
