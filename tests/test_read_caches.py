"""What the backend remembers between requests (token checks, each user's list) stays true.

The caches exist for throughput (benchmarks/bench_load.py); these tests hold them to the rule
that a remembered answer is never older than the last write made through the backend, and that
a change made by another process (``corral admin`` on the database) is seen within
``auth_cache_s``.
"""

from __future__ import annotations

from sqlalchemy import update

from backend.db.models import ApiToken, utcnow
from backend.read_cache import ReadCache
from backend.settings import Settings
from backend.state import CONTAINERS, SESSIONS
from devkit.waiting import wait_for
from tests.conftest import Api, serve


def test_an_answer_read_across_a_write_is_not_kept() -> None:
    cache: ReadCache[str, list[int]] = ReadCache()
    stamp = cache.stamp()
    cache.changed("ada")  # a write lands while the read is under way
    cache.put("ada", stamp, [1])
    assert cache.get("ada") is None
    stamp = cache.stamp()
    cache.changed("bob")  # another user's write does not spoil ada's answer
    cache.put("ada", stamp, [2])
    assert cache.get("ada") == [2]
    cache.changed("ada")
    assert cache.get("ada") is None


def test_the_cache_stays_bounded_and_correct_past_its_limit() -> None:
    cache: ReadCache[int, int] = ReadCache(limit=4)
    old = cache.stamp()
    for key in range(10):
        cache.changed(key)  # the write stamps start over past the limit
    cache.put(3, old, 3)  # read before those writes: refused even though 3's stamp is gone
    assert cache.get(3) is None
    for key in range(10):
        cache.put(key, cache.stamp(), key)
    assert sum(cache.get(k) is not None for k in range(10)) <= 4


async def test_every_write_shows_in_the_next_list(api: Api) -> None:
    _, headers = await api.user(tier="test")

    async def listed() -> list[dict[str, object]]:
        resp = await api.client.get("/api/containers", headers=headers)
        assert resp.status == 200
        items: list[dict[str, object]] = (await resp.json())["containers"]
        return items

    assert await listed() == []
    made = await api.create(headers, name="first")
    assert [c["status"] for c in await listed()] == ["running"]
    stop = await api.client.post(f"/api/containers/{made['db_id']}/stop", headers=headers)
    assert stop.status == 200
    assert [c["status"] for c in await listed()] == ["stopped"]
    repository = api.app[CONTAINERS].repository
    row = await repository.reload(made["db_id"])
    before = (await listed())[0]["last_used_at"]
    await repository.touch(row)  # what opening a terminal records, without an event
    assert (await listed())[0]["last_used_at"] != before
    gone = await api.client.delete(f"/api/containers/{made['db_id']}", headers=headers)
    assert gone.status == 200
    assert await listed() == []


async def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(
    settings: Settings,
) -> None:
    async with serve(settings.with_overrides(auth_cache_s=0.5)) as api:
        _, headers = await api.user()
        made = await api.client.post(
            "/api/tokens", json={"name": "ci", "scopes": ["read"]}, headers=headers
        )
        token = (await made.json())["token"]
        reader = {"Authorization": f"Bearer {token}"}
        assert (await api.client.get("/api/me", headers=reader)).status == 200  # remembered
        async with api.app[SESSIONS]() as session:  # as `corral admin` would, not through us
            await session.execute(update(ApiToken).values(revoked_at=utcnow()))
            await session.commit()

        async def refused() -> bool:
            return (await api.client.get("/api/me", headers=reader)).status == 401

        await wait_for(refused, timeout_s=5, what="the revoked token refused")
