"""``corral cp SRC DST``: files in and out of a sandbox, as ``docker cp`` does.

One side is ``ID:PATH`` (a container and an absolute path in it), the other a local path, or
``-``: a tar stream on stdin (into the container) or stdout (out of it). A directory is copied
with everything in it, a file at a time through the file routes (``corral.client``: list,
upload, download, mkdir); files keep their names, and a progress bar follows each large file on
stderr when it is a terminal. Symlinks, devices and the like inside a copied directory are
skipped, with a note (the routes move regular files and directories).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import posixpath
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from corral.client import CorralClient, InvalidParameters
from corral.client.errors import ApiError
from corral.client.files import Progress
from corral.runner import EXIT_OK, Usage, add_command

STDIO = "-"
# Files at least this large get a progress bar (on a terminal).
BAR_FROM_BYTES = 4 << 20


@dataclass(frozen=True)
class Remote:
    ident: str
    path: str


def parse_side(text: str) -> Remote | str:
    """``ID:PATH`` (``agent:<uuid>:PATH`` too) as a Remote; anything else is local. As with
    ``docker cp``, a colon before the first slash makes it remote: write ``./a:b`` for a local
    file named ``a:b``."""
    head, sep, rest = text.partition(":")
    if head == "agent" and sep:
        agent, sep, rest = rest.partition(":")
        head = f"agent:{agent}"
    if not sep or not head or "/" in head:
        return text
    if not rest.startswith("/"):
        raise Usage(f"{text!r}: the path in the container must be absolute (ID:/home/user/...)")
    return Remote(head, rest)


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


class Bars:
    """One rich progress bar per large file, on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self._progress: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TransferSpeedColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._progress = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    @contextmanager
    def running(self) -> Iterator[Bars]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    def follow(self, name: str, size: int | None) -> Progress | None:
        if self._progress is None or (size is not None and size < BAR_FROM_BYTES):
            return None
        task = self._progress.add_task(name, total=size)

        def update(done: int, total: int | None) -> None:
            self._progress.update(task, completed=done, total=total)

        return update


async def _is_dir(client: CorralClient, remote: Remote) -> bool | None:
    """Whether the container's path is a directory; None when nothing is there."""
    try:
        await client.list_files(remote.ident, remote.path)
        return True
    except ApiError as exc:
        if exc.status == 404 and exc.error == "file not found":
            return None
        if exc.error == "not a directory":
            return False
        raise


# -- out of the container -----------------------------------------------------------------------


async def _download_tree(
    client: CorralClient, ident: str, path: str, local: Path, bars: Bars, tally: Tally
) -> None:
    await asyncio.to_thread(local.mkdir, exist_ok=True)
    for entry in (await client.list_files(ident, path))["files"]:
        target = local / entry["name"]
        if entry["is_dir"]:
            await _download_tree(client, ident, entry["path"], target, bars, tally)
        elif entry["mode"].startswith("-"):
            await _download_one(client, ident, entry["path"], target, entry["size"], bars, tally)
        else:
            tally.skipped.append(entry["path"])


async def _download_one(
    client: CorralClient,
    ident: str,
    path: str,
    local: Path,
    size: int | None,
    bars: Bars,
    tally: Tally,
) -> None:
    tally.bytes += await client.download_file(
        ident, path, local, progress=bars.follow(posixpath.basename(path), size)
    )
    tally.files += 1


async def copy_out(client: CorralClient, src: Remote, dst: str, bars: Bars) -> Tally:
    tally = Tally()
    kind = await _is_dir(client, src)
    if kind is None:
        raise Usage(f"{src.ident}:{src.path}: no such file or directory in the container")
    name = posixpath.basename(src.path.rstrip("/")) or "root"
    if dst == STDIO:
        with tempfile.TemporaryDirectory(prefix="corral-cp-") as tmp:
            staged = Path(tmp) / name
            if kind:
                await _download_tree(client, src.ident, src.path, staged, bars, tally)
            else:
                await _download_one(client, src.ident, src.path, staged, None, bars, tally)
            await asyncio.to_thread(_tar_to, sys.stdout.buffer, staged, name)
        return tally
    local = Path(dst)
    if await asyncio.to_thread(_kind, local) == "dir":
        local = local / name
    if kind:
        await _download_tree(client, src.ident, src.path, local, bars, tally)
    else:
        await _download_one(client, src.ident, src.path, local, None, bars, tally)
    return tally


def _tar_to(out: IO[bytes], staged: Path, name: str) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(staged, arcname=name)
    out.flush()


# -- into the container -------------------------------------------------------------------------


