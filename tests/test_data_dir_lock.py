"""One backend per data directory (issue 11, item 5): whoever serves it holds a lock there and
publishes its address; a local command finds it and talks to it, ``corral serve`` refuses, and a
killed holder leaves nothing stale behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backend.data_dir_lock import DataDirBusy, DataDirLock, is_served, published_address
from backend.server import EmbeddedBackend
from backend.settings import Settings, load_settings
from devkit.backend_process import BackendProcess, free_port
from tests.test_cli import _clean_env, corral


def _local(settings: Settings, instance: str) -> list[str]:
    """``--data-dir`` of the test's data directory, labelled with the test's instance so the
    fixture removes what the commands make."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "instance-id").write_text(instance + "\n")
    return ["--data-dir", str(settings.data_dir)]


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    assert is_served(tmp_path) and published_address(tmp_path) is None  # starting
    with pytest.raises(DataDirBusy) as starting:
        DataDirLock(tmp_path).acquire(patience_s=0)
    assert starting.value.pid == os.getpid() and starting.value.address is None
    first.publish("http://127.0.0.1:1234")
    with pytest.raises(DataDirBusy) as busy:
        DataDirLock(tmp_path).acquire(patience_s=0)
    assert busy.value.address is not None
    assert (busy.value.address.url, busy.value.address.pid) == (
        "http://127.0.0.1:1234",
        os.getpid(),
    )
    assert f"process {os.getpid()} at http://127.0.0.1:1234" in str(busy.value)
    first.release()
    assert not is_served(tmp_path) and published_address(tmp_path) is None
    assert not (tmp_path / "backend.json").exists()
    second = DataDirLock(tmp_path)
    second.acquire()
    second.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from backend.data_dir_lock import DataDirLock
                lock = DataDirLock(Path({str(tmp_path)!r}))
                lock.acquire()
                lock.publish("http://127.0.0.1:9")
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        address = published_address(tmp_path)
        assert address is not None and address.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # The kernel dropped the lock; the address file is still there, and is not believed.
    assert json.loads((tmp_path / "backend.json").read_text())["pid"] == holder.pid
    assert not is_served(tmp_path) and published_address(tmp_path) is None
    lock = DataDirLock(tmp_path)
    lock.acquire(patience_s=0)
    assert not (tmp_path / "backend.json").exists()  # the new holder withdrew the dead one's
    lock.release()


async def test_a_second_command_finds_the_first_and_its_events_show(
    settings: Settings, instance: str
) -> None:
    local = _local(settings, instance)
    # The first holder: `corral events` with no server, as the console would be.
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        *local,
        "events",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    assert follower.stdout is not None
    try:
        async with asyncio.timeout(60):
            first = json.loads(await follower.stdout.readline())
        assert first["type"] == "list" and first["container"]["count"] == 0
        address = published_address(settings.data_dir)
        assert address is not None and address.pid == follower.pid

        made = await corral(*local, "create", "--name", "shared", "--wait", "--json")
        assert made.code == 0, made.err
        stopped = await corral(*local, "stop", "shared")
        assert stopped.code == 0, stopped.err
        seen: list[dict[str, object]] = []
        async with asyncio.timeout(30):  # the first backend shows the second command's events
            while not seen or seen[-1]["type"] != "container_stopped":
                seen.append(json.loads(await follower.stdout.readline()))
        types = [m["type"] for m in seen]
        assert types[0] == "container_created" and "container_started" in types
        assert [m["seq"] for m in seen] == list(range(1, len(seen) + 1))
        listed = await corral(*local, "ls", "--json")
        assert [c["name"] for c in listed.json()["containers"]] == ["shared"]
        # Still one backend: the same holder, and its log is the only writer.
        assert published_address(settings.data_dir) == address
    finally:
        follower.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            code = await follower.wait()
    assert code == 0
    assert not is_served(settings.data_dir)  # the holder let go when it stopped
    assert (await corral(*local, "rm", "shared")).code == 0


async def test_serve_twice_refuses_naming_the_first(settings: Settings, instance: str) -> None:
    _local(settings, instance)
    first = BackendProcess(settings.data_dir, instance)
    await asyncio.to_thread(first.start)
    try:
        again = await corral(
            "--data-dir", str(settings.data_dir), "serve", "--port", str(free_port())
        )
        assert again.code == 1
        assert f"already served by process {first.pid} at {first.url}" in again.err
        assert f"corral --server {first.url}" in again.err
        assert "Traceback" not in again.err
        local = await corral("--data-dir", str(settings.data_dir), "ls", "--json")
        assert local.code == 0, local.err
    finally:
        await asyncio.to_thread(first.kill)
    # Killed: the next serve takes the data directory over at once.
    second = BackendProcess(settings.data_dir, instance)
    await asyncio.to_thread(second.start)
    try:
        address = published_address(settings.data_dir)
        assert address is not None and address.url == second.url
    finally:
        await asyncio.to_thread(second.stop)


async def test_the_console_opens_on_the_running_backend(
    settings: Settings, instance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``corral`` with no server: on the backend already serving the data directory, else on one
    it embeds (holding the lock while it runs). The Textual app itself is stubbed out."""
    from corral import cli

    _local(settings, instance)
    opened: list[tuple[str, bool, str | None, int | None]] = []

    class StubApp:
        def __init__(
            self, server: str, token: str, *, embedded: bool = False, **kw: object
        ) -> None:
            self.args = (server, embedded, kw.get("startup_error"))

        def run(self) -> None:
            address = published_address(settings.data_dir)
            opened.append((*self.args, address.pid if address else None))  # type: ignore[arg-type]

    monkeypatch.setattr("tui.app.CorralApp", StubApp)
    monkeypatch.setattr(cli, "_log_to_file", lambda path: None)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("CORRAL_SERVER", "CORRAL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    console = ["--data-dir", str(settings.data_dir)]

    holder = EmbeddedBackend(load_settings(data_dir=settings.data_dir, port=0))
    url = await asyncio.to_thread(holder.start)
    try:
        assert await asyncio.to_thread(cli.main, console) == 0
    finally:
        await asyncio.to_thread(holder.stop)
    assert opened == [(url, False, None, os.getpid())]

    assert await asyncio.to_thread(cli.main, console) == 0
    embedded_url, embedded, error, pid = opened[1]
    assert embedded and error is None and pid == os.getpid() and embedded_url != url
    assert not is_served(settings.data_dir)
