"""List latency with 200 containers in the database, on SQLite and on PostgreSQL, and proof that
listing asks Docker nothing.

The backend runs as its own ``corral serve`` process; the client measures from this one. Target:
p50 <= 15 ms on each database. The baseline is the same request for a user with no containers,
measured in the same run on the same database, so its ratio shows what 200 rows cost over the
fixed cost of an authenticated request. The database comparison is a ratio too: PostgreSQL's p50
(the throwaway cluster of scripts/postgres.sh, on loopback) over SQLite's, measured one after the
other in the same run with the same rows, inserted directly (no sandboxes are needed).

The list is answered from memory once read (``backend.read_cache``: only this process writes the
rows), so after the first request it costs the same on both databases. What a database costs per
request is measured beside it: ``GET /api/volumes`` (the user's kept volumes, none), which asks
the database every time.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.common import (
    NO_WRITE_LIMIT,
    percentile,
    seed_users,
    server_process,
    summary,
    verdict,
)
from devkit.postgres import Postgres, database_of

ROWS = 200
REQUESTS = 300
TARGET_P50_MS = 15.0


@dataclass
class Figures:
    database: str
    baseline: list[float]  # seconds, the user with no containers
    full: list[float]  # seconds, the user with ROWS containers
    query: list[float]  # seconds, GET /api/volumes: one query per request

    @property
    def p50_ms(self) -> float:
        return percentile(self.full, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.full, 99) * 1000

    @property
    def ratio(self) -> float:
        return percentile(self.full, 50) / percentile(self.baseline, 50)


async def _measure(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200
        times.append(time.perf_counter() - t0)
    return times


async def _on(database: str, database_url: str | None) -> Figures:
    """The list measured on one database (``database_url``: None for the data directory's
    SQLite file), through a server of its own."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        config = NO_WRITE_LIMIT
        if database_url is not None:
            config += f'database_url = "{database_url}"\n'
        (data_dir / "config.toml").write_text(config)
        tokens = await seed_users(data_dir, {"full": ROWS, "empty": 0})
        token, empty_token = tokens["full"], tokens["empty"]
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server, aiohttp.ClientSession() as http:
            assert server.settings.database_url == database_url
            url = f"{server.url}/api/containers"
            full_headers = {"Authorization": f"Bearer {token}"}
            await _measure(http, url, full_headers)  # warm up
            baseline = await _measure(http, url, {"Authorization": f"Bearer {empty_token}"})
            full = await _measure(http, url, full_headers)
            async with http.get(url, headers=full_headers) as resp:
                assert (await resp.json())["count"] == ROWS
            query = await _measure(http, f"{server.url}/api/volumes", full_headers)
    return Figures(database, baseline, full, query)


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A database of its own on the throwaway cluster (started when it is not running)."""
    postgres = Postgres.ensure()
    url = postgres.create_database(f"corral_bench_{uuid.uuid4().hex[:12]}")
    try:
        yield url
    finally:
        postgres.drop_database(database_of(url))


def _report(figures: Figures) -> None:
    print(f"  {figures.database}:")
    print(f"    no containers (baseline): {summary(figures.baseline)}")
    print(f"    {ROWS} containers         : {summary(figures.full)}")
    print(
        f"    {verdict(figures.p50_ms <= TARGET_P50_MS)} p50 = {figures.p50_ms:.2f} ms "
        f"(target <= {TARGET_P50_MS} ms); ratio to baseline = {figures.ratio:.2f}"
    )
    print(f"    GET /api/volumes (query): {summary(figures.query)}")


async def run() -> dict[str, float]:
    sqlite = await _on("SQLite (the data directory's file)", None)
    with _postgres_database() as url:
        postgres = await _on("PostgreSQL (scripts/postgres.sh, loopback)", url)
    print(f"GET /api/containers with {ROWS} containers in the database (server in its own process)")
    _report(sqlite)
    _report(postgres)
    vs_sqlite = percentile(postgres.full, 50) / percentile(sqlite.full, 50)
    p99_vs_sqlite = percentile(postgres.full, 99) / percentile(sqlite.full, 99)
    query_vs_sqlite = percentile(postgres.query, 50) / percentile(sqlite.query, 50)
    print(f"  PostgreSQL / SQLite, the list: p50 x{vs_sqlite:.2f}, p99 x{p99_vs_sqlite:.2f}")
    print(f"  PostgreSQL / SQLite, a query per request: p50 x{query_vs_sqlite:.2f}")
    return {
        "list_p50_ms": sqlite.p50_ms,
        "list_p99_ms": sqlite.p99_ms,
        "list_ratio": sqlite.ratio,
        "list_pg_p50_ms": postgres.p50_ms,
        "list_pg_p99_ms": postgres.p99_ms,
        "list_pg_ratio": postgres.ratio,
        "list_pg_vs_sqlite": vs_sqlite,
        "query_p50_ms": percentile(sqlite.query, 50) * 1000,
        "query_pg_p50_ms": percentile(postgres.query, 50) * 1000,
        "query_pg_vs_sqlite": query_vs_sqlite,
    }


if __name__ == "__main__":
    import asyncio

    asyncio.run(run())