async def _upload_tree(
    client: CorralClient, ident: str, local: Path, path: str, bars: Bars, tally: Tally
) -> None:
    await client.mkdir(ident, path)
    for entry in sorted(await asyncio.to_thread(lambda: list(os.scandir(local))), key=_name):
        if entry.is_dir(follow_symlinks=False):
            await _upload_tree(
                client, ident, Path(entry.path), posixpath.join(path, entry.name), bars, tally
            )
        elif entry.is_file(follow_symlinks=False):
            await _upload_one(client, ident, Path(entry.path), path, entry.name, bars, tally)
        else:
            tally.skipped.append(entry.path)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


async def _upload_one(
    client: CorralClient,
    ident: str,
    local: Path,
    directory: str,
    name: str,
    bars: Bars,
    tally: Tally,
) -> None:
    size = (await asyncio.to_thread(local.stat)).st_size
    answer = await client.upload_file(
        ident, directory, local, name=name, progress=bars.follow(name, size)
    )
    tally.files += 1
    tally.bytes += answer["size"]


async def copy_in(client: CorralClient, src: str, dst: Remote, bars: Bars) -> Tally:
    tally = Tally()
    kind = await _is_dir(client, dst)
    if src == STDIO:
        if not kind:
            raise Usage(f"{dst.ident}:{dst.path}: a tar stream goes into an existing directory")
        with tempfile.TemporaryDirectory(prefix="corral-cp-") as tmp:
            skipped = await asyncio.to_thread(_untar_from, sys.stdin.buffer, Path(tmp))
            tally.skipped += skipped
            for entry in sorted(await asyncio.to_thread(lambda: list(Path(tmp).iterdir()))):
                await _copy_local_in(client, entry, dst.ident, dst.path, entry.name, bars, tally)
        return tally
    local = Path(src)
    if await asyncio.to_thread(_kind, local) is None:
        raise Usage(f"{src}: no such file or directory")
    if kind:  # into the directory, under the local name
        directory, name = dst.path, (await asyncio.to_thread(local.resolve)).name
    else:  # as that path
        directory, name = posixpath.split(dst.path.rstrip("/"))
        directory = directory or "/"
    await _copy_local_in(client, local, dst.ident, directory, name, bars, tally)
    return tally


async def _copy_local_in(
    client: CorralClient,
    local: Path,
    ident: str,
    directory: str,
    name: str,
    bars: Bars,
    tally: Tally,
) -> None:
    kind = await asyncio.to_thread(_kind, local)
    if kind == "dir":
        await _upload_tree(client, ident, local, posixpath.join(directory, name), bars, tally)
    elif kind == "file":
        await _upload_one(client, ident, local, directory, name, bars, tally)
    else:
        tally.skipped.append(str(local))


def _kind(local: Path) -> str | None:
    """``dir``, ``file``, ``other`` (a device, a socket), or None when nothing is there."""
    if local.is_dir():
        return "dir"
    if local.is_file():
        return "file"
    return "other" if local.exists() or local.is_symlink() else None


def _untar_from(source: IO[bytes], target: Path) -> list[str]:
    """Unpack a tar stream's directories and regular files under ``target`` (nothing outside
    it: absolute names and ``..`` are refused by the ``data`` filter); the others' names."""
    skipped = []
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        for member in tar:
            if member.isdir() or member.isfile():
                tar.extract(member, target, filter="data")
            else:
                skipped.append(member.name)
    return skipped


# -- the command --------------------------------------------------------------------------------


async def cp(client: CorralClient, args: argparse.Namespace) -> int:
    src, dst = parse_side(args.src), parse_side(args.dst)
    if isinstance(src, Remote) == isinstance(dst, Remote):
        raise Usage("cp: one of SRC and DST must be ID:PATH (a container's path), the other local")
    bars = Bars()
    try:
        with bars.running():
            if isinstance(src, Remote):
                assert isinstance(dst, str)
                tally = await copy_out(client, src, dst, bars)
            else:
                assert isinstance(dst, Remote)
                tally = await copy_in(client, src, dst, bars)
    except InvalidParameters as exc:
        raise Usage(f"cp: {exc.message}") from exc
    for name in tally.skipped:
        print(f"corral cp: skipped {name} (not a regular file or directory)", file=sys.stderr)
    print(f"copied {tally.files} file(s), {tally.bytes} bytes", file=sys.stderr)
    return EXIT_OK


def add_cp(sub: Any) -> None:
    p = add_command(
        sub,
        "cp",
        cp,
        "copy files into or out of a container",
        "Copy files between a container and this machine, as docker cp does: "
        "corral cp ID:/home/user/file . | corral cp ./dir ID:/home/user | "
        "corral cp ID:/home/user/dir - > dir.tar | corral cp - ID:/home/user < dir.tar. "
        "Directories are copied with everything in them; the container may be stopped "
        "(except to replace files of a running gVisor sandbox outside /home/user).",
    )
    p.add_argument("src", metavar="SRC", help="ID:PATH, a local path, or - (a tar on stdin)")
    p.add_argument("dst", metavar="DST", help="ID:PATH, a local path, or - (a tar on stdout)")
