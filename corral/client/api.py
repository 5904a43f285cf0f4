"""``CorralClient``: one typed method per route of the backend's HTTP API.

Answers are the server's JSON as it came (dicts and lists), typed by the API's declarations
(``corral.shapes``, the same the server validates requests with and documents); the client does
not re-validate them, so a newer server's added keys reach the caller rather than failing the
call. Every refusal is raised as the ``ApiError`` subclass named by the contract's error string (see
``corral.client.errors``); an unreachable server is a ``TransportError``. The client owns an
``aiohttp.ClientSession`` unless it is handed one, and is used as an async context manager::

    async with CorralClient("http://127.0.0.1:8420", token) as api:
        for c in (await api.list_containers())["containers"]:
            print(c["name"], c["status"])
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal, cast
from urllib.parse import quote

import aiohttp

from corral.aio import Backoff
from corral.client.base import lines_of
from corral.client.errors import TransportError, api_error
from corral.client.events import EventConnection, EventStream, connect_events
from corral.client.files_api import FilesApi
from corral.client.stats import StatsStream
from corral.shapes import (
    Container,
    ContainerCreate,
    ContainerList,
    ContainerSettings,
    ContainerStats,
    Deleted,
    Engine,
    EngineList,
    Health,
    ImageList,
    Lifecycle,
    Me,
    NewToken,
    RoleList,
    Scope,
    Session,
    SettingsChanged,
    TokenCreate,
    TokenList,
    TokenRevoked,
    VolumeDeleted,
    VolumeList,
)

WsAuth = Literal["header", "query", "subprotocol"]


class CorralClient(FilesApi):
    # -- meta ---------------------------------------------------------------------------------

    async def health(self) -> Health:
        """The server's health; 503 (degraded) is returned, not raised: it is an answer."""
        return cast(Health, await self.request("GET", "/health", ok=(503,)))

    async def openapi(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", "/api/openapi.json"))

    async def images(self) -> ImageList:
        return cast(ImageList, await self.request("GET", "/api/images"))

    async def roles(self) -> RoleList:
        return cast(RoleList, await self.request("GET", "/api/roles"))

    # -- auth ---------------------------------------------------------------------------------

    async def guest_login(self, username: str) -> Session:
        """Start a guest session; the client uses its token from now on."""
        session = cast(
            Session, await self.request("POST", "/api/auth/guest", body={"username": username})
        )
        self.token = session["token"]
        return session

    async def login(self, username: str, password: str) -> Session:
        """Sign in with a password; the client uses the new token from now on."""
        session = cast(
            Session,
            await self.request(
                "POST", "/api/auth/login", body={"username": username, "password": password}
            ),
        )
        self.token = session["token"]
        return session

    async def logout(self) -> None:
        await self.request("POST", "/api/auth/logout")
        self.token = None

    async def me(self) -> Me:
        return cast(Me, await self.request("GET", "/api/me"))

    async def create_token(
        self,
        name: str,
        scopes: Sequence[Scope | str] | None = None,
        expires_in_days: int | None = None,
    ) -> NewToken:
        body: TokenCreate = {"name": name}
        if scopes is not None:
            body["scopes"] = [Scope(scope) for scope in scopes]
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return cast(NewToken, await self.request("POST", "/api/tokens", body=body))

    async def list_tokens(self) -> TokenList:
        return cast(TokenList, await self.request("GET", "/api/tokens"))

    async def revoke_token(self, token_id: str) -> TokenRevoked:
        return cast(TokenRevoked, await self.request("DELETE", f"/api/tokens/{self._id(token_id)}"))

    # -- containers ---------------------------------------------------------------------------

    async def list_containers(self, *, all_users: bool = False) -> ContainerList:
        params = {"all": "true"} if all_users else None
        return cast(ContainerList, await self.request("GET", "/api/containers", params=params))

    async def get_container(self, ident: str) -> Container:
        return cast(Container, await self.request("GET", f"/api/containers/{self._id(ident)}"))

    async def create_container(
        self,
        image: str,
        *,
        name: str | None = None,
        role: str | None = None,
        memory_mb: int | None = None,
        cpu_shares: int | None = None,
        disk_mb: int | None = None,
        environment: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        volume: str | None = None,
        wait: bool = False,
    ) -> Container:
        """Create a container: at once with ``status: creating`` (progress arrives as events),
        or with ``wait=True`` once it runs. ``volume`` attaches a kept volume (see
        ``volumes()``) as its /home/user."""
        body: dict[str, Any] = {"image": image}  # a ContainerCreate
        optional: dict[str, Any] = {
            "name": name,
            "role": role,
            "memory_mb": memory_mb,
            "cpu_shares": cpu_shares,
            "disk_mb": disk_mb,
            "environment": environment,
            "labels": labels,
            "volume": volume,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        params = {"wait": "true"} if wait else None
        return cast(
            Container,
            await self.request(
                "POST", "/api/containers", body=cast(ContainerCreate, body), params=params
            ),
        )

    async def start_container(self, ident: str) -> Lifecycle:
        return cast(
            Lifecycle,
            await self.request("POST", f"/api/containers/{self._id(ident)}/start"),
        )

    async def stop_container(self, ident: str) -> Lifecycle:
        return cast(
            Lifecycle,
            await self.request("POST", f"/api/containers/{self._id(ident)}/stop"),
        )

    async def delete_container(self, ident: str, *, keep_volume: bool = False) -> Deleted:
        params = {"keep_volume": "true"} if keep_volume else None
        return cast(
            Deleted,
            await self.request("DELETE", f"/api/containers/{self._id(ident)}", params=params),
        )

    async def update_settings(
        self,
        ident: str,
        *,
        name: str | None = None,
        memory_mb: int | None = None,
        cpu_shares: int | None = None,
        disk_mb: int | None = None,
    ) -> SettingsChanged:
        """Change a container's name and/or resources; omitted fields stay as they are."""
        fields = {
            "name": name,
            "memory_mb": memory_mb,
            "cpu_shares": cpu_shares,
            "disk_mb": disk_mb,
        }
        body = cast(ContainerSettings, {k: v for k, v in fields.items() if v is not None})
        return cast(
            SettingsChanged,
            await self.request("PATCH", f"/api/containers/{self._id(ident)}/settings", body=body),
        )

    async def reinstall_role(self, ident: str) -> Container:
        """Install the container's role again in the background (202: status configuring)."""
        path = f"/api/containers/{self._id(ident)}/role/reinstall"
        return cast(Container, await self.request("POST", path))

    # -- usage and output ---------------------------------------------------------------------

    async def container_stats(self, ident: str) -> ContainerStats:
        """One usage sample of a running container (400 ``container is not running``)."""
        path = f"/api/containers/{self._id(ident)}/stats"
        return cast(ContainerStats, await self.request("GET", path))

    def stats(
        self,
        *,
        on_state: Callable[[str], None] | None = None,
        all_users: bool = False,
        backoff: Backoff | None = None,
        auth: WsAuth = "header",
        on_retry: Callable[[float, str], None] | None = None,
        heartbeat_s: float = 5.0,
    ) -> StatsStream:
        """The stats stream (every running container's latest sample, every couple of
        seconds) as an async iterator that reconnects with backoff like ``events()`` (same
        ``on_state``, ``on_retry`` and heartbeat); use it in ``async with``."""
        return StatsStream(
            self,
            all_users=all_users,
            backoff=backoff,
            auth=auth,
            on_state=on_state,
            on_retry=on_retry,
            heartbeat_s=heartbeat_s,
        )

    async def logs(
        self, ident: str, *, tail: int = 200, follow: bool = False, timestamps: bool = False
    ) -> AsyncIterator[str]:
        """The container's output, line by line (without the newline): the last ``tail``
        lines, then with ``follow`` new ones until the container stops (or the caller stops
        iterating). Refusals raise when iteration starts."""
        params = {"tail": str(tail)}
        if follow:
            params["follow"] = "true"
        if timestamps:
            params["timestamps"] = "true"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30) if follow else self._timeout
        path = f"/api/containers/{self._id(ident)}/logs"
        try:
            resp = await self.session.get(
                self.url(path), params=params, headers=self.auth_headers(), timeout=timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"cannot reach {self.server}: {exc}") from exc
        async with resp:
            if resp.status >= 400:
                try:
                    data = json.loads(await resp.read())
                except ValueError:
                    data = None
                raise api_error(resp.status, data)
            async for line in lines_of(resp):
                yield line

    # -- volumes ------------------------------------------------------------------------------

    async def volumes(self, *, all_users: bool = False) -> VolumeList:
        """Kept volumes (deleted containers' data): the caller's, or every user's (admins)."""
        params = {"all": "true"} if all_users else None
        return cast(VolumeList, await self.request("GET", "/api/volumes", params=params))

    async def delete_volume(self, name: str) -> VolumeDeleted:
        path = f"/api/volumes/{quote(name, safe='')}"
        return cast(VolumeDeleted, await self.request("DELETE", path))

    # -- engines (administrators) -------------------------------------------------------------

    async def engines(self) -> EngineList:
        """The Docker engines sandboxes are placed on, each probed now."""
        return cast(EngineList, await self.request("GET", "/api/engines"))

    async def drain_engine(self, name: str) -> Engine:
        """No new sandboxes on ``name``; those it holds keep working."""
        path = f"/api/engines/{quote(name, safe='')}/drain"
        return cast(Engine, await self.request("POST", path))

    async def undrain_engine(self, name: str) -> Engine:
        path = f"/api/engines/{quote(name, safe='')}/undrain"
        return cast(Engine, await self.request("POST", path))

    # -- events -------------------------------------------------------------------------------

    async def connect_events(
        self,
        *,
        since: int | None = None,
        all_users: bool = False,
        auth: WsAuth = "header",
        heartbeat_s: float | None = 30.0,
    ) -> EventConnection:
        """One event WebSocket, as is: no reconnection (see ``events()`` for that). ``auth``
        picks how the token travels: the Authorization header, ``?token=``, or the
        ``corral.v1, corral.token.<token>`` subprotocols (for clients that cannot set headers)."""
        return await connect_events(
            self, since=since, all_users=all_users, auth=auth, heartbeat_s=heartbeat_s
        )

    def events(
        self,
        *,
        since: int | None = None,
        all_users: bool = False,
        backoff: Backoff | None = None,
        auth: WsAuth = "header",
        on_state: Callable[[str], None] | None = None,
        on_retry: Callable[[float, str], None] | None = None,
        heartbeat_s: float = 5.0,
    ) -> EventStream:
        """The event stream as an async iterator that survives disconnects: it reconnects with
        backoff and resumes with ``since=<last seq>``, so each event is yielded once, in order
        (or a fresh ``list`` when the server no longer has the gap). ``on_state`` hears
        "connecting", "connected" and "reconnecting"; ``on_retry`` hears each wait before a
        new attempt (seconds, and why); a silent server is given up after about 1.5 times
        ``heartbeat_s``."""
        return EventStream(
            self,
            since=since,
            all_users=all_users,
            backoff=backoff,
            auth=auth,
            on_state=on_state,
            on_retry=on_retry,
            heartbeat_s=heartbeat_s,
        )
