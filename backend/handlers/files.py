"""The file routes (issue 15), in the shapes Rexec's clients use: ``?path=`` absolute inside
the sandbox. Thin handlers over ``backend.files.service``; the upload's multipart body is read
here, as it comes (or spooled first, ``backend.files.spool``, when it can go neither in place
nor straight to the engine), and the download streamed out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_DISPOSITION
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import parse_content_disposition

from backend.agents.service import is_agent_id
from backend.endpoint import Answer, endpoint
from backend.errors import (
    DiskQuotaExceeded,
    InsufficientStorage,
    InvalidParameters,
    NotSupportedForAgents,
)
from backend.files.paths import checked_name, child, content_disposition, form_filename, normalised
from backend.files.service import CHUNK, Destination, FileService, Sandbox, read_spool
from backend.files.spool import TooLarge, data_disk_room, spool
from backend.json_answer import json_answer
from backend.middleware import principal_of
from backend.state import AGENTS, ENGINES, SETTINGS
from corral.shapes import FileChanged, FileList, FilesQuery, FileUploaded, UploadQuery

log = logging.getLogger(__name__)

ON_FILES = (400, 401, 403, 404, 503)
UPLOAD_PART = "file"
# A multipart body's framing around the file (boundaries, part headers): a request longer than
# the room by more than this cannot fit, and is refused before its body is read.
MULTIPART_SLACK = 64 * 1024
NOTES = {
    400: "invalid parameters (a missing or relative path), not a directory, path is a "
    "directory, container is not running (it has no sandbox now; a delete outside /home/user: "
    "not running), not supported for agents",
    404: "container not found (also for another user's container), file not found",
    500: "failed to ... (list files, download file, ...; sanitized message)",
}


async def _sandbox(request: web.Request) -> tuple[FileService, Sandbox]:
    """The caller's container the route names (404 otherwise, byte-identical for another
    user's), as it is on its engine now, with that engine's file service; the use is
    recorded."""
    ident = request.match_info["id"]
    principal = principal_of(request)
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal, ident)
        raise NotSupportedForAgents("An agent's files are on its own machine.")
    row, engine = await request.app[ENGINES].resolve(principal, ident)
    files = engine.services.files
    return files, await files.sandbox(row)


@endpoint(
    "List a directory in the sandbox (running or stopped): its entries, not their subtrees",
    tag="files",
    answers={200: Answer("The directory's entries, sorted by name", FileList)},
    errors=ON_FILES,
    notes=NOTES,
)
async def list_files(request: web.Request, query: FilesQuery) -> web.Response:
    files, box = await _sandbox(request)
    answer = await files.list_dir(box, normalised(query["path"]))
    return json_answer(answer)


@endpoint(
    "Download a file from the sandbox (running or stopped), streamed; a symlink is followed "
    "inside the sandbox",
    tag="files",
    answers={
        200: Answer(
            "The file's bytes, with Content-Length and Content-Disposition: attachment",
            media_type="application/octet-stream",
        )
    },
    errors=ON_FILES,
    notes=NOTES,
)
async def download_file(request: web.Request, query: FilesQuery) -> web.StreamResponse:
    files, box = await _sandbox(request)
    download = await files.download(box, normalised(query["path"]))
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(download.name),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    resp.content_length = download.size
    try:
        await resp.prepare(request)
        async for chunk in download.chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, RuntimeError) as exc:
        log.debug("a download's client went away: %r", exc)
    finally:
        with contextlib.suppress(Exception):
            await download.chunks.aclose()
    return resp


@endpoint(
    "Upload a file into a directory of the sandbox (running or stopped), streamed: the "
    "multipart part 'file' and its filename; an existing file of that name is replaced",
    tag="files",
    answers={200: Answer("Uploaded", FileUploaded)},
    errors=(*ON_FILES, 409, 413, 507),
    notes={
        **NOTES,
        409: "file exists: a directory of the file's name is there",
        507: "insufficient storage: the file does not fit on the sandbox's disk (its quota), "
        "or on the server's data disk; nothing was written",
    },
    upload=UPLOAD_PART,
)
async def upload_file(request: web.Request, query: UploadQuery) -> web.Response:
    files, box = await _sandbox(request)
    directory = normalised(query["path"])
    async with files.destination(box, directory) as destination:
        name, size = await _upload(request, files, box, destination, query.get("size"))
    answer: FileUploaded = {
        "message": "file uploaded successfully",
        "filename": name,
        "path": child(directory, name),
        "size": size,
    }
    return json_answer(answer)


async def _upload(
    request: web.Request,
    files: FileService,
    box: Sandbox,
    destination: Destination,
    declared: int | None,
) -> tuple[str, int]:
    """The file part into the destination: its name and size.

    A directory on the volume is written in place as the bytes come, whatever their size. A
    running sandbox otherwise takes them as they come when their size is known (a copy that
    fails half-way is removed from it). Otherwise (a stopped sandbox could keep a partial
    file; an unknown size cannot go in a tar header) the file is spooled first."""
    quota = await files.room(box, destination.directory)
    if declared is not None and quota is not None and declared > quota:
        raise _too_large(declared, quota, quota)
    streamed = destination.in_place or (declared is not None and box.running)
    limit = quota if quota is not None else 1 << 62
    if not streamed:
        limit = min(limit, await asyncio.to_thread(data_disk_room, request.app[SETTINGS].data_dir))
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise _too_large(request.content_length, limit, quota)
    part = await _file_part(request)
    name = checked_name(_part_name(part))
    if streamed:
        source = _exact_part(request, declared) if declared is not None else _chunks_of(part)
        return name, await files.upload(box, destination, name, source, declared)
    try:
        handle, size = await spool(
            functools.partial(_read_chunk, part), request.app[SETTINGS].data_dir, limit
        )
    except TooLarge as exc:
        raise _too_large(exc.received, limit, quota) from None
    with handle:
        return name, await files.upload(box, destination, name, read_spool(handle), size)


async def _chunks_of(part: BodyPartReader) -> AsyncIterator[bytes]:
    """The file part's bytes, read up to its boundary."""
    while chunk := await _read_chunk(part, CHUNK):
        yield chunk


