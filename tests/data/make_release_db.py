"""Make ``release-0.1.db``: a database written by the last release without migrations.

Run it with that release's code (commit 8333330, the main branch before Alembic), from its
worktree: ``.venv/bin/python tests/data/make_release_db.py tests/data/release-0.1.db``. It serves
a real backend on a temporary data directory, makes users, a token, containers and a kept volume
through the API as a user would, then removes what it made on the engine and writes the database
as one compact file (``VACUUM INTO``). tests/test_migrations.py opens that file with today's code.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path

import docker
from aiohttp import web

from backend.admin import Admin
from backend.app import create_app
from backend.settings import load_settings
from corral.client import CorralClient

INSTANCE = "release-db"
PASSWORD = "release-password"  # ada's password
TOKEN_FILE = "release-0.1.token"  # ada's API token, in plain text beside the database


async def _populate(data_dir: Path) -> str:
    settings = load_settings(data_dir=data_dir, instance_label=INSTANCE, disk_quotas="none", port=0)
    async with Admin(settings) as admin:
        await admin.add_user("ada", PASSWORD, "free", admin=False)
        await admin.add_user("root", PASSWORD, "enterprise", admin=True)
        token, _ = await admin.issue_token("ada", ["read", "write"], "release", None)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with CorralClient(f"http://{host}:{port}") as client:
            await client.login("ada", PASSWORD)
            kept = await client.create_container(
                "corral/busybox",
                name="notes",
                memory_mb=256,
                environment={"EDITOR": "vi"},
                labels={"project": "release"},
                wait=True,
            )
            await client.stop_container(kept["id"])
            await client.create_container("corral/busybox", name="busy", wait=True)
            gone = await client.create_container("corral/busybox", name="gone", wait=True)
            await client.delete_container(gone["id"], keep_volume=True)
        async with CorralClient(f"http://{host}:{port}") as guest:
            await guest.guest_login("visitor")
    finally:
        await runner.cleanup()
    return token


def _remove_engine_objects() -> None:
    client = docker.from_env()
    label = f"corral.instance={INSTANCE}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"label": label}):
        volume.remove(force=True)
    client.close()


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            token = asyncio.run(_populate(Path(tmp)))
        finally:
            _remove_engine_objects()
        out.unlink(missing_ok=True)
        with sqlite3.connect(Path(tmp) / "corral.db") as db:
            db.execute("VACUUM INTO ?", (str(out),))
    out.with_name(TOKEN_FILE).write_text(token + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
