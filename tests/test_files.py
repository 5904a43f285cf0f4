"""The file routes (issue 15) on the real engine: list, upload, download, delete and mkdir in a
running and a stopped sandbox, names that break naive code, and the refusals (owner, scopes,
paths, directories)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import docker
import pytest
from aiohttp import ClientError, FormData

from backend.settings import load_settings
from backend.state import CONTAINERS
from corral.client import ApiError
from devkit.waiting import wait_for
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
    resp = await api.client.post("/api/containers", json={"image": "ubuntu"}, headers=headers)
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "unsupported image"
    assert "debian" in body["message"] and "corral/busybox" in body["message"]
    made = await api.create(headers, image="busybox")
    assert made["image"] == "corral/busybox"
    # debian is accepted (the row records the image's own name); not waited for: it is big.
    resp = await api.client.post("/api/containers", json={"image": "debian"}, headers=headers)
    body = await resp.json()
    assert resp.status == 202 and body["image"] == "corral/debian:bookworm", body


async def test_every_route_works_on_a_stopped_sandbox(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """The archive API reaches a stopped container's files, and its volume is mounted on the
    host: mkdir, upload, list, download and delete work and never start it. Only a delete
    outside the volume (an ``rm`` in the sandbox) needs it running."""
    headers, made = await _box(api)
    source = tmp_path / "data.bin"
    source.write_bytes(b"stopped\n" * 1000)
    async with api.corral(headers) as client:
        await client.stop_container(made["id"])
        before = (await client.get_container(made["id"]))["last_used_at"]
        made_dir = await client.mkdir(made["id"], f"{HOME}/a/b/c")
        assert made_dir == {"message": "directory created", "path": f"{HOME}/a/b/c"}
        again = await client.mkdir(made["id"], f"{HOME}/a/b/c")
        assert again["message"] == "directory already exists"
        await client.upload_file(made["id"], f"{HOME}/a/b/c", source)
        await client.upload_file(made["id"], HOME, source, name="gone.bin")
        listing = await client.list_files(made["id"], f"{HOME}/a/b")
        assert [(f["name"], f["is_dir"]) for f in listing["files"]] == [("c", True)]
        back = tmp_path / "back.bin"
        await client.download_file(made["id"], f"{HOME}/a/b/c/data.bin", back)
        assert back.read_bytes() == source.read_bytes()
        deleted = await client.delete_file(made["id"], f"{HOME}/gone.bin")
        assert deleted == {"message": "file deleted", "path": f"{HOME}/gone.bin"}
        await client.mkdir(made["id"], "/opt/outside")
        with pytest.raises(ApiError) as refused:
            await client.delete_file(made["id"], "/opt/outside")
        assert refused.value.status == 400 and refused.value.error == "container is not running"
        assert "/home/user" in refused.value.message
        after = await client.get_container(made["id"])
        assert after["status"] == "stopped"
        assert after["last_used_at"] is not None and after["last_used_at"] != before
        assert docker_client.containers.get(made["id"]).status == "exited"
        # The files are on the volume: the started sandbox sees them, and not the deleted one.
        await client.start_container(made["id"])
        code, out = sh(docker_client, made["id"], f"cat {HOME}/a/b/c/data.bin | wc -c")
        assert code == 0 and out.strip() == "8000"
        assert sh(docker_client, made["id"], f"ls -A {HOME}") == (0, "a\n")
        await client.delete_file(made["id"], f"{HOME}/a")
        await client.delete_file(made["id"], "/opt/outside")
        code, _ = sh(docker_client, made["id"], f"test -e {HOME}/a || test -e /opt/outside")
        assert code == 1


async def test_refusals_are_in_the_contracts_shape(api: Api) -> None:
    headers, made = await _box(api)
    base = f"/api/containers/{made['id']}/files"
    cases = [
        ("GET", base, None, 400, "invalid parameters"),  # no path
        ("GET", f"{base}/list", None, 400, "invalid parameters"),
        ("GET", f"{base}?path=relative/x", None, 400, "invalid parameters"),
        ("GET", f"{base}?path=/a%00b", None, 400, "invalid parameters"),
        ("GET", f"{base}?path={HOME}", None, 400, "path is a directory"),
        ("GET", f"{base}/list?path=/etc/passwd", None, 400, "not a directory"),
        ("GET", f"{base}?path={HOME}/nothing", None, 404, "file not found"),
        ("GET", f"{base}/list?path={HOME}/nothing", None, 404, "file not found"),
        ("DELETE", f"{base}?path={HOME}/nothing", None, 404, "file not found"),
        ("DELETE", f"{base}?path=/", None, 400, "invalid parameters"),
        ("POST", f"{base}/mkdir?path=/etc/passwd", None, 409, "file exists"),
        ("POST", f"{base}/mkdir?path=/etc/passwd/x", None, 400, "not a directory"),
        ("POST", f"{base}?path={HOME}", None, 400, "invalid parameters"),  # not multipart
        ("POST", f"{base}?path=/etc/passwd", None, 400, "not a directory"),
    ]
    for method, url, body, status, error in cases:
        resp = await api.client.request(method, url, json=body, headers=headers)
        answer = await resp.json()
        assert (resp.status, answer["error"]) == (status, error), (method, url, answer)
        assert isinstance(answer["message"], str) and answer["message"]
    resp = await api.client.get(f"{base}?path={HOME}", headers=headers)
    assert "files/list" in (await resp.json())["message"]


async def test_another_users_sandbox_is_the_same_404_and_read_scope_only_reads(
    api: Api, tmp_path: Path
) -> None:
    headers, made = await _box(api)
    _, stranger = await api.user()
    base = f"/api/containers/{made['id']}/files"
    unknown = "/api/containers/00000000-0000-4000-8000-000000000000/files"
    for method, tail in (
        ("GET", f"/list?path={HOME}"),
        ("GET", f"?path={HOME}/x"),
        ("POST", f"?path={HOME}"),
        ("DELETE", f"?path={HOME}/x"),
        ("POST", f"/mkdir?path={HOME}/x"),
    ):
        theirs = await api.client.request(method, base + tail, headers=stranger)
        nobody = await api.client.request(method, unknown + tail, headers=stranger)
        assert theirs.status == nobody.status == 404
        assert await theirs.read() == await nobody.read()
    resp = await api.client.post(
        "/api/tokens", json={"name": "ro", "scopes": ["read"]}, headers=headers
    )
    reader = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    (tmp_path / "f").write_text("x")
    async with api.corral(reader) as client:
        assert (await client.list_files(made["id"], HOME))["path"] == HOME
        for call in (
            client.upload_file(made["id"], HOME, tmp_path / "f"),
            client.delete_file(made["id"], f"{HOME}/f"),
            client.mkdir(made["id"], f"{HOME}/d"),
        ):
            with pytest.raises(ApiError) as refused:
                await call
            assert (refused.value.status, refused.value.error) == (403, "not authorized")
    async with api.corral(headers) as client:
        await client.upload_file(made["id"], HOME, tmp_path / "f")
    async with api.corral(reader) as client:
        await client.download_file(made["id"], f"{HOME}/f", tmp_path / "g")
    assert (tmp_path / "g").read_text() == "x"


NAMES = [
    "with space.txt",
    "ünïcödé-日本語.txt",
    "new\nline",
    "-rf",
    "--help",
    'quote"and\\back',
    "percent%20not-a-space",
    "x" * 200,
]


async def test_awkward_names_round_trip(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    headers, made = await _box(api)
    async with api.corral(headers) as client:
        for index, name in enumerate(NAMES):
            local = tmp_path / f"local-{index}"
            local.write_bytes(name.encode())
            answer = await client.upload_file(made["id"], HOME, local, name=name)
            assert answer["filename"] == name and answer["path"] == f"{HOME}/{name}"
        listed = {f["name"]: f for f in (await client.list_files(made["id"], HOME))["files"]}
        for index, name in enumerate(NAMES):
            assert listed[name]["size"] == len(name.encode())
            back = tmp_path / f"back-{index}"
            await client.download_file(made["id"], f"{HOME}/{name}", back)
            assert back.read_bytes() == name.encode()
        # The sandbox sees each name as one file (a shell glob counts them).
        code, out = sh(
            docker_client, made["id"], f"n=0; for f in {HOME}/*; do n=$((n+1)); done; echo $n"
        )
        assert code == 0 and int(out) == len(NAMES)
        for name in NAMES:
            await client.delete_file(made["id"], f"{HOME}/{name}")
        assert (await client.list_files(made["id"], HOME))["files"] == []


async def test_download_headers_name_the_file_for_every_client(api: Api) -> None:
    headers, made = await _box(api)
    base = f"/api/containers/{made['id']}/files"
    await api.client.post(f"{base}/mkdir?path={HOME}/d", headers=headers)
    form = FormData()
    form.add_field("file", b"hello", filename="plain.txt")
    resp = await api.client.post(f"{base}?path={HOME}/d", data=form, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await api.client.get(f"{base}?path={HOME}/d/plain.txt", headers=headers)
    assert resp.status == 200 and await resp.read() == b"hello"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Length"] == "5"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"plain.txt\"; filename*=UTF-8''plain.txt"
    )
    # A browser's FormData (Rexec's JavaScript SDK) sends the name raw, with ", CR and LF
    # escaped: the name arrives as the user wrote it.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="caf\xc3\xa9%22%0A.txt"'
        b"\r\nContent-Type: application/octet-stream\r\n\r\nbrowser\r\n--b--\r\n"
    )
    resp = await api.client.post(
        f"{base}?path={HOME}/d",
        data=body,
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    answer = await resp.json()
    assert resp.status == 200 and answer["filename"] == 'café"\n.txt', answer
    resp = await api.client.get(f"{base}?path={HOME}/d/caf%C3%A9%22%0A.txt", headers=headers)
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"caf___.txt\"; filename*=UTF-8''caf%C3%A9%22%0A.txt"
    )
    assert await resp.read() == b"browser"


async def test_an_upload_past_the_disk_quota_is_507_and_leaves_nothing(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, disk_mb=16)
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(20 << 20)
    base = f"/api/containers/{made['id']}/files"
    async with api.corral(headers) as client:
        # With its length declared (as corral.client sends it): refused before the body is read.
        with pytest.raises(ApiError) as refused:
            await client.upload_file(made["id"], HOME, big)
        assert (refused.value.status, refused.value.error) == (507, "insufficient storage")
        assert "disk" in refused.value.message

    # Chunked, its length unknown: refused once the spool passes the room left.
    async def chunks() -> Any:
        for _ in range(20):
            yield bytes(1 << 20)

    form = FormData()
    form.add_field("file", chunks(), filename="big.bin")
    resp = await api.client.post(f"{base}?path={HOME}", data=form, headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"]) == (507, "insufficient storage"), answer
    code, out = sh(docker_client, made["id"], f"ls -A {HOME}")
    assert code == 0 and out.strip() == ""
    # What fits still goes in.
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(4 << 20))
    async with api.corral(headers) as client:
        assert (await client.upload_file(made["id"], HOME, small))["size"] == 4 << 20


async def test_symlinks_and_dot_dot_stay_inside_the_sandbox(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """A symlink to / is the sandbox's /, a symlink to the volume's host path leads nowhere
    (that path does not exist inside), and ``..`` stops at the sandbox's /."""
    headers, made = await _box(api)
    mount = docker_client.containers.get(made["id"]).attrs["Mounts"][0]
    volume = docker_client.volumes.get(mount["Name"]).attrs
    host_paths = [mount["Source"], (volume.get("Options") or {}).get("device") or mount["Source"]]
    script = f"ln -s / {HOME}/root && " + " && ".join(
        f"ln -s {p} {HOME}/host{i}" for i, p in enumerate(host_paths)
    )
    assert sh(docker_client, made["id"], script)[0] == 0
    code, sandbox_passwd = sh(docker_client, made["id"], "cat /etc/passwd")
    assert code == 0 and sandbox_passwd != Path("/etc/passwd").read_text()
    marker = f"corral-escape-{made['db_id']}"
    (tmp_path / marker).write_text("x")
    async with api.corral(headers) as client:
        root = await client.list_files(made["id"], "/")
        via_link = await client.list_files(made["id"], f"{HOME}/root")
        assert [f["name"] for f in via_link["files"]] == [f["name"] for f in root["files"]]
        for path in (
            f"{HOME}/root/etc/passwd",
            f"{HOME}/../../../../../etc/passwd",
            "/../../etc/passwd",
        ):
            await client.download_file(made["id"], path, tmp_path / "passwd")
            assert (tmp_path / "passwd").read_text() == sandbox_passwd, path
        for index in range(len(host_paths)):
            with pytest.raises(ApiError) as missing:
                await client.list_files(made["id"], f"{HOME}/host{index}")
            assert missing.value.status == 404
            with pytest.raises(ApiError) as missing:
                await client.upload_file(made["id"], f"{HOME}/host{index}", tmp_path / marker)
            assert missing.value.status == 404
        # A running gVisor sandbox would not see a write to its root filesystem: refused.
        for directory in (f"{HOME}/root/tmp", f"{HOME}/../../tmp"):
            with pytest.raises(ApiError) as refused:
                await client.upload_file(made["id"], directory, tmp_path / marker)
            assert (refused.value.status, refused.value.field) == (400, "path")
            assert "/home/user" in refused.value.message
        # Deleting the link removes the link, not what it points to; deleting a tree (removed
        # in place on the host) removes the links in it, never following one to the host's
        # files or the sandbox's.
        tree = f"{HOME}/tree/in"
        script = f"mkdir -p {tree} && ln -s / {tree}/root && ln -s {tmp_path} {tree}/host"
        assert sh(docker_client, made["id"], script)[0] == 0
        await client.delete_file(made["id"], f"{HOME}/tree")
        assert (tmp_path / marker).exists()
        await client.delete_file(made["id"], f"{HOME}/root")
        assert (
            sh(docker_client, made["id"], "test -f /etc/passwd && test ! -e /home/user/root")[0]
            == 0
        )
        for name in ("..", ".", "a/b"):
            with pytest.raises(ApiError) as refused:
                await client.upload_file(made["id"], HOME, tmp_path / marker, name=name)
            assert (refused.value.status, refused.value.field) == (400, "file")
        # Stopped, the root filesystem takes it: the sandbox's /tmp, not the host's.
        await client.stop_container(made["id"])
        await client.upload_file(made["id"], f"{HOME}/../../tmp", tmp_path / marker)
        listed = [f["name"] for f in (await client.list_files(made["id"], "/tmp"))["files"]]
        assert marker in listed
        assert not Path("/tmp", marker).exists()


