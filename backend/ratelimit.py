"""Rate limits: a token bucket per key, checked by one middleware
(``backend.middleware.rate_limit_middleware``) before the handler runs.

Sign-in is limited per client IP (``guest_signin_rate`` for ``POST /api/auth/guest``,
``login_rate`` for ``POST /api/auth/login``, each its own bucket), because nobody is signed in
yet; every write (POST, PUT, PATCH, DELETE) of a signed-in caller is limited per user
(``write_rate``), whichever token or address it comes from. A refused request is 429 ``too many
requests`` with ``Retry-After`` (whole seconds until the bucket holds a token again) and nothing
is done. Reads and WebSocket upgrades are not limited here: they change nothing, and the streams
are bounded on their own (queues, send buffers).

A bucket holds ``count`` tokens and refills at ``count`` per ``per_s`` seconds, so a client may
send ``count`` requests at once, then one every ``per_s / count`` seconds. Memory is bounded:
a bucket idle long enough to be full again is the same as none, so it is dropped (the buckets
are kept in least-recently-used order, so the expired ones are always at the front), and past
``max_keys`` the least recently used bucket goes (that key starts afresh: an attacker who
controls that many addresses gains little over what they already have).

With replicas (PostgreSQL), the buckets are shared (``SharedBuckets``): one row per bucket,
checked and taken in one statement on the database's clock, so a client spread over several
replicas gets the configured rate in all, not that rate from each.

The client's IP is the TCP peer's address (``request.remote``). Behind a reverse proxy every
request comes from the proxy, so ``trusted_proxies`` names the proxies (addresses or networks):
for a request whose peer is one of them, the client is the right-most ``X-Forwarded-For`` entry
that is not a trusted proxy (entries to its left are whatever the client sent, and are never
believed). Without ``trusted_proxies``, ``X-Forwarded-For`` is ignored.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.errors import RateLimited

F = TypeVar("F", bound=Callable[..., Any])
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITES = "writes"  # the per-user bucket of writes (the per-IP ones are named by their handlers)
_LIMIT_ATTR = "__corral_rate_limit__"


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Rate:
    """``count`` requests at once, refilled at ``count`` per ``per_s`` seconds; a ``count`` of 0
    is no limit. Written ``[count, per_s]`` in TOML (or ``{count = 10, per_s = 60}``) and in
    ``CORRAL_<FIELD>`` (JSON)."""

    count: int
    per_s: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"count": value[0], "per_s": value[1]}
        return value

    def __post_init__(self) -> None:
        if self.count < 0 or self.per_s <= 0:
            raise ValueError("a rate is [count, seconds]: count >= 0 (0: no limit), seconds > 0")

    @property
    def limited(self) -> bool:
        return self.count > 0


class TokenBuckets:
    """One bucket per key, all at the same rate; see the module's doc."""

    def __init__(
        self, rate: Rate, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.max_keys = max(1, max_keys)
        self._clock = clock
        self._per_token_s = rate.per_s / rate.count
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is."""
        now = self._clock()
        self._expire(now)
        capacity = float(self.rate.count)
        tokens, then = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - then) / self._per_token_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) * self._per_token_s
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def _expire(self, now: float) -> None:
        """Drop the buckets full again (idle for ``per_s``): the same as having none."""
        while self._buckets:
            _key, (_tokens, then) = next(iter(self._buckets.items()))
            if now - then < self.rate.per_s:
                return
            self._buckets.popitem(last=False)


# GCRA on one row: a bucket is the time its next request is due (``due``); a request is let
# through when, once counted, ``due`` is at most ``per_s`` ahead of now (so ``count`` at once,
# then one per interval). Now is the database's clock, the same for every replica.
_NOW = "extract(epoch from clock_timestamp())"
_TAKE = text(
    f"""
    insert into rate_buckets as b (name, key, due) values (:name, :key, {_NOW} + :interval)
    on conflict (name, key) do update set due = greatest(b.due, {_NOW}) + :interval
    where greatest(b.due, {_NOW}) + :interval - {_NOW} <= :per_s
    returning due
    """
)
_AHEAD = text(f"select due - {_NOW} from rate_buckets where name = :name and key = :key")
_PRUNE = text(f"delete from rate_buckets where due < {_NOW}")
MAX_KEY = 128  # the column's width; keys are addresses and user IDs, far shorter


class SharedBuckets:
    """Every replica's buckets, in the ``rate_buckets`` table (PostgreSQL only)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def take(self, name: str, rate: Rate, key: str) -> float:
        """As ``TokenBuckets.take``, for bucket ``name`` at ``rate``."""
        interval = rate.per_s / rate.count
        values = {"name": name, "key": key[:MAX_KEY], "interval": interval, "per_s": rate.per_s}
        async with self._sessions() as session:
            due = (await session.execute(_TAKE, values)).scalar_one_or_none()
            ahead = None if due is not None else (await session.execute(_AHEAD, values)).scalar()
            await session.commit()
        if due is not None:
            return 0.0
        # Refused: it is let through once ``due`` is no more than ``per_s - interval`` ahead.
        return max(1e-3, float(ahead or 0.0) + interval - rate.per_s)

    async def prune(self) -> int:
        """Drop the buckets full again (due in the past): the same as having none."""
        async with self._sessions() as session:
            result = await session.execute(_PRUNE)
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)


