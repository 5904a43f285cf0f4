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
from pathlib import Path

import aiohttp

from benchmarks.common import percentile, seed_users, server_process, summary, verdict

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


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        tokens = await seed_users(data_dir, {"full": ROWS, "empty": 0})
        token, empty_token = tokens["full"], tokens["empty"]
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
