"""A container's files through the engine's archive API (``/containers/{id}/archive``): a
path's stat (``HEAD``), a path as a tar stream (``GET``), a tar stream unpacked into a directory
(``PUT``).

The engine does this for a running and a stopped container alike (it mounts the container's
volumes for the copy), and resolves every path, symlinks included, inside the container's root
filesystem: a symlink to ``/`` is the container's ``/``, never the host's. Both streams are read
and written on the event loop over the engine's socket (``engine_http``), a chunk at a time, so
a file of any size passes through the backend in bounded memory. The copies go over plain
asyncio streams (``engine_socket.stream``), the stat over the pooled HTTP session.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from typing import Any

from backend.docker_service.client import EngineClient
from backend.errors import DockerError, DockerNotFound

# Go's os.FileMode type bits, as the engine's stat reports them.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27


@dataclass(frozen=True)
class PathStat:
    """What the engine says of a path inside a container (its last component not followed)."""

    name: str
    size: int
    mode: int  # Go's os.FileMode: permission bits and type bits
    mtime: str
    link_target: str  # for a symlink: its target, resolved inside the container

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_MODE_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & GO_MODE_SYMLINK)


def _stat_of(header: str) -> PathStat:
    try:
        raw: Any = json.loads(base64.b64decode(header))
        return PathStat(
            name=str(raw["name"]),
            size=int(raw["size"]),
            mode=int(raw["mode"]),
            mtime=str(raw.get("mtime") or ""),
            link_target=str(raw.get("linkTarget") or ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DockerError("the Docker engine's answer could not be read") from exc


class ArchiveCalls(EngineClient):
    async def stat_path(self, container_id: str, path: str) -> PathStat | None:
        """The path's stat, or None when nothing is there. The container must exist (a 404
        cannot tell a missing container from a missing path: look the container up first)."""
        url = await self._path("/containers/{0}/archive", container_id)
        try:
            resp = await self._http.send(
                "HEAD", url, {"path": path}, timeout_s=float(self._timeout)
            )
        except DockerNotFound:
            return None
        async with resp:
            header = resp.headers.get("X-Docker-Container-Path-Stat", "")
        return _stat_of(header)

    async def read_archive(self, container_id: str, path: str) -> AsyncGenerator[bytes, None]:
        """The path (a directory with its whole subtree) as a tar stream, in pieces of up to
        1 MiB. Opening raises the engine's refusal (DockerNotFound: no such path); a stream cut
        off later raises DockerError."""
        url = await self._path("/containers/{0}/archive", container_id)
        return await self._socket.stream("GET", url, {"path": path})

    async def write_archive(
        self, container_id: str, directory: str, tar: AsyncIterable[bytes], length: int
    ) -> None:
        """Unpack a tar stream of ``length`` bytes into ``directory`` (which must exist). An
        entry never replaces a directory by a file or the reverse (``noOverwriteDirNonDir``).
        Raises DockerError with the engine's reason ("no space left on device")."""
        url = await self._path("/containers/{0}/archive", container_id)
        params = {"path": directory, "noOverwriteDirNonDir": "true"}
        answer = await self._socket.stream("PUT", url, params, tar, length)
        async for _ in answer:
            pass
