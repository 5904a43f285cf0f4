"""A 1 GiB upload and download pass through the backend in bounded memory: its resident set
(read from /proc of a ``corral serve`` process, devkit.backend_process) grows by less than
64 MB, and the bytes come back intact.

The sampler is a thread reading /proc/<pid>/status every 20 ms while the transfers run: a
measurement, not a synchronisation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.admin import Admin
from backend.settings import load_settings
from corral.client import CorralClient
from devkit.backend_process import BackendProcess

GIB = 1 << 30
LIMIT = 64 << 20


@pytest.fixture
def backend(tmp_path: Path, instance: str, settings: object) -> Iterator[BackendProcess]:
    """``corral serve`` on the ``settings`` fixture's data directory (whose teardown removes
    what it made on the engine)."""
    proc = BackendProcess(tmp_path / "data", instance)
    yield proc
    proc.stop()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Peak:
    """The highest resident set seen while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.value = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.value = max(self.value, rss(self.pid))

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _write_gib(path: Path) -> str:
    block = os.urandom(1 << 20)
    digest = hashlib.md5()
    with path.open("wb") as handle:
        for index in range(GIB >> 20):
            piece = index.to_bytes(8, "big") + block[8:]
            handle.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.timeout(120)
async def test_a_gib_up_and_down_grows_the_backend_by_less_than_64_mb(
    backend: BackendProcess, tmp_path: Path
) -> None:
    async with Admin(load_settings(data_dir=backend.data_dir)) as admin:
        token = await admin.local_admin_jwt()
    await asyncio.to_thread(backend.start)
    assert backend.pid is not None
    source, back = tmp_path / "gib.bin", tmp_path / "back.bin"
    expected = await asyncio.to_thread(_write_gib, source)
    (tmp_path / "warm").write_bytes(os.urandom(4 << 20))
    async with CorralClient(backend.url, token) as client:
        made = await client.create_container("corral/busybox", name="gib", disk_mb=2048, wait=True)
        ident = made["db_id"]
        # Warm up (first imports, buffers), then measure from there.
        await client.upload_file(ident, "/home/user", tmp_path / "warm")
        await client.download_file(ident, "/home/user/warm", tmp_path / "warm.back")
        base = rss(backend.pid)
        with Peak(backend.pid) as up:
            answer = await client.upload_file(ident, "/home/user", source)
        assert answer["size"] == GIB
        with Peak(backend.pid) as down:
            assert await client.download_file(ident, "/home/user/gib.bin", back) == GIB
    assert await asyncio.to_thread(_md5, back) == expected
    growth = max(up.value, down.value) - base
    print(
        f"backend RSS {base >> 20} MB; peak growth up {(up.value - base) >> 20} MB, "
        f"down {(down.value - base) >> 20} MB"
    )
    assert growth < LIMIT, f"RSS grew by {growth >> 20} MB"
