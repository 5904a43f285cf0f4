"""The client's transport: the base URL, the token, one ``aiohttp`` session, and one call
(``request``) that turns a refusal into the ``ApiError`` subclass its error string names. The
route methods live on ``CorralClient`` and its mixins (``corral.client.files_api``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from corral.client.errors import TransportError, api_error


class ClientBase:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        """``server`` is the backend's base URL (``http://host:port``). The timeout covers a
        whole request; creating with ``wait=True`` can take a while on a cold engine."""
        self.server = server.rstrip("/")
        self.token = token
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    def url(self, path: str) -> str:
        return f"{self.server}{path}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (),
    ) -> Any:
        """One call: the decoded JSON answer, or the typed error. Statuses in ``ok`` are answers
        too, even when they are not 2xx (``/health`` answers 503 with its usual body)."""
        try:
            async with self.session.request(
                method, self.url(path), json=body, params=params, headers=self.auth_headers()
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise TransportError(f"cannot reach {self.server}: {exc}") from exc
        except TimeoutError as exc:
            raise TransportError(f"{self.server} did not answer in time") from exc
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            data = None
            if status < 400:
                raise TransportError(
                    f"{self.server} answered {status} with a body that is not JSON; "
                    "is this a Corral server?"
                ) from None
        if status >= 400 and status not in ok:
            raise api_error(status, data)
        return data

    @staticmethod
    def _id(ident: str) -> str:
        return quote(ident, safe=":")


async def answer_of(resp: aiohttp.ClientResponse, server: str) -> Any:
    """A JSON answer's body, or its refusal raised as the typed error."""
    raw = await resp.read()
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError:
        data = None
    if resp.status >= 400:
        raise api_error(resp.status, data)
    if data is None:
        raise TransportError(f"{server} answered {resp.status} with a body that is not JSON")
    return data


async def lines_of(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """A text response's lines, decoded as they arrive (a line is decoded once complete, so no
    character is ever split)."""
    buffer = b""
    try:
        async for chunk in resp.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode("utf-8", errors="replace")
    except aiohttp.ClientPayloadError as exc:
        raise TransportError(f"the output stream broke: {exc}") from exc
    if buffer:
        yield buffer.decode("utf-8", errors="replace")
