"""The console's speed, headless (Textual's test driver), in one run:

- launch to first paint with 1,000 containers, against a real backend process holding them
  (target <= 1.5 s), with the same launch over an empty backend as the baseline;
- an event arriving to its row being repainted (target p99 <= 50 ms), with 1,000 rows in the
  table, against the same with 10 rows as the baseline; and again with the stats stream
  updating 500 running rows every second (several times the backend's default rate);
- the CPU an idle console uses with 50 running sandboxes and the stats stream on, over 60 s,
  in a process of its own (target under 3 % of one core), against a bare Python process's
  CPU over the same minute.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import percentile, seed_users, server_process, summary, verdict
from devkit.fake_api import FakeApi, container
from devkit.waiting import wait_for
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.messages import BackendEvent, StatsUpdate
from tui.widgets.table import ContainerTable

ROWS = 1000
LAUNCHES = 3
EVENTS = 300
SIZE = (140, 40)


def _frames(app: CorralApp) -> list[float]:
    """Record the time of every frame the app sends to its (headless) terminal."""
    frames: list[float] = []
    display = app._display

    def painted(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None:
            frames.append(time.perf_counter())

    app._display = painted  # type: ignore[method-assign]
    return frames


async def _launch(url: str, token: str, rows: int, workdir: Path) -> float:
    """Seconds from creating the app to the first frame that shows every row."""
    t0 = time.perf_counter()
    app = CorralApp(url, token, config=ConsoleConfig(path=workdir / "console.toml"))
    frames = _frames(app)
    async with app.run_test(size=SIZE):
        table = app.main_screen.query_one(ContainerTable)
        await wait_for(
            lambda: table.row_count >= rows and app.main_screen.header.connection == "connected",
            30,
            0.001,
            "every row, connected",
        )
        return await _frame_after(frames, time.perf_counter()) - t0


async def _frame_after(frames: list[float], since: float) -> float:
    """The time of the first frame sent at or after ``since``."""
    await wait_for(lambda: bool(frames) and frames[-1] >= since, 10, 0.001, "a frame")
    return frames[-1]


async def _shown(table: ContainerTable, key: str, status: str) -> None:
    """Until the row's status cell says ``status`` (checked on every turn of the loop)."""
    await wait_for(lambda: status in table.cell_text(key, "status"), 10, 0, "the row")


async def first_paint() -> tuple[list[float], list[float]]:
    results: dict[int, list[float]] = {}
    for rows in (0, ROWS):
        with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
            data = Path(tmp)
            token = (await seed_users(data, {"bench": rows}))["bench"]
            async with server_process(data, f"bench-{uuid.uuid4().hex[:8]}") as server:
                results[rows] = [
                    await _launch(server.url, token, rows, data) for _ in range(LAUNCHES)
                ]
    return results[0], results[ROWS]


async def _stats_load(app: CorralApp, fleet: list[dict[str, Any]]) -> None:
    """Usage samples for every other row, once a second, as the stats stream delivers them."""
    tick = 0
    while True:
        tick += 1
        samples = [
            {
                "id": c["id"],
                "db_id": c["db_id"],
                "cpu_percent": float((i * 7 + tick) % 100),
                "memory_used_mb": float(64 + (i + tick) % 512),
                "memory_limit_mb": 1024,
                "pids": 3,
            }
            for i, c in enumerate(fleet[::2])
        ]
        app.main_screen.post_message(StatsUpdate(samples))
        await asyncio.sleep(1.0)  # the feed's own rate, not a synchronisation


