"""An agent's terminal through the replica holding it against through another replica (relayed
over PostgreSQL's NOTIFY, ``backend.agents.relay``), in the same run, on the same agent.

- Two ``corral serve`` replicas (their own processes) on a fresh database of the throwaway
  PostgreSQL; ``corral agent`` on this machine dials in to A.
- Keystroke round trip: one character typed, until its echo comes back; 200 keys through A's
  terminal (the baseline), then 200 through B's, alternating in blocks of 50.
- Output: ``seq 1 400000`` (2.7 MB) printed by the agent's shell, from the command sent to the
  last line received, one uncounted round each, then three on each side, each side going first
  in turn.
- Targets: a relayed keystroke p99 <= 50 ms (typing feels local), relayed output at least half
  the direct throughput.
- Clean-up: the agent and both replicas stopped, the database dropped, their folders removed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from backend.admin import Admin
from backend.settings import load_settings
from benchmarks.bench_terminal import ws_round_trips
from benchmarks.common import percentile, summary, verdict
from corral.client import CorralClient
from corral.client.terminal import open_terminal
from devkit.backend_process import BackendProcess
from devkit.engine import clean_up
from devkit.postgres import Postgres, database_of
from devkit.waiting import wait_for

KEYS = 200
BLOCK = 50
LINES = 400_000
ROUNDS = 3
TARGET_KEY_P99_MS = 50.0
TARGET_OUTPUT_RATIO = 0.5


async def _ready(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Until the shell has answered a command: its prompt is out of the way of the echoes."""
    await ws.send_json({"type": "input", "data": "echo ready-$((20+22))\n"})
    seen = ""
    while "ready-42" not in seen:
        msg = await ws.receive_json(timeout=10)
        if msg["type"] == "output":
            seen = (seen + msg["data"])[-256:]


async def _output(ws: aiohttp.ClientWebSocketResponse) -> tuple[float, int]:
    """Seconds from the command to the line after its output, and the bytes received."""
    marker = "printed-42"  # not in the command's echo, which says $((40+2))
    got, tail = 0, ""
    t0 = time.perf_counter()
    await ws.send_json({"type": "input", "data": f"seq 1 {LINES}; echo printed-$((40+2))\n"})
    while True:
        msg = await ws.receive_json(timeout=60)
        if msg["type"] != "output":
            continue
        got += len(msg["data"])
        tail = (tail + msg["data"])[-64:]
        if marker in tail:
            return time.perf_counter() - t0, got


async def run() -> dict[str, float]:
    postgres = Postgres.ensure()
    url = postgres.create_database()
    try:
        with tempfile.TemporaryDirectory(prefix="corral-bench-relay-") as tmp:
            instance = f"bench-{uuid.uuid4().hex[:10]}"
            env = {"CORRAL_DATABASE_URL": url}
            a = BackendProcess(Path(tmp) / "a", instance, env)
            b = BackendProcess(Path(tmp) / "b", instance, env)
            try:
                await asyncio.to_thread(a.start)
                await asyncio.to_thread(b.start)
                return await _measure(a, b, url)
            finally:
                for replica in (a, b):
                    await asyncio.to_thread(replica.stop)
                clean_up(instance, Path(tmp))
    finally:
        postgres.drop_database(database_of(url))


async def _measure(a: BackendProcess, b: BackendProcess, url: str) -> dict[str, float]:
    async with Admin(load_settings(data_dir=a.data_dir, database_url=url)) as tools:
        await tools.add_user("bench", "bench-password", "pro", False)
        token, _ = await tools.issue_token("bench", ["read", "write"], "bench", None)
    async with CorralClient(a.url, token) as on_a, CorralClient(b.url, token) as on_b:
        agent_token = (await on_a.create_token("relay-bench", ["agent"]))["token"]
        command = [sys.executable, "-m", "corral.cli", "agent", "--server", a.url]
        agent = subprocess.Popen(
            [*command, "--token", agent_token, "--name", "bench"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            async def online() -> bool:
                listing = await on_b.list_containers()
                return any(c["status"] == "running" for c in listing["containers"])

            await wait_for(online, 30, what="the agent to dial in")
            ident = (await on_b.list_containers())["containers"][0]["id"]
            direct = await open_terminal(on_a, ident, 120, 40)
            relayed = await open_terminal(on_b, ident, 120, 40)
            for ws in (direct, relayed):
                await _ready(ws)
            keys: dict[str, list[float]] = {"a": [], "b": []}
            for _ in range(KEYS // BLOCK):
                keys["a"] += await ws_round_trips(direct, BLOCK)
                keys["b"] += await ws_round_trips(relayed, BLOCK)
            output: dict[str, list[float]] = {"a": [], "b": []}
            size = 0
            sides = [("a", direct), ("b", relayed)]
            for _, ws in sides:  # one uncounted round each: the first run of seq is slower
                await _output(ws)
            for n in range(ROUNDS):
                for side, ws in sides if n % 2 == 0 else sides[::-1]:  # each goes first in turn
                    seconds, size = await _output(ws)
                    output[side].append(size / seconds / 1e6)
            await direct.close()
            await relayed.close()
        finally:
            agent.kill()
            agent.wait()

    key_ratio = percentile(keys["b"], 50) / percentile(keys["a"], 50)
    key_p99 = percentile(keys["b"], 99) * 1000
    out_a, out_b = sorted(output["a"])[ROUNDS // 2], sorted(output["b"])[ROUNDS // 2]
    out_ratio = out_b / out_a
    print("an agent's terminal: through the replica holding it (A) vs relayed through B")
    print(f"  keystroke echo, through A : {summary(keys['a'])}")
    print(f"  keystroke echo, through B : {summary(keys['b'])}")
    print(f"  output ({size / 1e6:.1f} MB), median MB/s: A {out_a:.2f}, B {out_b:.2f}")
    rounds = ", ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(output["a"], output["b"], strict=True))
    print(f"    each round, A/B MB/s: {rounds}")
    ok = key_p99 <= TARGET_KEY_P99_MS and out_ratio >= TARGET_OUTPUT_RATIO
    print(
        f"  {verdict(ok)} relayed keystroke p99 {key_p99:.1f} ms (target <= "
        f"{TARGET_KEY_P99_MS:.0f}); ratio B/A keystroke p50 {key_ratio:.2f}; output "
        f"throughput B/A {out_ratio:.2f} (target >= {TARGET_OUTPUT_RATIO})"
    )
    return {
        "relay_key_p50_ms": percentile(keys["b"], 50) * 1000,
        "relay_key_ratio": key_ratio,
        "relay_output_ratio": out_ratio,
    }


if __name__ == "__main__":
    asyncio.run(run())
