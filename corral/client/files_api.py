"""The file routes of ``CorralClient`` (``/api/containers/{id}/files``): transfers stream a
chunk at a time from and to local files, with a progress callback (``corral.client.files``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import cast

import aiohttp

from corral.client.base import ClientBase, answer_of
from corral.client.errors import TransportError
from corral.client.files import Progress, body_size, save_stream, upload_body
from corral.shapes import FileChanged, FileList, FileUploaded


class FilesApi(ClientBase):
    def _files(self, ident: str, tail: str = "") -> str:
        return f"/api/containers/{self._id(ident)}/files{tail}"

    async def list_files(self, ident: str, path: str) -> FileList:
        """A directory's entries in the sandbox (running or stopped), sorted by name."""
        return cast(
            FileList, await self.request("GET", self._files(ident, "/list"), params={"path": path})
        )

    async def upload_file(
        self,
        ident: str,
        directory: str,
        source: str | os.PathLike[str],
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> FileUploaded:
        """Upload the local file ``source`` into ``directory`` of the sandbox as ``name``
        (default: the local file's name), streamed; ``progress(sent, total)`` after each
        chunk. An existing file of that name is replaced."""
        local = Path(source)
        handle = await asyncio.to_thread(local.open, "rb")
        with handle:
            body = upload_body(handle, name or local.name, progress)
            try:
                async with self.session.post(
                    self.url(self._files(ident)),
                    params={"path": directory, "size": str(body_size(handle))},
                    data=body,
                    headers=self.auth_headers(),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
                ) as resp:
                    return cast(FileUploaded, await answer_of(resp, self.server))
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportError(f"cannot reach {self.server}: {exc}") from exc

    async def download_file(
        self,
        ident: str,
        path: str,
        target: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Download the sandbox's file ``path`` into the local file ``target`` (replaced),
        streamed; ``progress(received, total)`` after each chunk. The bytes written. A
        directory is refused (400 ``path is a directory``): list it and fetch its files."""
        try:
            async with self.session.get(
                self.url(self._files(ident)),
                params={"path": path},
                headers=self.auth_headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
            ) as resp:
                if resp.status >= 400:
                    await answer_of(resp, self.server)
                written = await save_stream(resp, Path(target), progress)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"the download from {self.server} broke: {exc}") from exc
        if resp.content_length is not None and written != resp.content_length:
            raise TransportError(
                f"the download ended after {written} of {resp.content_length} bytes"
            )
        return written

    async def delete_file(self, ident: str, path: str) -> FileChanged:
        """Delete a file or a directory tree in the sandbox (it must be running)."""
        return cast(
            FileChanged, await self.request("DELETE", self._files(ident), params={"path": path})
        )

    async def mkdir(self, ident: str, path: str) -> FileChanged:
        """Make a directory (and missing parents) in the sandbox (running or stopped)."""
        return cast(
            FileChanged,
            await self.request("POST", self._files(ident, "/mkdir"), params={"path": path}),
        )
