"""What the backend hands the engine (``SandboxSpec``) and what it reads back
(``ContainerState``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SandboxSpec:
    """Everything Docker needs to create one sandbox; built by the container services
    (``backend.containers.sandbox``)."""

    name: str
    image: str
    runtime: str
    labels: dict[str, str]
    environment: dict[str, str]
    volume: str
    mount_point: str
    memory_mb: int
    cpu_millicores: int
    pids_limit: int
    network_mode: str
    hostname: str
    command: list[str]
    cap_add: tuple[str, ...] = ()
    extra_binds: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    log_max_mb: int = 10  # the sandbox's output kept by the engine: two files of this size
    # Labels ``volume`` must carry: the sandbox is created only on a volume Corral made (the
    # engine would make an empty, unlabelled one in place of a missing volume).
    volume_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerState:
    """The parts of ``docker inspect`` the backend acts on."""

    id: str
    name: str
    status: str  # Docker's own word: created, running, exited, dead, paused, restarting, removing
    running: bool
    exit_code: int | None
    oom_killed: bool
    labels: dict[str, str]
    started_at: str | None = None


def state_from_inspect(raw: dict[str, Any]) -> ContainerState:
    state = raw.get("State") or {}
    return ContainerState(
        id=str(raw["Id"]),
        name=str(raw.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "unknown")),
        running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        labels=dict((raw.get("Config") or {}).get("Labels") or {}),
        started_at=state.get("StartedAt"),
    )


def state_from_summary(row: dict[str, Any]) -> ContainerState:
    names = row.get("Names") or [""]
    return ContainerState(
        id=str(row["Id"]),
        name=str(names[0]).lstrip("/"),
        status=str(row.get("State", "unknown")),
        running=row.get("State") == "running",
        exit_code=None,
        oom_killed=False,
        labels=dict(row.get("Labels") or {}),
    )