async def test_a_declared_size_that_lies_is_400_and_leaves_no_partial_file(
    api: Api, docker_client: docker.DockerClient
) -> None:
    """With ``size`` the upload streams straight into a running sandbox; a body of another
    size is refused and what was copied of it removed."""
    headers, made = await _box(api)
    base = f"/api/containers/{made['id']}/files"
    for declared, actual in ((3 << 20, 2 << 20), (1 << 20, 3 << 20)):
        form = FormData()
        form.add_field("file", bytes(actual), filename="liar.bin")
        resp = await api.client.post(
            f"{base}?path={HOME}&size={declared}", data=form, headers=headers
        )
        answer = await resp.json()
        assert (resp.status, answer["error"], answer["field"]) == (
            400,
            "invalid parameters",
            "size",
        ), answer
        code, out = sh(docker_client, made["id"], f"ls -A {HOME}")
        assert code == 0 and out.strip() == "", out


def _volume_on_host(docker_client: docker.DockerClient, container_id: str) -> Path:
    mount = docker_client.containers.get(container_id).attrs["Mounts"][0]
    options = docker_client.volumes.get(mount["Name"]).attrs.get("Options") or {}
    return Path(options.get("device") or mount["Source"])


async def test_an_upload_takes_its_name_from_a_file_or_link_never_a_directory(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """An upload into the volume is written in place and renamed over its name: a symlink of
    that name is replaced, not followed (its target, the sandbox's /etc/passwd, is untouched);
    a directory of that name is 409 and kept whole."""
    headers, made = await _box(api)
    ident = made["id"]
    script = f"ln -s /etc/passwd {HOME}/link && mkdir {HOME}/dir && echo keep > {HOME}/dir/f"
    assert sh(docker_client, ident, script)[0] == 0
    passwd = sh(docker_client, ident, "cat /etc/passwd")[1]
    source = tmp_path / "link"
    source.write_bytes(b"new\n")
    async with api.corral(headers) as client:
        await client.upload_file(ident, HOME, source)
        with pytest.raises(ApiError) as taken:
            await client.upload_file(ident, HOME, source, name="dir")
        assert (taken.value.status, taken.value.error) == (409, "file exists")
        assert f"{HOME}/dir" in taken.value.message
    assert sh(docker_client, ident, f"test ! -L {HOME}/link && cat {HOME}/link") == (0, "new\n")
    assert sh(docker_client, ident, "cat /etc/passwd")[1] == passwd
    assert sh(docker_client, ident, f"cat {HOME}/dir/f") == (0, "keep\n")
    assert sh(docker_client, ident, f"ls -A {HOME}") == (0, "dir\nlink\n")


@pytest.mark.parametrize("declared", [True, False], ids=["declared-size", "chunked"])
async def test_an_upload_cut_off_half_way_leaves_nothing(
    api: Api, docker_client: docker.DockerClient, declared: bool
) -> None:
    """The bytes go to an unnamed file in the target's directory until all have arrived: a
    client that goes away half-way leaves no file, and the space it took is free again."""
    headers, made = await _box(api)
    volume = _volume_on_host(docker_client, made["id"])
    size = 64 << 20

    def free() -> int:
        stat = os.statvfs(volume)
        return stat.f_bfree * stat.f_frsize

    before = free()

    def in_flight() -> bool:  # nothing shows in the folder, but the disk fills
        return before - free() >= 3 << 20 and not os.listdir(volume)

    async def chunks() -> Any:
        for _ in range(4):
            yield bytes(1 << 20)
        await wait_for(in_flight, timeout_s=30, what="the upload's bytes on the volume")
        raise ConnectionResetError("the client went away")

    form = FormData()
    form.add_field("file", chunks(), filename="cut.bin")
    query = f"?path={HOME}" + (f"&size={size}" if declared else "")
    with pytest.raises((ConnectionResetError, ClientError)):
        await api.client.post(
            f"/api/containers/{made['id']}/files{query}", data=form, headers=headers
        )
    await wait_for(
        lambda: free() >= before - (256 << 10) and not os.listdir(volume),
        timeout_s=30,
        what="the volume's space back",
    )
    code, out = await asyncio.to_thread(sh, docker_client, made["id"], f"ls -A {HOME}")
    assert code == 0 and out.strip() == ""


async def test_a_listing_on_the_volume_matches_the_engines(
    api: Api, docker_client: docker.DockerClient
) -> None:
    """Directories on the volume are read in place on the host; the answer is the one the
    engine's tar stream gives (types, sizes, modes, times), and a symlink on the way is left
    to the engine, which resolves it inside the sandbox."""
    _, made = await _box(api)
    script = (
        f"cd {HOME} && mkdir -p d/sub && echo hello > d/f && chmod 640 d/f && ln -s f d/link "
        f"&& ln -s / d/root && ln -s d alias"
    )
    assert sh(docker_client, made["id"], script)[0] == 0
    files = api.app[CONTAINERS].files
    row = await api.app[CONTAINERS].repository.get(made["db_id"])
    assert row is not None
    box = await files.sandbox(row)
    on_host = await files.list_dir(box, f"{HOME}/d")
    from_engine = await files._list_from_engine(box, f"{HOME}/d", f"{HOME}/d")
    assert on_host["files"] == sorted(from_engine, key=lambda e: e["name"])
    modes = {f["name"]: f["mode"] for f in on_host["files"]}
    assert modes == {
        "f": "-rw-r-----",
        "link": "lrwxrwxrwx",
        "root": "lrwxrwxrwx",
        "sub": "drwxr-xr-x",
    }
    via_alias = await files.list_dir(box, f"{HOME}/alias")
    assert [f["name"] for f in via_alias["files"]] == [f["name"] for f in on_host["files"]]


def test_an_operator_alias_leads_to_a_configured_image_and_never_shadows_one() -> None:
    settings = load_settings(
        image_aliases={
            "ubuntu": "corral/debian:bookworm",
            "alpine": "corral/alpine",  # no such image configured: ignored
            "corral/busybox": "corral/debian:bookworm",  # an image's own name wins
            "busybox": "",  # a default removed
        }
    )
    debian = settings.image("corral/debian:bookworm")
    assert debian is not None and settings.image("ubuntu") == debian
    assert settings.image("alpine") is None
    busybox = settings.image("corral/busybox")
    assert busybox is not None and busybox.name == "corral/busybox"
    assert settings.aliases_of(debian) == ["debian", "ubuntu"]
    assert settings.image("debian") == debian  # the defaults stay
    assert settings.image("busybox") is None
