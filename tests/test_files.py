"""The file routes (issue 15) on the real engine: list, upload, download, delete and mkdir in a
running and a stopped sandbox, names that break naive code, and the refusals (owner, scopes,
paths, directories)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import docker
import pytest

from corral.client import ApiError
from tests.conftest import Api, sh

HOME = "/home/user"


async def _box(api: Api, **body: Any) -> tuple[dict[str, str], dict[str, Any]]:
    _, headers = await api.user()
    made = await api.create(headers, **body)
    return headers, made


async def test_upload_list_download_delete_round_trip_while_running(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    headers, made = await _box(api)
    source = tmp_path / "notes.txt"
    source.write_bytes(os.urandom(300_000))
    seen: list[tuple[int, int | None]] = []
    async with api.corral(headers) as client:
        uploaded = await client.upload_file(
            made["id"], HOME, source, progress=lambda d, t: seen.append((d, t))
        )
        assert uploaded == {
            "message": "file uploaded successfully",
            "filename": "notes.txt",
            "path": f"{HOME}/notes.txt",
            "size": 300_000,
        }
        assert seen[-1] == (300_000, 300_000)
        # The sandbox sees it at once (gVisor's view of its volume follows the host's).
        code, out = sh(docker_client, made["id"], f"md5sum {HOME}/notes.txt")
        assert code == 0 and out.split()[0] == hashlib.md5(source.read_bytes()).hexdigest()
        listing = await client.list_files(made["id"], HOME)
        names = [f["name"] for f in listing["files"]]
        assert "notes.txt" in names and listing["count"] == len(names)
        entry = next(f for f in listing["files"] if f["name"] == "notes.txt")
        assert entry["size"] == 300_000 and not entry["is_dir"]
        assert entry["mode"].startswith("-rw") and entry["path"] == f"{HOME}/notes.txt"
        back = tmp_path / "back.txt"
        assert await client.download_file(made["id"], f"{HOME}/notes.txt", back) == 300_000
        assert back.read_bytes() == source.read_bytes()
        deleted = await client.delete_file(made["id"], f"{HOME}/notes.txt")
        assert deleted == {"message": "file deleted", "path": f"{HOME}/notes.txt"}
        with pytest.raises(ApiError) as missing:
            await client.download_file(made["id"], f"{HOME}/notes.txt", back)
        assert missing.value.status == 404 and missing.value.error == "file not found"


async def test_rexec_image_keys_map_to_this_hosts_images(api: Api) -> None:
    """``debian`` (what Rexec's clients send) creates on corral/debian:bookworm; an unknown key
    keeps the 400 naming what is offered, aliases included; GET /api/images shows them."""
    _, headers = await api.user()
    images = (await (await api.client.get("/api/images", headers=headers)).json())["images"]
    by_name = {i["name"]: i for i in images}
    assert by_name["corral/debian:bookworm"]["aliases"] == ["debian"]
    assert by_name["corral/busybox"]["aliases"] == ["busybox"]
    resp = await api.client.post(
        "/api/containers", json={"image": "ubuntu"}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "unsupported image"
    assert "debian" in body["message"] and "corral/busybox" in body["message"]
    made = await api.create(headers, image="busybox")
    assert made["image"] == "corral/busybox"
    # debian is accepted (the row records the image's own name); not waited for: it is big.
    resp = await api.client.post("/api/containers", json={"image": "debian"}, headers=headers)
    body = await resp.json()
    assert resp.status == 202 and body["image"] == "corral/debian:bookworm", body
