"""One client's ``GET /api/containers/stats`` connection, from the upgrade to the close.

Two tasks per connection (and a timer for the token's expiry): the writer, the only one that
writes the socket, sends the first message at once and then whatever the sampler last offered
(the newest samples; a client that reads slowly skips the ones it had no time for), and the
reader answers ``{"type": "ping"}`` through the writer and notices the client's close. Revoking
the token the stream was opened with closes it at once, as on the events stream.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, web

from backend.auth.live import CLOSE_CREDENTIALS, REVOKED_REASON, LiveStreams
from backend.auth.principal import Principal
from backend.middleware import WS_SUBPROTOCOL
from backend.settings import Settings
from backend.stats.sampler import StatsSampler, StatsSubscription
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

log = logging.getLogger(__name__)

PONG = '{"type":"pong"}'
WRITER_LIMIT = 16 * 1024
CLOSE_TOKEN_EXPIRED = CLOSE_CREDENTIALS  # 1008


class StatsConnection:
    def __init__(
        self,
        request: web.Request,
        *,
        settings: Settings,
        sampler: StatsSampler,
        principal: Principal,
        all_users: bool,
        live: LiveStreams,
    ) -> None:
        self.request = request
        self.settings = settings
        self.sampler = sampler
        self.live = live
        self.principal = principal
        self.all_users = all_users
        self.ws = web.WebSocketResponse(
            protocols=(WS_SUBPROTOCOL,),
            heartbeat=settings.event_heartbeat_s,
            timeout=settings.event_close_timeout_s,
            compress=False,
            max_msg_size=MAX_CLIENT_MESSAGE,
            writer_limit=WRITER_LIMIT,
        )

    async def run(self) -> web.WebSocketResponse:
        """Serve the stream (the auth middleware has refused a request that is no handshake)."""
        sub = self.sampler.subscribe(None if self.all_users else self.principal.user_id)

        def revoked(message: str) -> None:
            sub.close(CLOSE_CREDENTIALS, REVOKED_REASON, revoked_frame(message))

        try:
            async with self.live.opened_with(self.principal, revoked):
                await self.ws.prepare(self.request)
                cap_send_buffer(self.request, self.settings.event_send_buffer_bytes)
                await self._serve(sub)
        finally:
            self.sampler.unsubscribe(sub)
        return self.ws

    async def _serve(self, sub: StatsSubscription) -> None:
        writer = asyncio.create_task(self._write(sub), name="stats-writer")
        reader = asyncio.create_task(self._read(sub), name="stats-reader")
        tasks = {writer, reader}
        expiry = expiry_timer(self.principal.expires_at, "stats-expiry")
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
            log.error("stats stream failed", exc_info=failure)
            await self._close(int(WSCloseCode.INTERNAL_ERROR), "internal error")
        else:
            await self._close(int(WSCloseCode.OK), "")

    async def _close(self, code: int, reason: str, final: str | None = None) -> None:
        await close_bounded(
            self.ws, self.request, code, reason, self.settings.event_close_timeout_s, final
        )

    async def _write(self, sub: StatsSubscription) -> None:
        ws = self.ws
        await ws.send_str(self.sampler.message_for(sub))
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            if sub.close_code is not None:
                return
            if sub.pong_due:
                sub.pong_due = False
                await ws.send_str(PONG)
            text, sub.pending = sub.pending, None
            if text is not None:
                await ws.send_str(text)

    async def _read(self, sub: StatsSubscription) -> Refusal | None:
        """Answer ``{"type": "ping"}``; ignore other JSON objects. Returns when the client
        closes, or with the ``Refusal`` of a frame that is not a JSON object."""
        async for msg in self.ws:
            message = client_message(msg)
            if isinstance(message, Refusal):
                return message
            if message is not None and message.get("type") == "ping":
                sub.pong()
        return None
