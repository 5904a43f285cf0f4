"""One Docker engine: its client, its last known health, and the services built on it."""

from __future__ import annotations

from dataclasses import dataclass

from backend.containers.catalog import Catalog
from backend.containers.service import ContainerServices
from backend.docker_service import DockerService
from backend.engines.health import UNREACHABLE, EngineHealth
from backend.engines.watch import EngineWatch
from backend.settings import EngineSpec, Settings


@dataclass(frozen=True)
class EngineParts:
    """What is built on an engine once the database is open (``EnginePool.attach``)."""

    services: ContainerServices
    catalog: Catalog
    watch: EngineWatch


class Engine:
    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        self.name = spec.name
        self.spec = spec
        self.docker = DockerService(
            spec.docker_host, settings.docker_workers, settings.docker_timeout_s
        )
        self.health: EngineHealth = UNREACHABLE  # as last probed (``EnginePool.refresh``)
        self._parts: EngineParts | None = None

    def attach(self, parts: EngineParts) -> None:
        self._parts = parts

    @property
    def attached(self) -> bool:
        return self._parts is not None

    @property
    def parts(self) -> EngineParts:
        if self._parts is None:
            raise RuntimeError(f"engine {self.name}: its services are not built yet")
        return self._parts

    @property
    def services(self) -> ContainerServices:
        return self.parts.services

    @property
    def catalog(self) -> Catalog:
        return self.parts.catalog

    @property
    def watch(self) -> EngineWatch:
        return self.parts.watch

    async def aclose(self) -> None:
        await self.docker.aclose()
        self.docker.close()
