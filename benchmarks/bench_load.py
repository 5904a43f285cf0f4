"""Throughput under load: many clients at once on list, get, and start/stop.

The backend runs as its own ``corral serve`` process and the load comes from another
(``benchmarks.load_client``): neither shares an event loop or a GIL with the other, as in
production. Each client holds one keep-alive connection and sends its next request when the
last one answered (closed loop). Reported per case: requests/s, p50, p99 and errors.

Baselines, measured in the same run: for the reads, a bare aiohttp server in its own process
answering the same bytes as the list (the ceiling of the stack, nothing of Corral's); for
start/stop, the docker SDK doing the same cycles on sandboxes of the same spec at the same
concurrency. Targets: list with 20 containers at 20 clients >= 1,500 requests/s with p99 <= 50
ms; start+stop through the API / through the SDK <= 1.05.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import docker

from backend.containers.sandbox import sandbox_spec
from backend.docker_service import DockerService
from benchmarks.common import baseline_twin, remove_twin, seed_users, server_process, verdict
from corral.client import CorralClient
from corral.local import local_admin_token

ROWS = 20
READS = {20: 4000, 100: 6000}
LIFECYCLE_CLIENTS = 20
LIFECYCLE_ROUNDS = 2
TARGET_RPS = 1500.0
TARGET_P99_MS = 50.0
TARGET_LIFECYCLE = 1.05

BARE_SERVER = """
import asyncio, sys
from aiohttp import web
body = sys.stdin.buffer.read()
async def answer(_):
    return web.Response(body=body, content_type="application/json")
async def main():
    app = web.Application(); app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``benchmarks.load_client`` with ``spec``; its result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.load_client",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(json.dumps(spec).encode())
    result: dict[str, Any] = json.loads(out)
    return result


def line(label: str, result: dict[str, Any]) -> str:
    return (
        f"  {label:34} {result['rps']:7.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
        f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}"
    )


async def bare_baseline(body: bytes, clients: int, requests: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BARE_SERVER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(body)
    proc.stdin.close()
    port = int(await proc.stdout.readline())
    try:
        call = {"method": "GET", "url": f"http://127.0.0.1:{port}/", "headers": {}}
        return await load({"clients": clients, "requests": requests, "calls": [call]})
    finally:
        proc.terminate()
        await proc.wait()


async def reads(results: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        tokens = await seed_users(data_dir, {"loaded": ROWS})
        headers = {"Authorization": f"Bearer {tokens['loaded']}"}
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server, aiohttp.ClientSession() as http:
            url = f"{server.url}/api/containers"
            async with http.get(url, headers=headers) as resp:
                body = await resp.read()
            one = json.loads(body)["containers"][0]["db_id"]
            list_call = {"method": "GET", "url": url, "headers": headers}
            get_call = {"method": "GET", "url": f"{url}/{one}", "headers": headers}
            await load({"clients": 20, "requests": 1000, "calls": [list_call]})  # warm up
            print(
                f"reads: {ROWS} containers in the database, backend and load in their own processes"
            )
            for clients, requests in READS.items():
                bare = await bare_baseline(body, clients, requests)
                listed = await load(
                    {"clients": clients, "requests": requests, "calls": [list_call]}
                )
                got = await load({"clients": clients, "requests": requests, "calls": [get_call]})
                print(line(f"bare aiohttp, same bytes, {clients} clients", bare))
                print(line(f"GET /api/containers, {clients} clients", listed))
                print(line(f"GET /api/containers/ID, {clients} clients", got))
                share = listed["rps"] / bare["rps"]
                print(f"    list at {clients} clients / bare aiohttp: {share:.2f}")
                results[f"list_rps_{clients}"] = listed["rps"]
                results[f"list_p99_ms_{clients}"] = listed["p99_ms"]
                results[f"get_rps_{clients}"] = got["rps"]
                results[f"errors_{clients}"] = listed["errors"] + got["errors"]
    rps, p99 = results["list_rps_20"], results["list_p99_ms_20"]
    ok = rps >= TARGET_RPS and p99 <= TARGET_P99_MS
    print(
        f"  {verdict(ok)} list at 20 clients: {rps:.0f} req/s (target >= {TARGET_RPS:.0f}), "
        f"p99 {p99:.1f} ms (target <= {TARGET_P99_MS:.0f})"
    )


async def lifecycle(results: dict[str, float]) -> None:
    """Start+stop cycles by LIFECYCLE_CLIENTS clients at once, each on its own sandbox, through
    the API and through the SDK on twins of the same spec; phases interleaved, twice."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server:
            token = await local_admin_token(server.settings)
            headers = {"Authorization": f"Bearer {token}"}
            async with CorralClient(server.url, token) as client:
                made = [
                    dict(
                        await client.create_container("corral/busybox", wait=True, name=f"load-{i}")
                    )
                    for i in range(LIFECYCLE_CLIENTS)
                ]
                for item in made:
                    await client.stop_container(str(item["db_id"]))
            service = DockerService(None)
            twin_rows = [
                await baseline_twin(service, item, f"load-sdk-{i}", instance)
                for i, item in enumerate(made)
            ]
            twins = [
                await service.create_container(
                    sandbox_spec(
                        row,
                        server.settings,
                        instance,
                        "corral/busybox:latest",
                    )
                )
                for row in twin_rows
            ]
            service.close()
            sdk = docker.APIClient(version="auto")
            stop_timeout = server.settings.stop_timeout_s

            def sdk_cycles(ident: str) -> None:
                for _ in range(LIFECYCLE_ROUNDS):
                    sdk.start(ident)
                    sdk.stop(ident, timeout=stop_timeout)

            def sdk_phase() -> float:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(len(twins)) as pool:
                    list(pool.map(sdk_cycles, twins))
                return time.perf_counter() - t0

            per_client = [
                [
                    {
                        "method": "POST",
                        "url": f"{server.url}/api/containers/{item['db_id']}/{verb}",
                        "headers": headers,
                    }
                    for verb in ("start", "stop")
                ]
                for item in made
            ]
            spec = {
                "clients": LIFECYCLE_CLIENTS,
                "requests": LIFECYCLE_CLIENTS * LIFECYCLE_ROUNDS * 2,
                "calls_per_client": per_client,
            }
            api_times, sdk_times, errors = [], [], 0
            for _ in range(2):
                sdk_times.append(await asyncio.to_thread(sdk_phase))
                result = await load(spec)
                api_times.append(result["seconds"])
                errors += result["errors"]
            for ident, row in zip(twins, twin_rows, strict=True):
                remove_twin(sdk, ident, row)
            sdk.close()
    ratio = statistics.median(api_times) / statistics.median(sdk_times)
    cycles = LIFECYCLE_CLIENTS * LIFECYCLE_ROUNDS
    sdk_s, api_s = statistics.median(sdk_times), statistics.median(api_times)
    ok = ratio <= TARGET_LIFECYCLE and not errors
    print(f"start+stop: {LIFECYCLE_CLIENTS} clients at once, {cycles} cycles a phase (runsc)")
    print(f"  docker SDK: {sdk_s:6.2f} s ({cycles / sdk_s:.1f} cycles/s)")
    print(f"  Corral API: {api_s:6.2f} s ({cycles / api_s:.1f} cycles/s), errors {errors}")
    print(f"  {verdict(ok)} ratio API/SDK = {ratio:.3f} (target <= {TARGET_LIFECYCLE})")
    results["lifecycle_load_ratio"] = ratio


async def run() -> dict[str, float]:
    results: dict[str, float] = {}
    await reads(results)
    await lifecycle(results)
    return results


if __name__ == "__main__":
    asyncio.run(run())
