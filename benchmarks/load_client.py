"""A load generator in its own process: ``python -m benchmarks.load_client SPEC`` (JSON on stdin).

Why a process of its own: a client sharing the server's event loop and GIL measures itself as
much as the server. Each of ``clients`` tasks holds one keep-alive connection and sends requests
back to back (closed loop) until ``requests`` in all are done; every answer is read whole. The
result, on stdout as JSON: requests/s over the whole run, p50/p99 latency in ms, and the count of
answers that were not the expected status (with the first few, to say what went wrong).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

from benchmarks.common import percentile


async def _client(
    http: aiohttp.ClientSession,
    calls: list[dict[str, Any]],
    budget: list[int],
    times: list[float],
    errors: list[str],
) -> None:
    index = 0
    while budget[0] > 0:
        budget[0] -= 1
        call = calls[index % len(calls)]
        index += 1
        t0 = time.perf_counter()
        async with http.request(call["method"], call["url"], headers=call["headers"]) as resp:
            body = await resp.read()
        times.append(time.perf_counter() - t0)
        if resp.status != call.get("status", 200):
            errors.append(f"{call['method']} {call['url']}: {resp.status} {body[:200]!r}")


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``: ``clients``, ``requests``, and per client a list of calls (``method``, ``url``,
    ``headers``, ``status``) it cycles through (``calls_per_client``), or ``calls`` for all."""
    clients: int = spec["clients"]
    per_client: list[list[dict[str, Any]]] = (
        spec.get("calls_per_client") or [spec["calls"]] * clients
    )
    times: list[float] = []
    errors: list[str] = []
    budget = [int(spec["requests"])]
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_client(http, per_client[i], budget, times, errors) for i in range(clients))
        )
        elapsed = time.perf_counter() - t0
    ms = [t * 1000 for t in times]
    return {
        "requests": len(times),
        "seconds": elapsed,
        "rps": len(times) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


if __name__ == "__main__":
    result = asyncio.run(run(json.load(sys.stdin)))
    json.dump(result, sys.stdout)
