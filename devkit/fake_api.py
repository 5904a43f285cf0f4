"""A stand-in for ``CorralClient`` with fixed answers, for snapshot tests and the 1,000-row
test: pictures must not change with the clock, ports or Docker IDs. Every behaviour is also
tested against the real backend and engine (``test_console_live.py``).

Each answer is checked against the API's declarations (``corral.shapes``) before it is handed
out, exactly as the real server's are checked against its document, so the stand-in cannot
drift from what the console really receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from corral import shapes
from devkit.fake_files import FakeFiles, sample_tree
from devkit.fake_shapes import shaped

T = TypeVar("T")


LIMITS = {
    "tier": "pro",
    "containers": 10,
    "disk_total_mb": 204800,
    "memory_mb": {"min": 256, "max": 4096, "default": 1024},
    "cpu_shares": {"min": 250, "max": 4000, "default": 1000},
    "disk_mb": {"min": 1024, "max": 20480, "default": 5120},
}
STAMP = "2026-11-28T09:30:00.000Z"


def container(
    index: int,
    name: str,
    status: str,
    *,
    image: str | None = "corral/busybox",
    role: str | None = "barebone",
    memory: int = 1024,
    cpu: int = 1000,
    disk: int = 5120,
    started_ago: timedelta | None = None,
    **extra: Any,
) -> dict[str, Any]:
    db_id = f"{index:08x}-0000-4000-8000-{index:012x}"
    extra.setdefault("role_state", "none" if role == "barebone" else "installed")
    started = None
    if started_ago is not None:
        started = (datetime.now(UTC) - started_ago).isoformat().replace("+00:00", "Z")
    return {
        "id": f"{index:02x}" * 32,
        "db_id": db_id,
        "name": name,
        "image": image,
        "role": role,
        "status": status,
        "created_at": STAMP,
        "last_used_at": STAMP,
        "started_at": started,
        "resources": {"memory_mb": memory, "cpu_shares": cpu, "disk_mb": disk},
        "runtime": "runsc",
        "labels": {},
        "volume": f"corral-vol-{db_id}",
        "owner_id": "u1",
        "role_error": None,
        "engine": "local",
        **extra,
    }


def sample_fleet() -> list[dict[str, Any]]:
    up = timedelta(hours=2, minutes=5, seconds=30)
    return [
        container(
            1,
            "api-server",
            "running",
            image="corral/debian:bookworm",
            role="python",
            memory=2048,
            cpu=2000,
            disk=10240,
            started_ago=up,
        ),
        container(2, "worker-1", "running", started_ago=timedelta(minutes=42, seconds=30)),
        container(3, "scratch", "stopped", memory=512, cpu=500, disk=2048),
        container(4, "build-cache", "creating", memory=1024),
        container(5, "old-db", "missing", image="corral/debian:bookworm"),
        container(6, "broken", "error", error="the sandbox was killed (exit code 137)"),
        {
            **container(
                7, "laptop", "running", image=None, role=None, started_ago=up, role_state=None
            ),
            "id": "agent:00000007-0000-4000-8000-000000000007",
            "session_type": "agent",
            "runtime": "agent",
            "resources": {"memory_mb": 16384, "cpu_shares": 8000, "disk_mb": None},
            "agent": {
                "hostname": "laptop",
                "os": "Linux 6.8",
                "arch": "x86_64",
                "cpus": 8,
                "memory_mb": 16384,
                "load": {"1m": 0.42, "5m": 0.3, "15m": 0.25},
                "last_seen_at": STAMP,
            },
        },
    ]


def event(seq: int, kind: str, payload: dict[str, Any], minute: int) -> dict[str, Any]:
    return {
        "type": kind,
        "container": payload,
        "seq": seq,
        "timestamp": f"2026-11-28T09:{minute:02d}:00.000Z",
    }


def busy_log(fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
    c = {x["name"]: x for x in fleet}
    progress = {
        "id": c["build-cache"]["db_id"],
        "db_id": c["build-cache"]["db_id"],
        "name": "build-cache",
        "stage": "container",
        "message": "creating the sandbox",
        "progress": 40,
    }
    return [
        event(2, "container_created", c["api-server"], 31),
        event(3, "container_started", c["api-server"], 31),
        event(4, "container_started", c["worker-1"], 33),
        event(5, "container_stopped", c["scratch"], 35),
        event(6, "container_updated", c["old-db"], 36),
        event(7, "agent_connected", c["laptop"], 38),
        event(8, "container_stopped", c["broken"], 39),
        event(9, "container_created", c["build-cache"], 40),
        event(10, "container_progress", progress, 40),
    ]


ONE_ENGINE = {"local": {"docker": "ok", "runtime": "ok"}}


def two_engine_fleet() -> list[dict[str, Any]]:
    """The sample fleet on two engines, the second ("east") down: its sandboxes unknown."""
    fleet = sample_fleet()
    for item in fleet[3:6]:
        item.update(engine="east", status="unknown", started_at=None)
    return fleet


TWO_ENGINES_ONE_DOWN = {
    "local": {"docker": "ok", "runtime": "ok"},
    "east": {"docker": "unavailable", "runtime": "unavailable"},
}


class FakeApi(FakeFiles):
    """Answers like the backend, from memory; the event stream gives a list, then the log."""

    server = "http://corral.example:8420"

    def __init__(
        self,
        fleet: list[dict[str, Any]] | None = None,
        events: list[dict[str, Any]] | None = None,
        with_stats: bool = True,
        engines: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.with_stats = with_stats
        self.engines = ONE_ENGINE if engines is None else engines
        self.fleet = sample_fleet() if fleet is None else fleet
        self.log = busy_log(self.fleet) if events is None else events
        self.calls: list[str] = []
        self.tree = sample_tree()
        self.kept: list[dict[str, Any]] = [
            {
                "name": "corral-vol-0000000a-0000-4000-8000-00000000000a",
                "owner_id": "u1",
                "size_mb": 2048,
                "used_mb": 312,
                "container_name": "old-notes",
                "container_db_id": "0000000a-0000-4000-8000-00000000000a",
                "kept_at": STAMP,
            }
        ]

    async def me(self) -> dict[str, Any]:
        user = {"id": "u1", "username": "ada", "tier": "pro", "admin": False, "guest": False}
        return shaped(
            shapes.Me,
            {
                "user": {**user, "created_at": STAMP},
                "tier": "pro",
                "limits": LIMITS,
                "usage": {
                    "containers": 6,
                    "disk_mb": 6 * 5120 + 2048,
                    "kept_volumes": 1,
                    "kept_volumes_mb": 2048,
                },
                "scopes": ["read", "write"],
                "session_expires_at": None,
            },
        )

    async def images(self) -> dict[str, Any]:
        return shaped(
            shapes.ImageList,
            {
                "images": [
                    _image("corral/busybox", "BusyBox", 5),
                    _image("corral/debian:bookworm", "Debian 12", 180),
                ]
            },
        )

    async def roles(self) -> dict[str, Any]:
        return shaped(
            shapes.RoleList,
            {
                "roles": [
                    {
                        "id": "barebone",
                        "name": "Barebone",
                        "description": "The image as it is",
                        "packages": [],
                        "images": ["corral/busybox", "corral/debian:bookworm"],
                    },
                    {
                        "id": "python",
                        "name": "Python",
                        "description": "python3, pip, venv, git",
                        "packages": ["python3"],
                        "images": ["corral/debian:bookworm"],
                    },
                ]
            },
        )

    async def health(self) -> dict[str, Any]:
        all_ok = all(e["docker"] == "ok" for e in self.engines.values())
        return shaped(
            shapes.Health,
            {
                "status": "ok" if all_ok else "degraded",
                "database": "ok",
                "docker": "ok" if all_ok else "unavailable",
                "runtime": "runsc",
                "limits_enforced": all_ok,
                "engines": self.engines,
            },
        )

    def events(self, *, on_state: Callable[[str], None] | None = None, **_: Any) -> FakeStream:
        return FakeStream(self, on_state)

    def stats(self, *, on_state: Callable[[str], None] | None = None, **_: Any) -> FakeStats:
        return FakeStats(self)

    async def logs(
        self, ident: str, *, tail: int = 200, follow: bool = False, **_: Any
    ) -> AsyncIterator[str]:
        self.calls.append("logs")
        for line in LOG_LINES:
            yield line
        if follow:
            await asyncio.Event().wait()  # a follow that sees nothing new

    async def get_container(self, ident: str) -> dict[str, Any]:
        for item in self.fleet:
            if ident in (item.get("db_id"), item.get("id"), item.get("name")):
                return shaped(shapes.Container, dict(item))
        raise KeyError(ident)

    async def volumes(self) -> dict[str, Any]:
        listing = {"volumes": [dict(v) for v in self.kept], "count": len(self.kept)}
        return shaped(shapes.VolumeList, listing)

    async def delete_volume(self, name: str) -> dict[str, Any]:
        self.calls.append("delete_volume")
        self.kept = [v for v in self.kept if v["name"] != name]
        return shaped(shapes.VolumeDeleted, {"message": "volume deleted", "name": name})

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        async def record(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(name)
            return {"message": f"{name} done", "id": args[0] if args else "", "name": ""}

        return record


def _image(name: str, description: str, size_mb: int) -> dict[str, Any]:
    return {
        "name": name,
        "reference": f"{name}:latest" if ":" not in name else name,
        "description": description,
        "available": True,
        "size_mb": size_mb,
        "aliases": [name.split("/")[-1].split(":")[0]],
    }


LOG_LINES = [
    "corral: sandbox started (corral/debian:bookworm, role python, 2048 MB, 2 CPUs)",
    "serving on :8000",
    "GET / 200",
    "GET /favicon.ico 404",
]


def stats_sample(item: dict[str, Any], index: int) -> dict[str, Any]:
    """Fixed usage for a running container (pictures must not change between runs)."""
    return {
        "id": item["id"],
        "db_id": item["db_id"],
        "name": item["name"],
        "cpu_percent": 12.0 * index,
        "memory_used_mb": 128.0 * index,
        "memory_limit_mb": item["resources"]["memory_mb"],
        "pids": 3,
        "timestamp": STAMP,
    }


class FakeStats:
    """The stats stream: one message with every running container's usage, then silence."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api

    async def __aenter__(self) -> FakeStats:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        running = [c for c in self.api.fleet if c.get("status") == "running"]
        running = [c for c in running if c.get("session_type") != "agent"]
        if not self.api.with_stats:
            running = []
        yield shaped(
            shapes.StatsMessage,
            {
                "type": "stats",
                "timestamp": STAMP,
                "stats": [stats_sample(c, i) for i, c in enumerate(running, start=1)],
            },
        )
        await asyncio.Event().wait()


class FakeStream:
    def __init__(self, api: FakeApi, on_state: Callable[[str], None] | None) -> None:
        self.api = api
        self.on_state = on_state
        self.extra: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self.on_state:
            self.on_state("connected")
        fleet = self.api.fleet
        yield shaped(
            shapes.EventMessage,
            {
                "type": "list",
                "seq": 1,
                "timestamp": "2026-11-28T09:30:00.000Z",
                "container": {"containers": fleet, "count": len(fleet), "limit": 10},
            },
        )
        for message in self.api.log:
            yield shaped(shapes.EventMessage, message)
        while True:
            yield await self.extra.get()