async def _exact_part(request: web.Request, size: int) -> AsyncIterator[bytes]:
    """The file part's bytes when its size was declared: read from the body as they come
    (the part's headers are read), without scanning them for the boundary, which must then
    follow at once: the declared size is checked, and the copy costs one pass, not three."""
    boundary = _boundary(request)
    content = request.content
    left = size
    while left:
        chunk = await content.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        yield chunk
    try:
        after = await content.readexactly(len(boundary))
    except asyncio.IncompleteReadError:
        after = b""
    if left or after != boundary:
        raise InvalidParameters(
            f"the file part is not {size} bytes long, the size given", field="size"
        )


def _boundary(request: web.Request) -> bytes:
    params = parse_mimetype(request.headers.get("Content-Type", "")).parameters
    return b"\r\n--" + params.get("boundary", "").strip('"').encode("latin-1")


async def _read_chunk(part: BodyPartReader, size: int) -> bytes:
    """A chunk of the file part; a malformed part (a Content-Length that lies) is 400."""
    try:
        return await part.read_chunk(size)
    except ValueError as exc:
        raise InvalidParameters(
            f"the file part could not be read: {exc}", field=UPLOAD_PART
        ) from None


@endpoint(
    "Delete a file, or a directory with everything in it (a symlink itself, not its target): "
    "under /home/user running or stopped, elsewhere only in a running sandbox",
    tag="files",
    answers={200: Answer("Deleted", FileChanged)},
    errors=(*ON_FILES, 409),
    notes={
        **NOTES,
        409: "sandbox refused: not everything could be removed (rm in the sandbox failed: /proc, "
        "a mount point)",
    },
)
async def delete_file(request: web.Request, query: FilesQuery) -> web.Response:
    files, box = await _sandbox(request)
    path = normalised(query["path"])
    await files.delete(box, path)
    answer: FileChanged = {"message": "file deleted", "path": path}
    return json_answer(answer)


@endpoint(
    "Make a directory and any missing parents (as mkdir -p) in the sandbox (running or stopped)",
    tag="files",
    answers={200: Answer("Made, or already there", FileChanged)},
    errors=(*ON_FILES, 409),
    notes={**NOTES, 409: "file exists: the path is a file"},
)
async def make_directory(request: web.Request, query: FilesQuery) -> web.Response:
    files, box = await _sandbox(request)
    path = normalised(query["path"])
    made = await files.mkdir(box, path)
    message = "directory created" if made else "directory already exists"
    answer: FileChanged = {"message": message, "path": path}
    return json_answer(answer)


async def _file_part(request: web.Request) -> BodyPartReader:
    """The body's part named ``file`` (parts before it are skipped)."""
    if request.content_type != "multipart/form-data":
        raise InvalidParameters(
            "send the file as multipart/form-data, in a part named 'file'", field=UPLOAD_PART
        )
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, BodyPartReader) and part.name == UPLOAD_PART:
                return part
            await part.release()
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        raise InvalidParameters(
            f"the multipart body could not be read: {exc}", field=UPLOAD_PART
        ) from None
    raise InvalidParameters("the multipart body has no part named 'file'", field=UPLOAD_PART)


def _part_name(part: BodyPartReader) -> str | None:
    _, params = parse_content_disposition(part.headers.get(CONTENT_DISPOSITION))
    return form_filename(params.get("filename"), params.get("filename*"))


def _too_large(size: int, limit: int, quota: int | None) -> DiskQuotaExceeded | InsufficientStorage:
    if quota is not None and limit == quota:
        return DiskQuotaExceeded(
            f"The upload (at least {size} bytes) does not fit on the sandbox's disk ({quota} "
            "bytes free); nothing was written. Free space in the sandbox, or give it a larger "
            "disk (disk_mb in PATCH /api/containers/{id}/settings)."
        )
    return InsufficientStorage(
        f"The upload (at least {size} bytes) does not fit on the server's data disk; nothing "
        "was written."
    )
