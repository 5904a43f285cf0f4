"""Long-lived reads from the engine's HTTP API, on the event loop: stats and log streams.

The docker SDK reads a stream by blocking a thread on it, so fifty followed sandboxes would hold
fifty threads (more than ``DockerService``'s pool) for as long as anyone watches. These streams
are plain HTTP responses, so they are read here with aiohttp straight from the engine's socket
(``unix://`` or plain ``tcp://``; the same address the SDK uses): one connection per stream, no
thread, cancelled like any task. Errors are translated into the same classes as the SDK's
(``DockerUnavailable``, ``DockerNotFound``, ``DockerConflict``, ``DockerError``), with the
engine's message sanitized.

Only ``DockerService`` (its ``streams``) uses this module; ``engine_socket`` shares its error
translation (``engine_error``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from backend.errors import DockerConflict, DockerError, DockerNotFound, DockerUnavailable, sanitize

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# A stats sample is a few KiB (more with many CPUs); a log frame is at most one line of output
# (the engine splits longer ones at 16 KiB). Anything larger is not what we asked for.
MAX_LINE = 1 << 20


class EngineHttp:
    """An aiohttp session to the engine, opened on first use (on the running loop)."""

    def __init__(self, base_url: str | None, connect_timeout_s: float) -> None:
        self._base_url = base_url or DEFAULT_SOCKET
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._root = ""

    def _open(self) -> aiohttp.ClientSession:
        if self._session is not None and not self._session.closed:
            return self._session
        url = self._base_url
        connector: aiohttp.BaseConnector
        if url.startswith("unix://"):
            connector = aiohttp.UnixConnector(path=url.removeprefix("unix://"), limit=0)
            self._root = "http://docker"
        elif url.startswith(("tcp://", "http://")):
            connector = aiohttp.TCPConnector(limit=0)
            self._root = "http://" + url.split("://", 1)[1].rstrip("/")
        else:
            raise DockerError("streams need the engine on a unix socket or plain tcp")
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s),
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(
        self, path: str, params: Mapping[str, str], timeout_s: float | None
    ) -> aiohttp.ClientResponse:
        """A response whose status is 2xx (its body not read yet); every failure translated."""
        return await self.send("GET", path, params, timeout_s=timeout_s)

    async def send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        read_bufsize: int = 1 << 16,
    ) -> aiohttp.ClientResponse:
        """One request (``data``: a body, which may be an async iterable of bytes, streamed);
        a response whose status is 2xx, its body not read yet. Every failure translated."""
        session = self._open()
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=self._connect_timeout_s, sock_read=None
        )
        try:
            resp = await session.request(
                method,
                self._root + path,
                params=params,
                data=data,
                headers=headers,
                timeout=timeout,
                read_bufsize=read_bufsize,
            )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise DockerUnavailable() from exc
        except TimeoutError as exc:
            raise DockerError("the Docker engine did not answer in time") from exc
        if resp.status < 300:
            return resp
        try:
            body = await resp.read()
        except aiohttp.ClientError:
            body = b""
        finally:
            resp.release()
        raise engine_error(resp.status, body)

    async def json(self, path: str, params: Mapping[str, str], timeout_s: float) -> Any:
        resp = await self._get(path, params, timeout_s)
        try:
            async with resp:
                return json.loads(await resp.read())
        except (aiohttp.ClientError, ValueError) as exc:
            raise DockerError("the Docker engine's answer could not be read") from exc
        except TimeoutError as exc:
            raise DockerError("the Docker engine did not answer in time") from exc

    async def json_lines(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Any]:
        """Each JSON document of a newline-delimited stream, until the engine ends it. Leaving
        the loop (or cancelling the task) closes the connection."""
        resp = await self._get(path, params, None)
        try:
            while True:
                line = await _readline(resp)
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except ValueError as exc:
            raise DockerError("the Docker engine sent a stream that could not be read") from exc
        finally:
            resp.close()

    async def frames(
        self, path: str, params: Mapping[str, str], idle_s: float
    ) -> AsyncGenerator[bytes, None]:
        """Open a multiplexed stream (8-byte headers: stream type, three zero bytes, big-endian
        length; stdout and stderr alike) and return its payloads, until the engine ends it.
        Opening raises the engine's refusal (so a caller can still answer with an error);
        reading then never raises. After ``idle_s`` with nothing to read an empty ``b""`` is
        yielded, so the caller can check that its own client is still there."""
        return _frames(await self._get(path, params, None), idle_s)


async def _frames(resp: aiohttp.ClientResponse, idle_s: float) -> AsyncGenerator[bytes, None]:
    buffer = bytearray()
    try:
        while True:
            try:
                # readany() gives up nothing when cancelled, so a timeout loses no bytes.
                chunk = await asyncio.wait_for(resp.content.readany(), idle_s)
            except TimeoutError:
                yield b""
                continue
            if not chunk:
                return  # the engine ended the stream
            buffer += chunk
            while len(buffer) >= 8:
                size = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < 8 + size:
                    break
                yield bytes(buffer[8 : 8 + size])
                del buffer[: 8 + size]
            if len(buffer) > MAX_LINE:
                log.warning("a log stream sent a frame over %d bytes; ending it", MAX_LINE)
                return
    except (aiohttp.ClientError, OSError):
        return  # the engine went away: the stream ends
    finally:
        resp.close()


async def _readline(resp: aiohttp.ClientResponse) -> bytes:
    try:
        line = await resp.content.readuntil(b"\n")
    except (aiohttp.ClientError, OSError):
        return b""
    if len(line) > MAX_LINE:
        raise DockerError("the Docker engine sent a line that is too long")
    return line


def engine_error(status: int, body: bytes) -> DockerError:
    """The engine's refusal (its JSON ``message``, sanitized) as the error class of its status."""
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    text = sanitize(message) or f"the Docker engine answered {status}"
    if status == 404:
        return DockerNotFound(text, status)
    if status == 409:
        return DockerConflict(text, status)
    return DockerError(text, status)
