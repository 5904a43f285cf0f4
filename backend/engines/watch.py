"""One engine's watcher and reconciler, as a unit: ``lead`` runs it for as long as this process
leads the engine (``backend.cluster.leader``: always with SQLite, one replica at a time with
PostgreSQL). A replica that loses the lead closes its watcher; the next term gets a new one."""

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
        self.running = False  # while this process leads the engine's watch
        self._watcher = self._new_watcher()

    def _new_watcher(self) -> DockerWatcher:
        return DockerWatcher(self._docker, self._reconciler, self._instance)

    @property
    def current(self) -> DockerWatcher:
        """The watcher of this term (or of the next, before it begins): its ``connected``, its
        reconcile count."""
        return self._watcher

    async def lead(self) -> None:
        """Watch until cancelled (the leadership's work); the watcher closes with the term."""
        watcher = self._watcher
        self.running = True
        try:
            await watcher.lead()
        finally:
            self.running = False
            self._watcher = self._new_watcher()
            await watcher.close()

    async def close(self) -> None:
        """Release the next term's watcher (the leadership has ended the current term)."""
        await self._watcher.close()
