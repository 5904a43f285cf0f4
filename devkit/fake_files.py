"""The fake API's files (``FakeApi`` takes these methods): one in-memory tree shared by every
container, answering like ``/api/containers/{id}/files``, each answer checked against the API's
declarations. Transfers report progress in chunks, as the real client does."""

from __future__ import annotations

import asyncio
import os
import posixpath
from pathlib import Path
from typing import Any

from corral import shapes
from corral.client.errors import api_error
from devkit.fake_shapes import shaped

STAMP = "2026-11-28T09:30:00.000Z"
CHUNK = 1 << 16
Progress = Any  # corral.client's Progress: (done, total) -> None


def sample_tree() -> dict[str, bytes | None]:
    """Path -> contents (None for a folder)."""
    return {
        "/": None,
        "/home": None,
        "/home/user": None,
        "/home/user/notes": None,
        "/home/user/notes/todo.md": b"- ship files\n",
        "/home/user/data.csv": b"a,b\n1,2\n" * 4000,
        "/home/user/report final.pdf": b"%PDF" + bytes(180_000),
        "/home/user/.profile": b"export PATH\n",
    }


class FakeFiles:
    tree: dict[str, bytes | None]

    def _entry(self, path: str) -> dict[str, Any]:
        body = self.tree[path]
        return {
            "name": posixpath.basename(path) or "/",
            "path": path,
            "size": 0 if body is None else len(body),
            "mode": "drwxr-xr-x" if body is None else "-rw-r--r--",
            "mod_time": STAMP,
            "is_dir": body is None,
        }

    def _folder(self, path: str) -> str:
        path = posixpath.normpath(path)
        if path not in self.tree:
            raise api_error(404, {"error": "file not found", "message": f"{path}: nothing there"})
        return path

    async def list_files(self, ident: str, path: str) -> dict[str, Any]:
        path = self._folder(path)
        inside = sorted(
            p for p in self.tree if p != path and posixpath.dirname(p) == path and p != "/"
        )
        files = [self._entry(p) for p in inside]
        return shaped(shapes.FileList, {"path": path, "files": files, "count": len(files)})

    async def mkdir(self, ident: str, path: str) -> dict[str, Any]:
        path = posixpath.normpath(path)
        while path not in self.tree:
            self.tree[path] = None
            path = posixpath.dirname(path)
        return shaped(shapes.FileChanged, {"message": "directory created", "path": path})

    async def delete_file(self, ident: str, path: str) -> dict[str, Any]:
        path = self._folder(path)
        for key in [p for p in self.tree if p == path or p.startswith(path + "/")]:
            del self.tree[key]
        return shaped(shapes.FileChanged, {"message": "deleted", "path": path})

    async def upload_file(
        self,
        ident: str,
        directory: str,
        source: str | os.PathLike[str],
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        directory = self._folder(directory)
        local = Path(source)
        body = await asyncio.to_thread(local.read_bytes)
        await _report(len(body), progress)
        path = posixpath.join(directory, name or local.name)
        self.tree[path] = body
        return shaped(
            shapes.FileUploaded,
            {
                "message": "file uploaded successfully",
                "filename": posixpath.basename(path),
                "path": path,
                "size": len(body),
            },
        )

    async def download_file(
        self,
        ident: str,
        path: str,
        target: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        body = self.tree[self._folder(path)]
        if body is None:
            raise api_error(
                400, {"error": "path is a directory", "message": "list it with files/list"}
            )
        await _report(len(body), progress)
        await asyncio.to_thread(Path(target).write_bytes, body)
        return len(body)


async def _report(total: int, progress: Progress | None) -> None:
    for done in range(CHUNK, total + CHUNK, CHUNK):
        if progress is not None:
            progress(min(done, total), total)
        await asyncio.sleep(0)
