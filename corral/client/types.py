"""The shapes of the API's answers, as ``TypedDict``s (what the server sends, key for key).

``total=False`` marks keys the server may leave out; everything else is always present. Values
are plain JSON, so these are documentation the type checker can hold callers to, not parsers.
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

Status = Literal["creating", "configuring", "running", "stopped", "missing", "error", "offline"]
EventType = Literal[
    "list",
    "container_created",
    "container_progress",
    "container_started",
    "container_stopped",
    "container_deleted",
    "container_updated",
    "agent_connected",
    "agent_disconnected",
]


class Resources(TypedDict):
    memory_mb: int
    cpu_shares: int
    disk_mb: int


class Container(TypedDict, total=False):
    id: Required[str]
    db_id: Required[str]
    name: Required[str]
    image: Required[str]
    role: Required[str]
    status: Required[str]
    created_at: Required[str]
    last_used_at: Required[str | None]
    resources: Required[Resources]
    runtime: Required[str]
    labels: Required[dict[str, str]]
    started_at: str | None
    volume: str
    owner_id: str
    error: str
    session_type: str
    message: str  # on create's answer
    # The role's install in the current sandbox: none, pending, installing, installed, failed.
    role_state: str | None
    role_error: str | None


class ContainerStats(TypedDict):
    """One usage sample of a running container (``GET /api/containers/{id}/stats``, and each
    item of a stats message). ``cpu_percent`` is a percent of one host core (as ``docker
    stats``: up to 100 x the host's cores); memory is in MB (MiB), one decimal."""

    id: str
    db_id: str
    name: str
    cpu_percent: float
    memory_used_mb: float
    memory_limit_mb: float
    pids: int
    timestamp: str


class StatsMessage(TypedDict):
    """One message of the stats stream: the latest sample of every running container the
    caller may see (``type`` is ``"stats"``; ``"pong"`` messages are not yielded)."""

    type: str
    stats: list[ContainerStats]
    timestamp: str


class KeptVolume(TypedDict):
    """A volume kept by a delete with ``keep_volume``; ``used_mb`` is None when unknown."""

    name: str
    owner_id: str
    size_mb: int
    used_mb: int | None
    container_name: str
    container_db_id: str
    kept_at: str


class VolumeList(TypedDict):
    volumes: list[KeptVolume]
    count: int


class VolumeDeleted(TypedDict):
    message: str
    name: str


class ContainerList(TypedDict):
    containers: list[Container]
    count: int
    limit: int


class LifecycleResult(TypedDict, total=False):
    message: Required[str]
    id: Required[str]
    name: Required[str]
    status: Required[str]
    old_id: str
    recreated: bool
    volume_kept: bool


class DeleteResult(TypedDict, total=False):
    message: Required[str]
    id: Required[str]
    name: Required[str]
    db_id: str
    volume_kept: bool


class SettingsResult(TypedDict):
    message: str
    restarted: bool
    container: Container


class User(TypedDict, total=False):
    id: Required[str]
    username: Required[str]
    tier: Required[str]
    admin: bool
    guest: bool
    created_at: str


class Session(TypedDict, total=False):
    token: Required[str]
    user: Required[User]
    expires_in: Required[int]
    expires_at: str
    guest: bool


class Me(TypedDict, total=False):
    user: Required[User]
    tier: Required[str]
    limits: Required[dict[str, Any]]
    usage: Required[dict[str, int]]
    scopes: list[str]
    session_expires_at: str | None


class TokenInfo(TypedDict, total=False):
    id: Required[str]
    name: Required[str]
    token_prefix: Required[str]
    scopes: Required[list[str]]
    expires_at: Required[str | None]
    created_at: Required[str]
    last_used_at: str | None


class NewToken(TokenInfo):
    token: str


class TokenList(TypedDict):
    tokens: list[TokenInfo]
    count: int


class ImageList(TypedDict):
    images: list[dict[str, Any]]


class RoleList(TypedDict):
    roles: list[dict[str, Any]]


class Health(TypedDict):
    status: str
    database: str
    docker: str
    runtime: str
    limits_enforced: bool


class EventMessage(TypedDict):
    """One message of the event stream. For ``list``, ``container`` is a ``ContainerList``; for
    ``container_progress`` it is ``{"id", "stage", "message", "progress", ...}``; otherwise a
    ``Container``. ``seq`` is the stream's position (the event's global ID on ``all=true``)."""

    type: str
    container: dict[str, Any]
    timestamp: str
    seq: int
