"""One client's connection to a stream of JSON messages (the events and stats streams), from
the upgrade to the close, written once.

A stream runs three tasks (and a timer for the token it was opened with): the writer, the only
one that writes the socket; the reader, which answers ``{"type": "ping"}`` (through the writer)
and notices the client's close or a frame it refuses; and a wait on the subscription's close
request (too slow, revoked, shutting down). Whichever ends first decides how the socket closes.
Revoking the token the stream was opened with (or signing out) closes it at once
(``backend.auth.live``): a final ``{"type": "error", "error": "unauthorized", "message"}``, then
1008 "token revoked".
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from aiohttp import WSCloseCode, web

from backend.auth.live import CLOSE_CREDENTIALS, REVOKED_REASON, LiveStreams
from backend.auth.principal import Principal
from backend.middleware import WS_SUBPROTOCOL
from backend.settings import Settings
from backend.websocket import (
    MAX_CLIENT_MESSAGE,
    CloseRequest,
    Refusal,
    cap_send_buffer,
    client_message,
    close_bounded,
    expiry_timer,
    refusal_of,
    revoked_frame,
)

log = logging.getLogger(__name__)

CLOSE_TOKEN_EXPIRED = CLOSE_CREDENTIALS  # 1008
# How much the socket writer lets through before checking for back-pressure (aiohttp's default
# is 256 KiB, which would let a stalled client hold that much more memory).
WRITER_LIMIT = 16 * 1024

S = TypeVar("S", bound=CloseRequest)


class JsonStream(ABC, Generic[S]):
    """One client's connection to a stream of JSON messages, from the upgrade to the close.
    A subclass says how to subscribe, what to write and how a pong is sent; the rest (the
    tasks, the token's expiry and revocation, and which close code ends it) is here once."""

    kind: ClassVar[str]  # names the tasks and the log line of a failure ("events", "stats")

    def __init__(
        self,
        request: web.Request,
        *,
        settings: Settings,
        principal: Principal,
        all_users: bool,
        live: LiveStreams,
    ) -> None:
        self.request = request
        self.settings = settings
        self.principal = principal
        self.all_users = all_users
        self.live = live
        self.ws = web.WebSocketResponse(
            protocols=(WS_SUBPROTOCOL,),
            heartbeat=settings.event_heartbeat_s,
            timeout=settings.event_close_timeout_s,
            compress=False,  # small messages; deflating each one for each subscriber costs more
            max_msg_size=MAX_CLIENT_MESSAGE,
            writer_limit=WRITER_LIMIT,
        )

    @property
    def user_id(self) -> str | None:
        """Whose messages the stream carries: None for every user's (an admin's ?all=true)."""
        return None if self.all_users else self.principal.user_id

    @abstractmethod
    def subscribe(self) -> S:
        """Start receiving (before anything is read for the first message)."""

    @abstractmethod
    def unsubscribe(self, sub: S) -> None: ...

    @abstractmethod
    async def write(self, sub: S) -> None:
        """Send the first message, then what arrives, until cancelled: the only writer."""

    @abstractmethod
    def pong(self, sub: S) -> None:
        """Have the writer answer a client's ping."""

    async def run(self) -> web.WebSocketResponse:
        """Serve the stream (the auth middleware has refused a request that is no handshake)."""
        sub = self.subscribe()

        def revoked(message: str) -> None:
            sub.close(CLOSE_CREDENTIALS, REVOKED_REASON, revoked_frame(message))

        try:
            async with self.live.opened_with(self.principal, revoked):
                await self.ws.prepare(self.request)
                cap_send_buffer(self.request, self.settings.event_send_buffer_bytes)
                await self._serve(sub)
        finally:
            self.unsubscribe(sub)
        return self.ws

    async def _serve(self, sub: S) -> None:
        writer = asyncio.create_task(self.write(sub), name=f"{self.kind}-writer")
        reader = asyncio.create_task(self._read(sub), name=f"{self.kind}-reader")
        told = asyncio.create_task(sub.must_close.wait(), name=f"{self.kind}-close")
        tasks = {writer, reader, told}
        expiry = expiry_timer(self.principal.expires_at, f"{self.kind}-expiry")
        if expiry is not None:
            tasks.add(expiry)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failure = writer.exception() if writer in done and not writer.cancelled() else None
        refusal = refusal_of(reader) if reader in done else None
        if sub.close_code is not None:
            await self._close(sub.close_code, sub.close_reason, sub.final)
        elif refusal is not None:
            await self._close(refusal.code, refusal.reason)
        elif expiry is not None and expiry in done:
            await self._close(CLOSE_TOKEN_EXPIRED, "token expired")
        elif failure is not None and not isinstance(failure, ConnectionError):
            # A bug or a database failure: say so, in the log and the code.
            log.error("%s stream failed", self.kind, exc_info=failure)
            await self._close(int(WSCloseCode.INTERNAL_ERROR), "internal error")
        else:
            await self._close(int(WSCloseCode.OK), "")  # the client left, or its socket broke

    async def _close(self, code: int, reason: str, final: str | None = None) -> None:
        await close_bounded(
            self.ws, self.request, code, reason, self.settings.event_close_timeout_s, final
        )

    async def _read(self, sub: S) -> Refusal | None:
        """Answer ``{"type": "ping"}`` (through the writer, the only one that writes); ignore
        other JSON objects. Returns when the client closes, or with the ``Refusal`` of a frame
        that is not a JSON object (``client_message``)."""
        async for msg in self.ws:
            message = client_message(msg)
            if isinstance(message, Refusal):
                return message
            if message is not None and message.get("type") == "ping":
                self.pong(sub)
        return None
