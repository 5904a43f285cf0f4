"""One engine's watcher and reconciler, as a unit started and stopped on its own: a process that
shares the database with others runs it only while it leads that engine."""

from __future__ import annotations

from backend.containers.reconcile import Reconciler
from backend.containers.watcher import DockerWatcher
from backend.docker_service import DockerService


class EngineWatch:
    def __init__(
        self, name: str, docker: DockerService, reconciler: Reconciler, instance: str
    ) -> None:
        self.name = name
        self._docker = docker
        self._reconciler = reconciler
        self._instance = instance
        self.watcher: DockerWatcher | None = None  # while started

    @property
    def running(self) -> bool:
        return self.watcher is not None

    @property
    def current(self) -> DockerWatcher:
        """The watcher while started (its ``connected``, its reconcile count)."""
        if self.watcher is None:
            raise RuntimeError(f"engine {self.name}: its watch is not started")
        return self.watcher

    def start(self) -> None:
        """Watch the engine's events (reconciling its rows on each (re)connect) until ``close``.
        A watch closed may be started again: each start makes a new watcher."""
        if self.watcher is None:
            self.watcher = DockerWatcher(self._docker, self._reconciler, self._instance)
            self.watcher.start()

    async def close(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            await watcher.close()
