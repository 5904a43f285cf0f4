"""An engine's health: whether it answers, whether it has the runtime, and its memory (what
placement compares), read from one ``docker info``."""

from __future__ import annotations

from dataclasses import dataclass

from backend.docker_service import DockerService
from backend.errors import DockerError, DockerUnavailable

MB = 1024 * 1024


@dataclass(frozen=True)
class EngineHealth:
    reachable: bool
    runtime: bool  # the configured runtime is registered (False while unreachable: unknown)
    memory_total_mb: int | None  # None while unreachable
    cgroup_limits: bool = (
        False  # memory and CPU limits supported (``MemoryLimit``, ``CpuCfsQuota``)
    )

    @property
    def ok(self) -> bool:
        return self.reachable and self.runtime


UNREACHABLE = EngineHealth(reachable=False, runtime=False, memory_total_mb=None)


async def probe(docker: DockerService, runtime: str) -> EngineHealth:
    """Ask the engine now (one ``docker info``); an engine that does not answer is unreachable."""
    try:
        info = await docker.info()
    except (DockerUnavailable, DockerError):
        return UNREACHABLE
    memory = info.get("MemTotal")
    return EngineHealth(
        reachable=True,
        runtime=runtime in (info.get("Runtimes") or {}),
        memory_total_mb=int(memory) // MB if isinstance(memory, int) and memory > 0 else None,
        cgroup_limits=bool(info.get("MemoryLimit")) and bool(info.get("CpuCfsQuota")),
    )
