"""The cost of live usage: the backend's CPU with 50 running sandboxes and one stats subscriber,
against the same backend and sandboxes with no subscriber, measured in the same run.

The backend runs as its own ``corral serve`` process; its CPU is its process time (user +
system, every thread) over each window, as a percent of one core. With a subscriber the
backend keeps 50 engine stats streams open (a sample a second each) and sends the subscriber
one message every ``stats_interval_s`` (2 s). The engine's own CPU (dockerd) is shown beside,
for context: the streams cost it too. The subscriber is this process, through corral.client.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import server_process
from corral.client import CorralClient
from corral.local import local_admin_token

SANDBOXES = 50
WINDOW_S = 60.0
CREATE_AT_ONCE = 4


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dockerd_pid() -> int | None:
    try:
        return int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


async def window(pids: dict[str, int | None]) -> dict[str, float]:
    """Percent of one core each process used over WINDOW_S."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    start = time.monotonic()
    await asyncio.sleep(WINDOW_S)  # the measured window
    elapsed = time.monotonic() - start
    return {
        name: (cpu_seconds(pid) - before[name]) / elapsed * 100
        for name, pid in pids.items()
        if pid and name in before
    }


async def make_sandboxes(client: CorralClient) -> None:
    gate = asyncio.Semaphore(CREATE_AT_ONCE)

    async def one(i: int) -> None:
        async with gate:
            await client.create_container(
                "corral/busybox",
                name=f"s{i:02d}",
                memory_mb=256,
                cpu_shares=250,
                disk_mb=1024,
                wait=True,
            )

    await asyncio.gather(*(one(i) for i in range(SANDBOXES)))


async def subscribed_window(
    client: CorralClient, pids: dict[str, int | None]
) -> tuple[dict[str, float], dict[str, int]]:
    """The window with one subscriber reading every message; also how many it got."""
    received = {"messages": 0, "samples": 0}
    async with client.stats() as stream:
        async with asyncio.timeout(60):  # until every sandbox has a sample
            async for message in stream:
                if len(message["stats"]) == SANDBOXES:
                    break

        async def read() -> None:
            async for message in stream:
                received["messages"] += 1
                received["samples"] += len(message["stats"])

        reader = asyncio.create_task(read())
        try:
            usage = await window(pids)
        finally:
            reader.cancel()
    return usage, received


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        # 50 sandboxes: more than a tier allows by default.
        (data_dir / "config.toml").write_text(f"[tiers.enterprise]\ncontainers = {SANDBOXES + 5}\n")
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server:
            token = await local_admin_token(server.settings)
            async with CorralClient(server.url, token) as client:
                t0 = time.monotonic()
                await make_sandboxes(client)
                print(f"{SANDBOXES} busybox sandboxes running ({time.monotonic() - t0:.0f} s)")
                pids = {"backend": server.pid, "dockerd": dockerd_pid()}
                idle = await window(pids)
                busy, received = await subscribed_window(client, pids)

    per_message = received["samples"] / max(1, received["messages"])
    print(f"CPU over {WINDOW_S:.0f} s windows, percent of one core")
    for label, usage in (("no subscriber ", idle), ("one subscriber", busy)):
        engine = f"{usage['dockerd']:5.2f} %" if "dockerd" in usage else "n/a"
        print(f"  {label}: backend {usage['backend']:5.2f} %   dockerd {engine}")
    print(f"  the subscriber got {received['messages']} messages ({per_message:.1f} samples each)")
    return {
        "stats_backend_cpu_idle_pct": idle["backend"],
        "stats_backend_cpu_subscribed_pct": busy["backend"],
    }


if __name__ == "__main__":
    asyncio.run(run())
