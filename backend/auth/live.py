"""Open streams by the token that opened them, so that revoking it ends them at once.

A WebSocket is authorized once, at its handshake. Without this, a stream opened with an API token
that is then revoked (or a session that signs out) would keep receiving until the token expired,
possibly never. Each long-lived stream (events, stats, terminal) registers how to end itself
under its principal's token while it is open; ``UserService`` calls ``end`` in the same breath as
it commits a revocation, so the stream is told within the request that revoked it: no polling.

One backend serves a data directory (``backend.data_dir_lock``), so this in-memory registry sees
every stream a revocation concerns, but for replicas on one database: ``relay`` tells the others,
which end theirs with ``end_here`` (``backend.cluster.wiring``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import WSCloseCode

from backend.auth.principal import Principal

log = logging.getLogger(__name__)

# The close code of a stream whose credentials no longer hold: expired or revoked (the reason
# says which); the client must sign in again, so reconnecting with the same token is a 401.
CLOSE_CREDENTIALS = int(WSCloseCode.POLICY_VIOLATION)  # 1008
REVOKED_REASON = "token revoked"

Ender = Callable[[str], None]
Revoked = Callable[[str, str], Awaitable[bool]]


def token_key(kind: str, token_id: str) -> tuple[str, str]:
    """Session tokens (JWTs, by ``jti``) and API tokens (by row ID; agent tokens too) are
    named apart."""
    return ("jwt" if kind == "jwt" else "api", token_id)


class LiveStreams:
    def __init__(self) -> None:
        self._by_token: dict[tuple[str, str], set[Ender]] = {}
        self._revoked: Revoked | None = None
        # Replicas: told of every ``end`` made here, to end the token's streams on the others.
        self.relay: Callable[[str, str, str], None] | None = None

    def check_with(self, revoked: Revoked) -> None:
        """How to ask whether a token was revoked (``UserService.revoked``): asked once a
        stream is registered, for a revocation that committed between the stream's handshake
        and its registration (``end`` ran before there was anything to end)."""
        self._revoked = revoked

    def __len__(self) -> int:
        return sum(len(enders) for enders in self._by_token.values())

    @asynccontextmanager
    async def opened_with(self, principal: Principal, end: Ender) -> AsyncIterator[None]:
        """While in this block, revoking ``principal``'s token calls ``end(message)`` (once;
        it must not block: it asks the stream to close)."""
        key = token_key(principal.kind, principal.token_id)
        self._by_token.setdefault(key, set()).add(end)
        try:
            if self._revoked is not None and await self._revoked(*key):
                enders = self._by_token.get(key)
                # Once: the revocation's own word (a replica's hint, this one's included) may
                # have ended it while the check ran.
                if enders is not None and end in enders:
                    enders.discard(end)
                    end("This token was revoked.")
            yield
        finally:
            enders = self._by_token.get(key)
            if enders is not None:
                enders.discard(end)
                if not enders:
                    del self._by_token[key]

    def end(self, kind: str, token_id: str, message: str) -> int:
        """End every stream opened with that token, saying ``message``, here and on every
        replica; how many there were here."""
        if self.relay is not None:
            self.relay(kind, token_id, message)
        return self.end_here(kind, token_id, message)

    def end_here(self, kind: str, token_id: str, message: str) -> int:
        """``end`` in this process only (told by another replica)."""
        enders = self._by_token.pop(token_key(kind, token_id), set())
        for end in enders:
            try:
                end(message)
            except Exception:
                log.exception("ending a stream of a revoked token failed")
        return len(enders)
