"""Keystroke round trip: one character typed, until its echo comes back.

Through Corral's terminal WebSocket (backend in its own process) against the same done with a
``docker exec -it``-style TTY exec driven directly through the docker SDK's socket, in the same
run, on the same sandbox."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import docker

from benchmarks.common import percentile, server_process, summary
from corral.client import CorralClient
from corral.local import local_admin_token

KEYS = 200
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


async def ws_round_trips(ws: aiohttp.ClientWebSocketResponse, keys: int = KEYS) -> list[float]:
    """Type ``keys`` characters on a terminal WebSocket, each once the last one's echo came."""
    times = []
    for i in range(keys):
        key = ALPHABET[i % len(ALPHABET)]
        t0 = time.perf_counter()
        await ws.send_json({"type": "input", "data": key})
        while True:
            msg = await ws.receive_json(timeout=10)
            if msg["type"] == "output" and key in msg["data"]:
                break
        times.append(time.perf_counter() - t0)
    await ws.send_json({"type": "input", "data": "\x15"})  # ctrl-u: clear the line
    return times


def _sdk_round_trips(container_id: str) -> list[float]:
    api = docker.APIClient(version="auto")
    created = api.exec_create(container_id, ["/bin/sh"], tty=True, stdin=True)
    # The SDK hands the connection out as a read-only file object (socket.SocketIO on a unix
    # socket); a socket of our own on a duplicate of its descriptor reads and writes it.
    stream = api.exec_start(created["Id"], socket=True, tty=True)
    raw = socket.fromfd(stream.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(10)
    seen = b""
    while b"# " not in seen:  # the shell's prompt: it is ready for keys
        seen += raw.recv(65536)
    times = []
    for i in range(KEYS):
        key = ALPHABET[i % len(ALPHABET)].encode()
        t0 = time.perf_counter()
        raw.sendall(key)
        while key not in raw.recv(65536):
            pass
        times.append(time.perf_counter() - t0)
    raw.sendall(b"\x15exit\n")
    raw.close()
    stream.close()
    api.close()
    return times


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(Path(tmp), instance) as server, aiohttp.ClientSession() as http:
            token = await local_admin_token(server.settings)
            headers = {"Authorization": f"Bearer {token}"}
            async with CorralClient(server.url, token) as client:
                made = dict(await client.create_container("corral/busybox", wait=True))
            sdk = await asyncio.to_thread(_sdk_round_trips, made["id"])
            async with http.ws_connect(
                f"{server.url}/ws/terminal/{made['id']}", headers=headers
            ) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "connected"
                ws_times = await ws_round_trips(ws)

    ratio = percentile(ws_times, 50) / percentile(sdk, 50)
    ratio99 = percentile(ws_times, 99) / percentile(sdk, 99)
    print("keystroke echo round trip (busybox sh in a runsc sandbox)")
    print(f"  docker exec TTY, direct : {summary(sdk)}")
    print(f"  Corral terminal WS      : {summary(ws_times)}")
    print(f"  ratio WS/direct: p50 {ratio:.2f}, p99 {ratio99:.2f}")
    return {"keystroke_p50_ms": percentile(ws_times, 50) * 1000, "keystroke_ratio": ratio}


if __name__ == "__main__":
    asyncio.run(run())
