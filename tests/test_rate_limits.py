"""Rate limits: 429 ``too many requests`` with ``Retry-After`` (whole seconds) and the contract's
error body; sign-in per client IP, writes per user; a global cap on live guest sessions (429
``guest limit reached``). Refused requests change nothing. The buckets are memory bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientResponse
from sqlalchemy import func, select, text

from backend.db.models import User
from backend.ratelimit import Rate, TokenBuckets
from backend.settings import Settings
from backend.state import RATE_LIMITER, SESSIONS
from devkit.waiting import wait_for
from tests.conftest import Api, serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_per_interval() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(3, 30.0), max_keys=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(10.0)  # one token every 10 s
    assert buckets.take("b") == 0.0  # keys are independent
    clock.now += 4.0
    assert buckets.take("a") == pytest.approx(6.0)  # a refusal takes nothing
    clock.now += 6.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(10.0)


def test_buckets_are_bounded_in_memory() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(2, 10.0), max_keys=100, clock=clock)
    for i in range(1000):
        buckets.take(f"k{i}")
    assert len(buckets) == 100  # the least recently used went first
    clock.now += 10.0  # every bucket is full again: the same as none
    buckets.take("new")
    assert len(buckets) == 1


def _refused(resp: ClientResponse, body: dict[str, Any], error: str) -> int:
    assert resp.status == 429, body
    assert resp.content_type == "application/json"
    assert body["error"] == error and body["message"]
    retry = int(resp.headers["Retry-After"])
    assert retry >= 1 and body["retry_after"] == retry
    return retry


async def _guest(api: Api, name: str, **headers: str) -> tuple[ClientResponse, dict[str, Any]]:
    resp = await api.client.post("/api/auth/guest", json={"username": name}, headers=headers)
    return resp, await resp.json()


async def _guests(api: Api) -> int:
    async with api.app[SESSIONS]() as session:
        return int(await session.scalar(select(func.count()).where(User.is_guest.is_(True))) or 0)


async def test_guest_sign_in_is_limited_per_ip(settings: Settings) -> None:
    async with serve(settings.with_overrides(guest_signin_rate=Rate(3, 60.0))) as api:
        for i in range(3):
            resp, _ = await _guest(api, f"g{i}")
            assert resp.status == 200
        resp, body = await _guest(api, "g3")
        retry = _refused(resp, body, "too many requests")
        assert 1 <= retry <= 20  # a token every 20 s
        assert await _guests(api) == 3  # the refused one made nobody
        # Another limit's bucket is its own: a login still answers (401, not 429).
        resp = await api.client.post("/api/auth/login", json={"username": "x", "password": "y"})
        assert resp.status == 401


async def test_login_is_limited_per_ip(settings: Settings) -> None:
    async with serve(settings.with_overrides(login_rate=Rate(2, 60.0))) as api:
        await api.user("ada", password="right-password")
        wrong = {"username": "ada", "password": "guess"}
        assert (await api.client.post("/api/auth/login", json=wrong)).status == 401
        assert (await api.client.post("/api/auth/login", json=wrong)).status == 401
        right = {"username": "ada", "password": "right-password"}
        resp = await api.client.post("/api/auth/login", json=right)
        _refused(resp, await resp.json(), "too many requests")  # even the right password


async def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(settings: Settings) -> None:
    limited = settings.with_overrides(guest_signin_rate=Rate(1, 60.0))
    async with serve(limited) as api:
        assert (await _guest(api, "ga", **{"X-Forwarded-For": "192.0.2.1"}))[0].status == 200
        # Not behind a trusted proxy: the header is ignored, the peer's bucket is empty.
        resp, body = await _guest(api, "gb", **{"X-Forwarded-For": "192.0.2.2"})
        _refused(resp, body, "too many requests")
    async with serve(limited.with_overrides(trusted_proxies=["127.0.0.0/8"])) as api:
        assert (await _guest(api, "ga", **{"X-Forwarded-For": "192.0.2.1"}))[0].status == 200
        assert (await _guest(api, "gb", **{"X-Forwarded-For": "192.0.2.2"}))[0].status == 200
        # The client's own entries (left of the proxy's) are never believed.
        resp, body = await _guest(api, "gc", **{"X-Forwarded-For": "203.0.113.9, 192.0.2.1"})
        _refused(resp, body, "too many requests")
    few_keys = limited.with_overrides(trusted_proxies=["127.0.0.0/8"], rate_limit_keys=10)
    async with serve(few_keys) as api:
        for i in range(50):
            await _guest(api, f"m{i}", **{"X-Forwarded-For": f"198.51.100.{i}"})
        assert api.app[RATE_LIMITER].keys() <= 10


async def test_writes_are_limited_per_user(settings: Settings) -> None:
    async with serve(settings.with_overrides(write_rate=Rate(4, 60.0))) as api:
        _, headers = await api.user()
        _, other = await api.user()
        async with api.corral(headers) as client:
            token = (await client.create_token("second"))["token"]  # a write: 1 of 4
        path = "/api/containers/nothing-here/stop"
        for _ in range(3):
            assert (await api.client.post(path, headers=headers)).status == 404
        resp = await api.client.post(path, headers=headers)
        _refused(resp, await resp.json(), "too many requests")
        # Another token of the same user shares the bucket; reads and other users do not.
        second = {"Authorization": f"Bearer {token}"}
        resp = await api.client.delete("/api/containers/x", headers=second)
        assert resp.status == 429
        assert (await api.client.get("/api/containers", headers=headers)).status == 200
        assert (await api.client.post(path, headers=other)).status == 404


async def test_live_guest_sessions_are_capped(settings: Settings) -> None:
    capped = settings.with_overrides(max_guest_sessions=2, guest_signin_rate=Rate(100, 1.0))
    async with serve(capped) as api:
        results = await asyncio.gather(*(_guest(api, f"g{i}") for i in range(5)))
        statuses = sorted(resp.status for resp, _ in results)
        assert statuses == [200, 200, 429, 429, 429]  # exact, although concurrent
        resp, body = next((r, b) for r, b in results if r.status == 429)
        retry = _refused(resp, body, "guest limit reached")
        assert retry > 49 * 3600  # when the first session ends (50 hours)
        assert body["limit"] == 2 and "2 guest sessions" in body["message"]
        assert await _guests(api) == 2
        # A guest who signs out frees their place.
        token = next(b["token"] for r, b in results if r.status == 200)
        logout = await api.client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )
        assert logout.status == 200
        assert (await _guest(api, "next"))[0].status == 200
        assert (await _guest(api, "one-more"))[0].status == 429


async def test_shared_buckets_count_as_the_memory_ones_do(
    settings: Settings, database_url: str | None
) -> None:
    """On PostgreSQL every replica counts in one table (tests/replicas has two replicas on
    it); the arithmetic is the memory buckets', on the database's clock."""
    if database_url is None:
        pytest.skip("the shared buckets are PostgreSQL's: run with --db postgres")
    async with serve(settings) as api:
        shared = api.app[RATE_LIMITER].shared
        assert shared is not None
        rate = Rate(3, 30.0)
        assert [await shared.take("t", rate, "a") for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = await shared.take("t", rate, "a")
        assert 9.0 < wait <= 10.0  # one token every 10 s
        assert await shared.take("t", rate, "b") == 0.0  # keys are independent
        assert await shared.take("t", rate, "a") == pytest.approx(wait, abs=1.0)  # took nothing
        assert await shared.take("t", rate, "x" * 500) == 0.0  # an over-long key is cut

        # A bucket due in the past is full again: pruned, while one still counting is kept.
        assert await shared.take("quick", Rate(1, 0.05), "a") == 0.0

        async def rows() -> list[str]:
            async with api.app[SESSIONS]() as session:
                found = await session.execute(text("select name from rate_buckets order by 1"))
                return [str(name) for name in found.scalars()]

        async def pruned() -> bool:
            await shared.prune()
            return "quick" not in await rows()

        await wait_for(pruned, 10, what="the full bucket to be pruned")
        assert await rows() == ["t", "t", "t"]
