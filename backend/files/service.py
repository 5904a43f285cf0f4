"""``FileService``: list, download, upload, delete and mkdir in a sandbox, running or stopped.

Everything goes through ``DockerService``: the engine's archive API for stat, list, download,
upload and mkdir (which work on a stopped container too, and resolve every path inside the
container's root), and an exec of ``rm`` for delete (the archive API cannot remove anything, so
such a delete needs the sandbox running). What is on the sandbox's volume is then listed, read,
written and removed in place on the host (``host_files``), running or stopped. Nothing here
starts, stops or rebuilds a sandbox; each use records ``last_used_at`` as a terminal does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tarfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from stat import S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_ISREG, filemode
from typing import BinaryIO, TypeVar

from backend.containers.repository import ContainerRepository
from backend.containers.sandbox import MOUNT_POINT
from backend.containers.volumes import VolumeManager
from backend.db.models import Container
from backend.docker_service import DockerService, PathStat
from backend.errors import (
    ContainerNotRunning,
    DiskQuotaExceeded,
    DockerError,
    DockerNotFound,
    FileExists,
    FileNotFound,
    InvalidParameters,
    NotADirectory,
    OperationFailed,
    PathIsDirectory,
    SandboxRefused,
)
from backend.files import tar_stream
from backend.files.host_files import (
    NewFile,
    list_on_host,
    open_folder,
    open_on_host,
    remove_on_host,
)
from backend.files.paths import child, parent_and_name
from backend.files.pump import pump
from backend.files.tar_stream import Member, TarFormatError, TarReader
from corral.shapes import FileEntry, FileList

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK = 1 << 20
# What an upload needs beyond its bytes on ext4: the extent tree and directory blocks of one
# file (a few blocks per GB), with room to spare.
QUOTA_SLACK_BYTES = 1 << 20
DELETE_TIMEOUT_S = 120.0
MAX_LINKS = 40  # symlinks followed in a row before giving up (Linux's own limit)


@dataclass(frozen=True)
class Walked:
    """A path followed inside the sandbox (``FileService._walk``)."""

    path: str  # the deepest part that exists, symlinks resolved
    stat: PathStat
    missing: list[str]  # the names below it that do not exist


@dataclass(frozen=True)
class Sandbox:
    """The container a file operation reaches: its row and its Docker container now."""

    row: Container
    docker_id: str
    running: bool


@dataclass(frozen=True)
class Destination:
    """Where an upload goes (``FileService.destination``): the directory inside the sandbox,
    and a descriptor of it on the host when it is written in place."""

    directory: str
    folder: int | None

    @property
    def in_place(self) -> bool:
        return self.folder is not None


@dataclass
class Download:
    """A file to send: its name, size, and its bytes as they come from the engine."""

    name: str
    size: int
    chunks: AsyncGenerator[bytes, None]


class FileService:
    def __init__(
        self, rows: ContainerRepository, docker: DockerService, volumes: VolumeManager
    ) -> None:
        self._rows = rows
        self._docker = docker
        self._volumes = volumes

    async def sandbox(self, row: Container) -> Sandbox:
        """The row's Docker container as it is now (running or stopped); 400 when it has none
        (never built, or lost: start recreates it). Records the use."""
        state = await self._docker.inspect(row.docker_id) if row.docker_id else None
        if state is None:
            raise ContainerNotRunning(
                f"The container has no sandbox on the engine now (status {row.status}); start "
                "it (which recreates it on the same volume), then try again."
            )
        await self._rows.touch(row)
        return Sandbox(row, state.id, state.running)

    # -- stat and list ----------------------------------------------------------------------

    async def _stat(self, box: Sandbox, path: str, what: str) -> PathStat | None:
        """The path's stat (its last component not followed), None when nothing is there.
        The engine answers a bare 500 when a component on the way is a file (ENOTDIR)."""
        try:
            return await self._call(self._docker.stat_path(box.docker_id, path), what)
        except OperationFailed as exc:
            raise NotADirectory(
                f"{path!r} cannot exist: a directory on its way is a file (or a symlink loop)."
            ) from exc

    async def _walk(self, box: Sandbox, path: str, what: str) -> Walked:
        """Follow ``path`` from ``/`` a component at a time, every symlink on it replaced by
        its target (the engine resolves a link's target inside the container's root, never the
        host's): the deepest part that exists, its stat, and the names below it that do not.
        Each step is one ``HEAD`` to the engine (about a millisecond)."""
        parts = [part for part in path.split("/") if part]
        current = "/"
        stat = await self._stat(box, current, what)
        if stat is None:
            raise FileNotFound("The sandbox's root filesystem is not readable.")
        for index, part in enumerate(parts):
            candidate = child(current, part)
            found = await self._stat(box, candidate, what)
            for _ in range(MAX_LINKS):
                if found is None or not found.is_symlink:
                    break
                candidate = found.link_target or "/"
                found = await self._stat(box, candidate, what)
            if found is None or found.is_symlink:
                return Walked(current, stat, parts[index:])
            current, stat = candidate, found
        return Walked(current, stat, [])

    async def _resolved(self, box: Sandbox, path: str) -> tuple[str, PathStat]:
        """Where ``path`` leads inside the sandbox (symlinks followed) and its stat; 404 when
        nothing is there."""
        walked = await self._walk(box, path, "read file")
        if walked.missing:
            raise FileNotFound(f"Nothing exists at {path!r} in the sandbox.")
        return walked.path, walked.stat

    async def list_dir(self, box: Sandbox, path: str) -> FileList:
        """A directory's entries. On the sandbox's volume they are read in place on the host
        (``host_files``); elsewhere from the engine's tar stream of the directory, which
        carries the whole subtree, file data included, so its cost grows with what is below
        the directory (docs/api.md has the figures); only headers are kept."""
        resolved, stat = await self._resolved(box, path)
        if not stat.is_dir:
            raise NotADirectory(
                f"{path!r} is a file; download it with GET /api/containers/{{id}}/files?path=..."
            )
        entries = await self._list_on_volume(box, path, resolved)
        if entries is None:
            entries = await self._list_from_engine(box, path, resolved)
        files = sorted(entries, key=lambda entry: entry["name"])
        return {"path": path, "files": files, "count": len(files)}

    async def _list_on_volume(
        self, box: Sandbox, path: str, resolved: str
    ) -> list[FileEntry] | None:
        on_volume = await self._on_host(box, resolved)
        if on_volume is None:
            return None
        found = await asyncio.to_thread(list_on_host, *on_volume)
        if found is None:
            return None
        return [
            _entry(path, e.name, e.size if S_ISREG(e.mode) else 0, filemode(e.mode), e.mtime)
            for e in found
        ]

    async def _list_from_engine(self, box: Sandbox, path: str, resolved: str) -> list[FileEntry]:
        chunks = await self._call(self._docker.read_archive(box.docker_id, resolved), "list files")
        entries: list[FileEntry] = []
        root: str | None = None
        try:
            async for member in TarReader(chunks):
                name = member.name.rstrip("/")
                if root is None:
                    root = name
                    continue
                relative = name[len(root) :].lstrip("/") if name.startswith(root) else ""
                if relative and "/" not in relative:
                    size = member.size if member.is_file else 0
                    entries.append(_entry(path, relative, size, _mode_text(member), member.mtime))
        except (TarFormatError, DockerError) as exc:
            raise OperationFailed("failed to list files", str(exc)) from exc
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()
        return entries

    # -- download -----------------------------------------------------------------------------

    async def download(self, box: Sandbox, path: str) -> Download:
        """The file's bytes, streamed from the engine; 400 for a directory."""
        resolved, stat = await self._resolved(box, path)
        if stat.is_dir:
            raise PathIsDirectory(
                f"{path!r} is a directory; list it with GET /api/containers/{{id}}/files/list"
                "?path=..., or copy it as a tar with corral cp."
            )
        _, name = parent_and_name(path)
        in_place = await self._open_on_volume(box, resolved)
        if in_place is not None:
            fd, size = in_place
            chunks = _read_host_file(fd, size)
            await anext(chunks)  # started: from now on its aclose() closes the descriptor
            return Download(name=name or resolved, size=size, chunks=chunks)
        chunks = await self._call(
            self._docker.read_archive(box.docker_id, resolved), "download file"
        )
        reader = TarReader(chunks)
        try:
            member = await reader.next()
        except (TarFormatError, DockerError) as exc:
            raise OperationFailed("failed to download file", str(exc)) from exc
        if member is None or not member.is_file:
            with contextlib.suppress(Exception):
                await chunks.aclose()
            raise InvalidParameters(f"{path!r} is not a regular file", field="path")
        data = _member_data(reader, member, chunks)
        return Download(name=name or member.name, size=member.size, chunks=data)

    async def _open_on_volume(self, box: Sandbox, resolved: str) -> tuple[int, int] | None:
        """A file on the volume, opened in place on the host (``host_files.open_on_host``):
        the engine's tar stream costs a second copy of every byte."""
        on_volume = await self._on_host(box, resolved)
        if on_volume is None:
            return None
        return await asyncio.to_thread(open_on_host, *on_volume)

    async def _on_host(self, box: Sandbox, resolved: str) -> tuple[Path, list[str]] | None:
        """Where ``resolved`` is on the host: the volume's mountpoint and the components below
        it; None when the path is not on the volume or the volume is not mounted here."""
        if not _on_volume(resolved):
            return None
        mountpoint = await self._volumes.host_path(box.row)
        if mountpoint is None:
            return None
        return mountpoint, [part for part in resolved[len(MOUNT_POINT) :].split("/") if part]

    # -- upload -------------------------------------------------------------------------------

    async def room(self, box: Sandbox, directory: str) -> int | None:
        """How many bytes an upload into ``directory`` may have, when the sandbox's disk
        quota decides it (the directory is on its volume, at /home/user); None otherwise."""
        if not _on_volume(directory):
            return None
        free = await self._volumes.free_bytes(box.row)
        return None if free is None else max(0, free - QUOTA_SLACK_BYTES)

    @asynccontextmanager
    async def destination(self, box: Sandbox, directory: str) -> AsyncIterator[Destination]:
        """The directory an upload goes into (a final symlink followed; 404 when missing, 400
        when it is a file), held open on the host while the upload lasts when it is on the
        sandbox's volume and mounted here."""
        resolved, stat = await self._resolved(box, directory)
        if not stat.is_dir:
            raise NotADirectory(f"{directory!r} is not a directory; upload into a directory.")
        self._check_visible(box, resolved)
        on_host = await self._on_host(box, resolved)
        folder = None if on_host is None else await asyncio.to_thread(open_folder, *on_host)
        try:
            yield Destination(resolved, folder)
        finally:
            if folder is not None:
                os.close(folder)

    async def upload(
        self,
        box: Sandbox,
        destination: Destination,
        name: str,
        source: AsyncIterator[bytes],
        size: int | None,
    ) -> int:
        """Copy ``source`` into the destination as ``name`` (replacing a file of that name,
        never a directory: 409); the bytes written. Past the quota: 507, with nothing kept.

        In place on the volume when the destination is held open there (``host_files``), of
        any size, declared or not. Otherwise ``size`` is needed (a spool, or the request when
        its size was declared): a one-member tar streamed to the engine, and a copy that fails
        half-way (the source was not ``size`` bytes, the disk filled up under another writer,
        the engine failed) is removed (in a running sandbox: ``rm``)."""
        directory = destination.directory
        room = await self.room(box, directory)
        if room is not None and size is not None and size > room:
            raise _quota(size, room)
        target = child(directory, name)
        existed = await self._stat(box, target, "upload file")
        if existed is not None and existed.is_dir:
            raise _directory_there(target)
        if destination.folder is not None:
            return await self._write_in_place(destination.folder, target, name, source, room)
        if size is None:
            raise ValueError("an upload through the engine needs its size")
        header = tar_stream.file_header(name, size, mtime=time.time())
        length = len(header) + size + len(tar_stream.padding(size)) + 1024
        try:
            await self._docker.write_archive(
                box.docker_id, directory, _tar_of(header, source, size), length
            )
        except BaseException as exc:
            if existed is None:
                await asyncio.shield(self._remove_partial(box, target))
            if isinstance(exc, DockerError):
                if "no space left" in str(exc).lower():
                    raise DiskQuotaExceeded(
                        f"The sandbox's disk is full: {name!r} ({size} bytes) did not fit, and "
                        "nothing of it was kept."
                    ) from exc
                raise OperationFailed("failed to upload file", str(exc)) from exc
            raise
        return size

    @staticmethod
    async def _write_in_place(
        folder: int, target: str, name: str, source: AsyncIterator[bytes], room: int | None
    ) -> int:
        """The upload written into the folder on the host (``host_files.NewFile``); what was
        written is removed unless it all arrived and took its name."""
        new = await asyncio.to_thread(NewFile, folder, name)
        try:
            written = await pump(_within(source, room), new.write)
            await asyncio.to_thread(new.commit)
        except IsADirectoryError as exc:
            raise _directory_there(target) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskQuotaExceeded(
                    f"The sandbox's disk is full: {name!r} did not fit, and nothing of it was kept."
                ) from exc
            raise OperationFailed("failed to upload file", exc.strerror or str(exc)) from exc
        finally:
            # At once, even when cancelled: a close, after the write under way (if any) ends.
            new.discard()
        return written

    async def _remove_partial(self, box: Sandbox, path: str) -> None:
        if not box.running:
            log.warning("a failed upload may have left part of a file in a stopped sandbox")
            return
        with contextlib.suppress(DockerError):
            await self._docker.exec_run(box.docker_id, ["rm", "-f", "--", path], timeout_s=30)

    # -- delete and mkdir ---------------------------------------------------------------------

    async def delete(self, box: Sandbox, path: str) -> None:
        """Remove a file, or a directory with everything in it (a symlink itself, never its
        target). On the volume it is removed in place on the host, running or stopped;
        elsewhere ``rm`` runs in the sandbox, which must then be running (the engine's
        archive API cannot remove anything)."""
        if path == "/":
            raise InvalidParameters("the sandbox's root directory cannot be deleted", field="path")
        parent, name = parent_and_name(path)
        folder, _ = await self._resolved(box, parent)
        stat = await self._stat(box, child(folder, name), "delete file")
        if stat is None:
            raise FileNotFound(f"Nothing exists at {path!r} in the sandbox.")
        on_host = await self._on_host(box, folder)
        if on_host is not None and await self._remove_in_place(path, *on_host, name):
            return
        if not box.running:
            raise ContainerNotRunning(
                f"{path!r} is outside the sandbox's volume ({MOUNT_POINT}): deleting it needs "
                "the sandbox running (the engine can copy files in and out of a stopped "
                "container, but not remove them); start it first."
            )
        code, output = await self._call(
            self._docker.exec_run(
                box.docker_id, ["rm", "-rf", "--", path], timeout_s=DELETE_TIMEOUT_S
            ),
            "delete file",
        )
        if code != 0:
            said = output.decode(errors="replace").strip().splitlines()
            raise SandboxRefused(
                f"The sandbox did not delete all of {path!r}: "
                + "; ".join(said[:3])[:300]
                + ("; ..." if len(said) > 3 else "")
            )

    @staticmethod
    async def _remove_in_place(path: str, mountpoint: Path, parts: list[str], name: str) -> bool:
        try:
            return await asyncio.to_thread(remove_on_host, mountpoint, parts, name)
        except OSError as exc:
            raise SandboxRefused(
                f"Not all of {path!r} could be deleted: {exc.strerror or exc}"
            ) from exc

    async def mkdir(self, box: Sandbox, path: str) -> bool:
        """Make the directory and any missing parents (as ``mkdir -p``); False when it was
        already there. Works on a stopped sandbox too: the new directories arrive as a tar."""
        walked = await self._walk(box, path, "make directory")
        if not walked.missing:
            if walked.stat.is_dir:
                return False
            raise FileExists(f"{path!r} exists and is not a directory.")
        if not walked.stat.is_dir:
            raise NotADirectory(f"{walked.path!r} is not a directory.")
        self._check_visible(box, walked.path)
        now = time.time()
        names = walked.missing
        tar = b"".join(
            tar_stream.directory_header("/".join(names[: depth + 1]) + "/", mtime=now)
            for depth in range(len(names))
        )
        tar += tar_stream.END_OF_ARCHIVE
        await self._call(
            self._docker.write_archive(box.docker_id, walked.path, _once(tar), len(tar)),
            "make directory",
        )
        return True

    @staticmethod
    def _check_visible(box: Sandbox, directory: str) -> None:
        """A running gVisor sandbox does not see what is written into its root filesystem from
        outside (it caches it as its own; only its volume is shared): refuse such a write rather
        than make a file the sandbox cannot see."""
        if not box.running or box.row.runtime != "runsc" or _on_volume(directory):
            return
        raise InvalidParameters(
            f"{directory!r} is outside the sandbox's volume ({MOUNT_POINT}): a running gVisor "
            "sandbox would not see files written there. Write under /home/user, or stop the "
            "sandbox first.",
            field="path",
        )

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    async def _call(call: Awaitable[T], what: str) -> T:
        """One engine call: a container gone meanwhile is 400 (not running), any other
        refusal 500 ``failed to <what>`` with the engine's sanitized reason."""
        try:
            return await call
        except DockerNotFound as exc:
            raise ContainerNotRunning(
                "The sandbox went away during the request (stopped and rebuilt, or deleted)."
            ) from exc
        except DockerError as exc:
            raise OperationFailed(f"failed to {what}", str(exc)) from exc


def _on_volume(path: str) -> bool:
    return path == MOUNT_POINT or path.startswith(MOUNT_POINT + "/")


def _quota(size: int, room: int, *, at_least: bool = False) -> DiskQuotaExceeded:
    """507 for an upload of ``size`` bytes (``at_least`` while it is still arriving)."""
    return DiskQuotaExceeded(
        f"The upload ({'at least ' if at_least else ''}{size} bytes) does not fit on the "
        f"sandbox's disk ({room} bytes free); nothing was written. Free space in the sandbox "
        "or give it a larger disk."
    )


def _directory_there(target: str) -> FileExists:
    return FileExists(
        f"{target!r} is a directory; upload under another name, or into that directory."
    )


def _entry(directory: str, name: str, size: int, mode: str, mtime: float) -> FileEntry:
    return {
        "name": name,
        "path": child(directory, name),
        "size": size,
        "mode": mode,
        "mod_time": datetime.fromtimestamp(int(mtime), UTC).isoformat().replace("+00:00", "Z"),
        "is_dir": mode.startswith("d"),
    }


_KIND_BITS = {
    tarfile.DIRTYPE: S_IFDIR,
    tarfile.SYMTYPE: S_IFLNK,
    tarfile.CHRTYPE: S_IFCHR,
    tarfile.BLKTYPE: S_IFBLK,
    tarfile.FIFOTYPE: S_IFIFO,
}


def _mode_text(member: Member) -> str:
    """``ls -l``'s first column, as for an entry read on the host (``stat.filemode``)."""
    return filemode(_KIND_BITS.get(member.kind, S_IFREG) | (member.mode & 0o7777))


async def _member_data(
    reader: TarReader, member: Member, chunks: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """A member's data; the engine's stream is closed after it (or when the caller stops)."""
    try:
        async for piece in reader.data(member):
            yield piece
    finally:
        await chunks.aclose()


async def _within(source: AsyncIterator[bytes], room: int | None) -> AsyncIterator[bytes]:
    """The upload's chunks, 507 as soon as they pass the room on the sandbox's disk."""
    received = 0
    async for chunk in source:
        received += len(chunk)
        if room is not None and received > room:
            raise _quota(received, room, at_least=True)
        yield chunk


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _tar_of(header: bytes, source: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """A one-member tar stream: the header, exactly ``size`` bytes of ``source`` (400 when it
    has fewer or more), the padding and the end of the archive."""
    yield header
    sent = 0
    async for chunk in source:
        sent += len(chunk)
        if sent > size:
            raise InvalidParameters(
                f"the file is larger than the size given ({size} bytes)", field="size"
            )
        yield chunk
    if sent != size:
        raise InvalidParameters(
            f"the file has {sent} bytes, not the size given ({size} bytes)", field="size"
        )
    yield tar_stream.padding(size) + tar_stream.END_OF_ARCHIVE


async def _read_host_file(fd: int, size: int) -> AsyncGenerator[bytes, None]:
    """A file opened on the host, ``size`` bytes of it (what it held when the download began),
    a chunk at a time; the descriptor is closed at the end or when the client leaves. The
    first item is empty: taken at once by ``download``, so that closing the generator before
    the response began still runs the ``finally`` below."""
    try:
        yield b""
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(os.read, fd, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def read_spool(spool: BinaryIO) -> AsyncIterator[bytes]:
    """A spooled upload, a chunk at a time (read in a thread: it is disk I/O)."""
    while chunk := await asyncio.to_thread(spool.read, CHUNK):
        yield chunk
