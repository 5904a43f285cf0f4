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

from backend.errors import RateLimited

F = TypeVar("F", bound=Callable[..., Any])
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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
    writes."""

    def __init__(
        self,
        by_ip: dict[str, Rate],
        writes: Rate,
        trusted_proxies: Sequence[Network],
        max_keys: int,
    ) -> None:
        self._by_ip = {
            name: TokenBuckets(rate, max_keys) for name, rate in by_ip.items() if rate.limited
        }
        self._writes = TokenBuckets(writes, max_keys) if writes.limited else None
        self._trusted = tuple(trusted_proxies)

    def check_ip(self, name: str, request: web.Request) -> None:
        buckets = self._by_ip.get(name)
        if buckets is not None:
            _refuse_if(buckets.take(client_ip(request, self._trusted)), "from your address")

    def check_write(self, user_id: str) -> None:
        if self._writes is not None:
            _refuse_if(self._writes.take(user_id), "that change things")

    def keys(self) -> int:
        """How many buckets are held now (they are bounded; see the module's doc)."""
        writes = len(self._writes) if self._writes is not None else 0
        return writes + sum(len(b) for b in self._by_ip.values())


def _refuse_if(wait_s: float, what: str) -> None:
    if wait_s <= 0:
        return
    seconds = max(1, math.ceil(wait_s))
    raise RateLimited(f"Too many requests {what}; try again in {seconds} s.", retry_after=seconds)
