"""``python -m benchmarks [name ...]``: run every benchmark (or the named ones) in one process."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys

BENCHMARKS = [
    "bench_lifecycle",
    "bench_engines",
    "bench_list",
    "bench_recreate",
    "bench_terminal",
    "bench_events",
    "bench_replicas",
    "bench_agent_relay",
    "bench_roles",
    "bench_console",
    "bench_stats",
    "bench_load",
    "bench_files",
]


async def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n== {name} ==")
        await module.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(sys.argv[1:]))
