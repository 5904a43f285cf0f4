"""One client's ``GET /api/containers/stats`` connection, from the upgrade to the close.

The connection's life (its tasks, the token's expiry and revocation, the close) is
``backend.json_stream.JsonStream``'s; here is what the stats stream writes: the first message at
once, then whatever the sampler last offered (the newest samples; a client that reads slowly
skips the ones it had no time for), and a pong when one is due.
"""

from __future__ import annotations

from aiohttp import web

from backend.auth.live import LiveStreams
from backend.auth.principal import Principal
from backend.json_stream import JsonStream
from backend.settings import Settings
from backend.stats.sampler import StatsSampler, StatsSubscription

PONG = '{"type":"pong"}'


class StatsConnection(JsonStream[StatsSubscription]):
    kind = "stats"

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
        super().__init__(
            request, settings=settings, principal=principal, all_users=all_users, live=live
        )
        self.sampler = sampler

    def subscribe(self) -> StatsSubscription:
        return self.sampler.subscribe(self.user_id)

    def unsubscribe(self, sub: StatsSubscription) -> None:
        self.sampler.unsubscribe(sub)

    def pong(self, sub: StatsSubscription) -> None:
        sub.pong()

    async def write(self, sub: StatsSubscription) -> None:
        ws = self.ws
        await ws.send_str(self.sampler.message_for(sub))
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            if sub.pong_due:
                sub.pong_due = False
                await ws.send_str(PONG)
            text, sub.pending = sub.pending, None
            if text is not None:
                await ws.send_str(text)