async def _repaints(rows: int, workdir: Path, stats: bool = False) -> list[float]:
    fleet = [container(i, f"c-{i:04d}", "stopped") for i in range(1, rows + 1)]
    api = FakeApi(fleet=fleet, events=[])
    app = CorralApp(api.server, "", config=ConsoleConfig(path=workdir / "c.toml"), api=api)  # type: ignore[arg-type]
    times: list[float] = []
    frames = _frames(app)
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ContainerTable)
        while table.row_count < rows:
            await pilot.pause(0.005)
        feeder = asyncio.ensure_future(_stats_load(app, fleet)) if stats else None
        for n in range(EVENTS):
            target: dict[str, Any] = dict(fleet[(n * 37) % rows])
            status = "running" if n % 2 == 0 else "stopped"
            target["status"] = status
            message = {
                "type": f"container_{'started' if status == 'running' else 'stopped'}",
                "container": target,
                "seq": n + 2,
                "timestamp": "2026-11-28T10:00:00.000Z",
            }
            t0 = time.perf_counter()
            app.main_screen.post_message(BackendEvent(message))
            await _shown(table, target["db_id"], status)
            times.append(await _frame_after(frames, time.perf_counter()) - t0)
        if feeder is not None:
            feeder.cancel()
    return times


async def run() -> dict[str, float]:
    empty, full = await first_paint()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        small = await _repaints(10, Path(tmp))
        big = await _repaints(ROWS, Path(tmp))
        loaded = await _repaints(ROWS, Path(tmp), stats=True)
    idle = await idle_cpu()
    paint = statistics.median(full)
    p99 = percentile(big, 99) * 1000
    print("console launch to first paint (headless, backend in its own process)")
    print(f"  empty backend (baseline): {summary(empty)}")
    print(f"  {ROWS} containers         : {summary(full)}")
    print(
        f"  {verdict(paint <= 1.5)} median {paint:.2f} s (target <= 1.5 s); "
        f"ratio to empty {paint / statistics.median(empty):.2f}"
    )
    print("event arriving to its row repainted")
    print(f"  10 rows (baseline): {summary(small)}")
    print(f"  {ROWS} rows       : {summary(big)}")
    print(
        f"  {verdict(p99 <= 50)} p99 {p99:.1f} ms (target <= 50 ms); ratio p50 to 10 rows "
        f"{percentile(big, 50) / percentile(small, 50):.2f}"
    )
    loaded_p99 = percentile(loaded, 99) * 1000
    print(f"  {ROWS} rows, stats for 500 every second: {summary(loaded)}")
    print(f"  {verdict(loaded_p99 <= 50)} p99 {loaded_p99:.1f} ms under stats load")
    print(f"idle console, {IDLE_SANDBOXES} running sandboxes, stats stream on, {IDLE_S:.0f} s")
    print(f"  bare Python process (baseline): {idle['baseline']:.2f} % of one core")
    print(
        f"  {verdict(idle['console'] < 3)} console: {idle['console']:.2f} % of one core "
        "(target under 3 %)"
    )
    return {
        "first_paint_s": paint,
        "repaint_p99_ms": p99,
        "repaint_stats_p99_ms": loaded_p99,
        "idle_cpu_percent": idle["console"],
    }


IDLE_SANDBOXES = 50
IDLE_S = 60.0


async def _probe(*args: str) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.console_idle_probe", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return float(out.decode().strip().splitlines()[-1])


async def idle_cpu() -> dict[str, float]:
    """The console's own CPU over a quiet minute with live sandboxes, in a process of its own
    (the backend runs in another)."""
    from corral.client import CorralClient

    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data = Path(tmp)
        (data / "config.toml").write_text(
            f"[tiers.enterprise]\ncontainers = {IDLE_SANDBOXES + 5}\n"
        )
        token = (await seed_users(data, {"idle": 0}))["idle"]
        async with server_process(data, f"bench-{uuid.uuid4().hex[:8]}") as server:
            async with CorralClient(server.url, token) as client:
                await asyncio.gather(
                    *(
                        client.create_container("corral/busybox", wait=True, memory_mb=256)
                        for _ in range(IDLE_SANDBOXES)
                    )
                )
            console, baseline = await asyncio.gather(
                _probe(server.url, token, str(IDLE_SANDBOXES), str(IDLE_S), tmp),
                _probe("--bare", str(IDLE_S)),
            )
    return {"console": console, "baseline": baseline}


if __name__ == "__main__":
    asyncio.run(run())
