"""Rate limits count across replicas: a client spread over two replicas gets the configured
rate in all, not that rate from each (backend.ratelimit.SharedBuckets)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.replicas.conftest import CONFIG, Replicas


@pytest.fixture
def replicas_config() -> str:
    return f"write_rate = [3, 60]\nlogin_rate = [2, 60]\n{CONFIG}"


async def test_writes_and_sign_ins_are_counted_once_for_every_replica(replicas: Replicas) -> None:
    token = await replicas.user("ada")
    headers = {"Authorization": f"Bearer {token}"}
    stop = "/api/containers/nothing-here/stop"
    async with aiohttp.ClientSession() as http:
        statuses = []
        for replica in (replicas.a, replicas.b, replicas.a, replicas.b):
            async with http.post(replica.url + stop, headers=headers) as resp:
                statuses.append(resp.status)
                body = await resp.json()
        assert statuses == [404, 404, 404, 429]  # three writes in all, wherever they went
        assert body["error"] == "too many requests"
        assert 1 <= int(resp.headers["Retry-After"]) <= 20  # one write every 20 s

        wrong = {"username": "ada", "password": "not-the-password"}
        statuses = []
        for replica in (replicas.a, replicas.b, replicas.a):
            async with http.post(replica.url + "/api/auth/login", json=wrong) as resp:
                statuses.append(resp.status)
        assert statuses == [401, 401, 429]  # two sign-ins from this address, in all
