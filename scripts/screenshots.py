"""``just screenshots``: pictures of the real console, on a real backend and engine.

It starts a backend on a throwaway data directory, makes a few sandboxes and some history (a stop,
a resize, a container removed behind Corral's back), drives the console with Textual's Pilot, saves
SVG screenshots, and turns them into PNGs with headless Chromium (which renders Textual's SVGs
faithfully). Everything it made is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.widgets import Input  # noqa: E402

from backend.admin import Admin  # noqa: E402
from backend.auth.tokens import JwtSigner, load_or_create_secret  # noqa: E402
from backend.server import EmbeddedBackend  # noqa: E402
from backend.settings import load_settings  # noqa: E402
from corral.client import CorralClient  # noqa: E402
from devkit.engine import unmount_volumes  # noqa: E402
from devkit.users import add_user  # noqa: E402
from devkit.waiting import wait_for  # noqa: E402
from tui.app import CorralApp  # noqa: E402
from tui.config import ConsoleConfig  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = (140, 36)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def to_png(svg: Path) -> Path:
    """Render an SVG screenshot to PNG at its own size (2x for sharpness)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is needed to render the screenshots: apt-get install chromium")
    text = svg.read_text()
    match = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', text)
    width, height = (float(match.group(1)), float(match.group(2))) if match else (1400, 900)
    page = svg.with_suffix(".html")
    page.write_text(
        "<html><body style='margin:0;background:#000'>"
        f"<img src='{svg.name}' width='{width:.0f}' height='{height:.0f}'></body></html>"
    )
    png = svg.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width:.0f},{height:.0f}",
                "--force-device-scale-factor=2",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    page.unlink()
    return png


async def history(client: CorralClient) -> None:
    """A few sandboxes with some history, so the pictures show a console in use."""
    made = {}
    for name, body in (
        ("api-server", {"memory_mb": 2048, "cpu_shares": 2000, "disk_mb": 4096}),
        ("worker-1", {}),
        ("scratch", {"memory_mb": 512}),
        ("old-db", {}),
        ("ci-runner", {"cpu_shares": 1500}),
        ("notes", {}),
    ):
        made[name] = await client.create_container("corral/busybox", name=name, wait=True, **body)
    made["py-lab"] = await client.create_container(
        "corral/debian:bookworm", name="py-lab", role="python", wait=True, memory_mb=1024
    )
    script = (
        'for i in 1 2 3; do echo "GET /items/$i 200 ($((i * 7)) ms)"; done >/proc/1/fd/1; '
        "echo 'worker: queue drained' >/proc/1/fd/1"
    )
    subprocess.run(
        ["docker", "exec", made["api-server"]["id"], "sh", "-c", script],
        check=True,
        capture_output=True,
    )
    await files(client, made["api-server"]["id"])
    await client.delete_container(made["notes"]["id"], keep_volume=True)
    await client.stop_container(made["scratch"]["id"])
    await client.update_settings(made["worker-1"]["id"], memory_mb=1536)
    subprocess.run(["docker", "rm", "-f", made["old-db"]["id"]], check=True, capture_output=True)

    async def noticed() -> bool:  # the watcher notices within a second
        return (await client.get_container(made["old-db"]["db_id"]))["status"] == "missing"

    await wait_for(noticed, 10, 0.05, "old-db missing")


async def files(client: CorralClient, ident: str) -> None:
    """A home folder with something in it, for the files view."""
    with tempfile.TemporaryDirectory(prefix="corral-shots-files-") as tmp:
        for name, size in (("access.log", 48_213), ("dump 2026-11-30.sql", 3_481_600)):
            local = Path(tmp) / name
            local.write_bytes(b"x" * size)
            await client.upload_file(ident, "/home/user", local)
    for folder in ("/home/user/app/static", "/home/user/backups"):
        await client.mkdir(ident, folder)


async def shoot(client: CorralClient, url: str, token: str, workdir: Path) -> list[Path]:
    """Open the console first, then make the history, so its event log fills as it happens."""
    app = CorralApp(url, token, config=ConsoleConfig(path=workdir / "console.toml"))
    shots: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        await history(client)

        def shown() -> bool:
            statuses = {c.get("name"): c.get("status") for c in app.fleet.items.values()}
            return statuses.get("old-db") == "missing" and bool(app.main_screen.me and app.images)

        await wait_for(shown, 10, 0.05, "the history on screen", pause=pilot.pause)
        await pilot.pause(0.5)

        def save(name: str) -> None:
            shots.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(OUT))))

        save("main")
        await pilot.press("e")
        await pilot.pause(0.3)
        app.screen.query_one("#memory_mb", Input).value = "9000"
        await pilot.pause(0.3)
        save("settings")
        await pilot.press("escape")
        await pilot.press("n")
        await pilot.pause(0.3)
        save("create")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save("help")
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"sto")
        await pilot.pause(0.5)
        save("palette")
        await pilot.press("escape")
        await pilot.press("g", "l")  # api-server is the first row
        await pilot.pause(1.0)
        save("logs")
        await pilot.press("escape")
        await pilot.press("v")
        await pilot.pause(1.0)
        save("volumes")
        await pilot.press("escape")
        await pilot.press("g", "f")
        await pilot.pause(1.0)
        save("files")
        await pilot.press("escape")
    return shots


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="corral-shots-") as tmp:
        data = Path(tmp) / "data"
        settings = load_settings(
            data_dir=data, port=0, instance_label=f"shots-{uuid.uuid4().hex[:8]}"
        )
        signer = JwtSigner(load_or_create_secret(settings.secret_path))
        async with Admin(settings) as admin:
            _, token = await add_user(admin.sessions, signer, "ada", tier="pro")
        backend = EmbeddedBackend(settings)
        url = backend.start()
        try:
            async with CorralClient(url, token) as client:
                shots = await shoot(client, url, token, Path(tmp))
                for container in (await client.list_containers())["containers"]:
                    await client.delete_container(container["id"])
                for volume in (await client.volumes())["volumes"]:
                    await client.delete_volume(volume["name"])
        finally:
            backend.stop()
            unmount_volumes(data)
    for svg in shots:
        print(f"screenshots/{to_png(svg).name}")
        svg.unlink()


if __name__ == "__main__":
    asyncio.run(main())
