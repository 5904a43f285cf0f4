"""The console's speed, headless (Textual's test driver), in one run:

- launch to first paint with 1,000 containers, against a real backend process holding them
  (target <= 1.5 s), with the same launch over an empty backend as the baseline;
- an event arriving to its row being repainted (target p99 <= 50 ms), with 1,000 rows in the
  table, against the same with 10 rows as the baseline.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import percentile, seed_users, server_process, summary, verdict
from tests.console.fake_api import FakeApi, container
from tui.app import CorralApp
from tui.config import ConsoleConfig
from tui.messages import BackendEvent
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
        while table.row_count < rows or app.main_screen.header.connection != "connected":
            await asyncio.sleep(0.001)
        loaded = time.perf_counter()
        while not frames or frames[-1] < loaded:
            await asyncio.sleep(0.001)
        return frames[-1] - t0


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


async def _repaints(rows: int, workdir: Path) -> list[float]:
    fleet = [container(i, f"c-{i:04d}", "stopped") for i in range(1, rows + 1)]
    api = FakeApi(fleet=fleet, events=[])
    app = CorralApp(api.server, "", config=ConsoleConfig(path=workdir / "c.toml"), api=api)  # type: ignore[arg-type]
    times: list[float] = []
    frames = _frames(app)
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ContainerTable)
        while table.row_count < rows:
            await pilot.pause(0.005)
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
            while status not in str(table.get_cell(target["db_id"], "status")):
                await asyncio.sleep(0)
            changed = time.perf_counter()
            while not frames or frames[-1] < changed:  # the first frame after the change
                await asyncio.sleep(0.001)
            times.append(frames[-1] - t0)
    return times


async def run() -> dict[str, float]:
    empty, full = await first_paint()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        small = await _repaints(10, Path(tmp))
        big = await _repaints(ROWS, Path(tmp))
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
    return {"first_paint_s": paint, "repaint_p99_ms": p99}


if __name__ == "__main__":
    asyncio.run(run())
