"""``python -m benchmarks.console_idle_probe URL TOKEN ROWS SECONDS WORKDIR``: the console,
headless, in a process of its own; once its rows are in and the first usage samples have
arrived, it sits idle for SECONDS and prints the CPU it used, as % of one core. With ``--bare``
(and SECONDS) it prints what a bare Python process uses over the same time: the baseline."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tui.app import CorralApp
from tui.config import ConsoleConfig


async def console(url: str, token: str, rows: int, seconds: float, workdir: str) -> float:
    app = CorralApp(url, token, config=ConsoleConfig(path=Path(workdir) / "console.toml"))
    async with app.run_test(size=(140, 40)) as pilot:
        while app.main_screen.table.row_count < rows:
            await pilot.pause(0.05)
        await pilot.pause(3)  # settle: the first usage samples arrive
        start = time.process_time()
        await asyncio.sleep(seconds)  # the idle minute being measured
        return 100 * (time.process_time() - start) / seconds


def bare(seconds: float) -> float:
    start = time.process_time()
    time.sleep(seconds)
    return 100 * (time.process_time() - start) / seconds


if __name__ == "__main__":
    if sys.argv[1] == "--bare":
        print(bare(float(sys.argv[2])))
    else:
        url, token, rows, seconds, workdir = sys.argv[1:6]
        print(asyncio.run(console(url, token, int(rows), float(seconds), workdir)))