def limited_by_ip(name: str) -> Callable[[F], F]:
    """Mark a public handler as limited per client IP by the limiter's ``name`` bucket."""

    def mark(handler: F) -> F:
        setattr(handler, _LIMIT_ATTR, name)
        return handler

    return mark


def ip_limit_of(handler: Any) -> str | None:
    """The per-IP bucket a handler is limited by (``limited_by_ip``), if any."""
    name = getattr(handler, _LIMIT_ATTR, None)
    return name if isinstance(name, str) else None


def client_ip(request: web.Request, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or behind a trusted proxy the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy (see the module's doc)."""
    peer = request.remote or ""
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_address(hop):
            return peer  # a proxy that writes nonsense: count everything as the proxy's
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class RateLimiter:
    """The buckets of one backend: per IP for each ``limited_by_ip`` name, per user for
    writes; in memory, or shared by every replica once ``share`` is called."""

    def __init__(
        self,
        by_ip: dict[str, Rate],
        writes: Rate,
        trusted_proxies: Sequence[Network],
        max_keys: int,
    ) -> None:
        rates = {**by_ip, WRITES: writes}
        self._rates = {name: rate for name, rate in rates.items() if rate.limited}
        self._memory = {name: TokenBuckets(rate, max_keys) for name, rate in self._rates.items()}
        self._trusted = tuple(trusted_proxies)
        self.shared: SharedBuckets | None = None

    def share(self, shared: SharedBuckets) -> None:
        """Count in the database from now on (replicas): see the module's doc."""
        self.shared = shared
        self._memory.clear()

    async def check_ip(self, name: str, request: web.Request) -> None:
        if name in self._rates:
            key = client_ip(request, self._trusted)
            _refuse_if(await self._take(name, key), "from your address")

    async def check_write(self, user_id: str) -> None:
        if WRITES in self._rates:
            _refuse_if(await self._take(WRITES, user_id), "that change things")

    async def _take(self, name: str, key: str) -> float:
        if self.shared is not None:
            return await self.shared.take(name, self._rates[name], key)
        return self._memory[name].take(key)

    def keys(self) -> int:
        """How many buckets are held in memory now (they are bounded; see the module's doc)."""
        return sum(len(b) for b in self._memory.values())


def _refuse_if(wait_s: float, what: str) -> None:
    if wait_s <= 0:
        return
    seconds = max(1, math.ceil(wait_s))
    raise RateLimited(f"Too many requests {what}; try again in {seconds} s.", retry_after=seconds)
