"""Event delivery across replicas: 100 subscribers split over two replicas on one PostgreSQL
database, events caused through one of them.

- Replica A runs in this process (``running_backend`` on a fresh database of the throwaway
  PostgreSQL, ``devkit.postgres``); replica B is ``corral serve`` in its own process on the same
  database (``devkit.backend_process``). Events are recorded through A's event log
  (``EventLog.publish``: the commit, then delivery), at a steady 100/s with a container-sized
  payload. A delivers them to its subscribers at once; B reads them from the table when
  PostgreSQL's NOTIFY wakes it (``backend.events.feed``).
- Subscribers are WebSocket clients in separate processes (``bench_events --subscriber``), 50 on
  each replica, stamping each receipt with ``CLOCK_MONOTONIC`` (one clock for every process on
  the machine). Latency: receipt minus the moment ``publish`` was called (commit included), the
  same origin for both replicas.
- Baseline, same run: the 50 subscribers on A (within one replica). Target: p99 <= 50 ms across
  replicas, as within one.
- Clean-up: B is stopped, the database dropped, A's data directory and Docker objects removed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from backend.state import EVENT_HUB, EVENTS
from benchmarks.bench_events import END, payload
from benchmarks.common import Backend, percentile, running_backend, verdict
from devkit.backend_process import BackendProcess
from devkit.engine import clean_up
from devkit.postgres import Postgres, database_of
from devkit.waiting import wait_for

EVENTS_COUNT = 1000
WARMUP = 30
RATE_PER_S = 100.0
SUBSCRIBERS = 100  # half on each replica
TARGET_P99_MS = 50.0


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


async def start_subscribers(url: str, token: str, count: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_events",
        "--subscriber",
        url,
        token,
        str(count),
        stdout=asyncio.subprocess.PIPE,
        limit=256 * 1024 * 1024,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    assert line.strip() == b"READY", line
    return proc


async def receipts(proc: asyncio.subprocess.Process) -> list[list[tuple[int, int]]]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 300)
    await proc.wait()
    return [[(s, t) for s, t in conn] for conn in json.loads(line)]


def line(label: str, ms: list[float], expected: int) -> str:
    return (
        f"  {label:<36} p50 {percentile(ms, 50):6.2f} ms  p99 {percentile(ms, 99):6.2f} ms  "
        f"max {max(ms):6.2f} ms  ({len(ms)}/{expected} received)"
    )


async def run() -> dict[str, float]:
    postgres = Postgres.ensure()
    url = postgres.create_database()
    try:
        return await _run(url)
    finally:
        postgres.drop_database(database_of(url))


async def _run(url: str) -> dict[str, float]:
    async with running_backend(database_url=url) as a:
        with tempfile.TemporaryDirectory(prefix="corral-bench-b-") as tmp:
            b = BackendProcess(Path(tmp), a.instance, {"CORRAL_DATABASE_URL": url})
            await asyncio.to_thread(b.start)
            try:
                result = await _measure(a, b)
            finally:
                await asyncio.to_thread(b.stop)
                clean_up(a.instance, Path(tmp))
    return result


async def _measure(a: Backend, b: BackendProcess) -> dict[str, float]:
    user, token = await a.user()
    half = SUBSCRIBERS // 2
    on_a = await start_subscribers(a.url, token, half)
    on_b = await start_subscribers(b.url, token, SUBSCRIBERS - half)
    await wait_for(lambda: len(a.app[EVENT_HUB]) == half, 30, 0.01, "A's subscribers")

    log = a.app[EVENTS]
    sent: dict[int, int] = {}
    interval = 1.0 / RATE_PER_S
    start = time.monotonic()
    for n in range(WARMUP + EVENTS_COUNT):
        stamp = now_ns()
        event = await log.publish(user.id, "container_updated", payload(n))
        assert event is not None
        sent[event.seq] = stamp
        delay = start + (n + 1) * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # a steady rate, not a burst
    await log.publish(user.id, "container_updated", {"id": END})
    got = {"a": await receipts(on_a), "b": await receipts(on_b)}

    first = min(sent) + WARMUP
    ms = {
        name: [(t - sent[seq]) / 1e6 for conn in conns for seq, t in conn if seq >= first]
        for name, conns in got.items()
    }
    expected = {"a": EVENTS_COUNT * half, "b": EVENTS_COUNT * (SUBSCRIBERS - half)}
    ordered = all(
        [seq for seq, _ in conn] == sorted({seq for seq, _ in conn})
        for conns in got.values()
        for conn in conns
    )
    complete = all(len(ms[k]) == expected[k] for k in ms)
    print(
        f"event delivery latency, publish -> client receipt ({EVENTS_COUNT} events at "
        f"{RATE_PER_S:.0f}/s through replica A; {SUBSCRIBERS} subscribers, {half} on each)"
    )
    print(line(f"{half} on A (within one replica)", ms["a"], expected["a"]))
    print(line(f"{SUBSCRIBERS - half} on B (across replicas)", ms["b"], expected["b"]))
    every = ms["a"] + ms["b"]
    print(line(f"all {SUBSCRIBERS}", every, expected["a"] + expected["b"]))
    p99_b = percentile(ms["b"], 99)
    ratio_50 = percentile(ms["b"], 50) / percentile(ms["a"], 50)
    ratio_99 = p99_b / percentile(ms["a"], 99)
    ok = p99_b <= TARGET_P99_MS and complete and ordered
    print(
        f"  {verdict(ok)} across replicas p99 {p99_b:.2f} ms (target <= {TARGET_P99_MS:.0f} ms); "
        f"ratio across/within p50 {ratio_50:.2f}, p99 {ratio_99:.2f}; every event delivered "
        f"once, in order: {complete and ordered}"
    )
    return {
        "replicas_within_p50_ms": percentile(ms["a"], 50),
        "replicas_within_p99_ms": percentile(ms["a"], 99),
        "replicas_across_p50_ms": percentile(ms["b"], 50),
        "replicas_across_p99_ms": p99_b,
    }


if __name__ == "__main__":
    asyncio.run(run())
