"""``corral cp`` as a real subprocess against the test's server: a file and a directory tree
both ways, tar streams on stdin and stdout, and the exit codes (2: a usage mistake, 1: the
server refused)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import docker

from tests.conftest import Api, sh
from tests.test_cli import Result, _clean_env, remote

HOME = "/home/user"


async def cp(server: list[str], *args: str, stdin: bytes | None = None) -> tuple[Result, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        *server,
        "cp",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return Result(proc.returncode, "", err.decode()), out


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


async def test_cp_copies_files_and_trees_both_ways(
    api: Api, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user()
    made = await api.create(headers, name="cp-box")
    server = remote(api, headers)
    src = tmp_path / "project"
    (src / "sub dir" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub dir" / "b.bin").write_bytes(os.urandom(5 << 20))
    (src / "sub dir" / "deeper" / "-c").write_text("dash\n")
    (src / "link").symlink_to("a.txt")

    # A tree in: under the existing directory, by its own name; the symlink is skipped.
    result, _ = await cp(server, str(src), f"cp-box:{HOME}")
    assert result.code == 0, result.err
    assert "copied 3 file(s)" in result.err and "skipped" in result.err
    code, out = sh(docker_client, made["id"], f"cat '{HOME}/project/sub dir/deeper/-c'")
    assert code == 0 and out == "dash\n"

    # A file in, as a new name; and out again to a local directory and a local name.
    result, _ = await cp(server, str(src / "a.txt"), f"cp-box:{HOME}/renamed.txt")
    assert result.code == 0, result.err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result, _ = await cp(server, f"cp-box:{HOME}/renamed.txt", str(out_dir))
    assert result.code == 0 and (out_dir / "renamed.txt").read_text() == "alpha\n"

    # The tree out: to a new local path, identical to what went in (less the symlink).
    result, _ = await cp(server, f"{made['db_id']}:{HOME}/project", str(tmp_path / "back"))
    assert result.code == 0, result.err
    expected = {k: v for k, v in _tree(src).items() if k != "link"}
    assert _tree(tmp_path / "back") == expected

    # As a tar on stdout, and a tar on stdin into another directory.
    result, tar_bytes = await cp(server, f"cp-box:{HOME}/project", "-")
    assert result.code == 0, result.err
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == sorted(f"project/{k}" for k in expected)
    sh(docker_client, made["id"], f"mkdir {HOME}/from-tar")
    result, _ = await cp(server, "-", f"cp-box:{HOME}/from-tar", stdin=tar_bytes)
    assert result.code == 0, result.err
    code, out = sh(docker_client, made["id"], f"md5sum '{HOME}/from-tar/project/sub dir/b.bin'")
    assert code == 0
    assert out.split()[0] == hashlib.md5(expected["sub dir/b.bin"]).hexdigest()


async def test_cp_exit_codes(api: Api, tmp_path: Path) -> None:
    _, headers = await api.user()
    await api.create(headers, name="cp-codes")
    server = remote(api, headers)
    (tmp_path / "f").write_text("x")
    for args in (
        (str(tmp_path / "f"), str(tmp_path / "g")),  # neither side a container
        ("cp-codes:/a", "cp-codes:/b"),  # both
        ("cp-codes:relative", str(tmp_path)),  # not absolute
        ("cp-codes:/home/user/missing", str(tmp_path)),  # nothing there
    ):
        result, _ = await cp(server, *args)
        assert result.code == 2, (args, result.err)
    result, _ = await cp(server, str(tmp_path / "f"), "nobody:/home/user")
    assert result.code == 1 and "No container" in result.err
