"""The stats stream (live usage), as an iterator that outlives disconnects.

Unlike events, samples are not numbered or replayed: after a reconnect the next message simply
carries the newest samples again. Reconnection (backoff, pings, refusals) is the events stream's
(``corral.client.events.ReconnectingStream``).
"""

from __future__ import annotations

from typing import cast

from corral.client.events import EventConnection, ReconnectingStream, connect_events
from corral.shapes import StatsMessage

STATS_PATH = "/api/containers/stats"


class StatsStream(ReconnectingStream):
    """Every stats message (``type`` ``"stats"``), across reconnects. Iterate it."""

    def __aiter__(self) -> StatsStream:
        return self

    async def _open(self) -> EventConnection:
        return await connect_events(
            self.client,
            since=None,
            all_users=self.all_users,
            auth=self.auth,
            heartbeat_s=self.heartbeat_s,
            timeout_s=self.connect_timeout_s,
            path=STATS_PATH,
        )

    async def __anext__(self) -> StatsMessage:
        while True:
            message = await self._receive()
            if message.get("type") == "stats":
                return cast(StatsMessage, message)
