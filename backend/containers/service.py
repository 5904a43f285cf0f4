"""The container services, one per responsibility, built together and shut down together.

- ``repository``: the rows (reads, lookup, the Docker-ID cache, writes with their event in one
  transaction, progress events, the per-container locks);
- ``provisioner``: create (the request, then the sandbox built in the background);
- ``lifecycle``: start, stop, delete, and the recreation of a container Docker lost;
- ``reconfigure``: settings changes (rebuilding a running sandbox) and role reinstalls;
- ``roles``: the role image a new sandbox starts from, and the background role work;
- ``reconciler``: Docker-side truth (used by the watcher);
- ``kept`` and ``volumes``: kept volumes, and the volumes themselves;
- ``files``: files in and out of a sandbox (``backend.files``).

There is one set per Docker engine (``backend.engines``), all sharing one repository (the rows,
their locks and their caches): handlers reach a container's engine's set through the pool
(``request.app[ENGINES].resolve``). Each service gets only its collaborators; role work reaches
the rows through a small protocol, never a service.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.containers.catalog import Catalog
from backend.containers.kept import KeptVolumes
from backend.containers.lifecycle import Lifecycle
from backend.containers.locks import RemoteLocks
from backend.containers.packages import PackageCache
from backend.containers.provisioning import Provisioner
from backend.containers.reconcile import Reconciler
from backend.containers.reconfigure import Reconfigurer
from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.role_images import RoleImages
from backend.containers.role_switch import RoleSwitch
from backend.containers.roles import RoleInstaller
from backend.containers.starter import SandboxStarter
from backend.containers.volumes import VolumeManager
from backend.docker_service import DockerService
from backend.files.service import FileService
from backend.settings import Settings


@dataclass(frozen=True)
class ContainerServices:
    repository: ContainerRepository
    provisioner: Provisioner
    lifecycle: Lifecycle
    reconfigure: Reconfigurer
    roles: RoleInstaller
    reconciler: Reconciler
    kept: KeptVolumes
    volumes: VolumeManager
    files: FileService

    @classmethod
    def build(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        rows: ContainerRepository,
        docker: DockerService,
        catalog: Catalog,
        volumes: VolumeManager,
        instance: str,
        engine: str,
        remote_locks: RemoteLocks | None = None,
    ) -> ContainerServices:
        """The services of the engine named ``engine`` (reached through ``docker``). With
        ``remote_locks`` (replicas on one database), every per-kept-volume lock is also held
        across processes (the rows' locks are the shared repository's)."""
        kept = KeptVolumes(sessions, volumes, remote_locks)
        rebuilder = Rebuilder(settings, docker, volumes, instance)
        packages = PackageCache(settings)
        images = RoleImages(settings, docker, packages)
        switch = RoleSwitch(rows, docker, rebuilder, catalog, images)
        roles = RoleInstaller(rows, switch, catalog, docker, settings, packages, images)
        starter = SandboxStarter(rows, docker, roles)
        provisioner = Provisioner(
            rows,
            settings=settings,
            docker=docker,
            catalog=catalog,
            volumes=volumes,
            kept=kept,
            engine=engine,
            rebuilder=rebuilder,
            roles=roles,
            starter=starter,
        )
        return cls(
            repository=rows,
            provisioner=provisioner,
            lifecycle=Lifecycle(
                rows,
                settings=settings,
                docker=docker,
                volumes=volumes,
                rebuilder=rebuilder,
                roles=roles,
                starter=starter,
            ),
            reconfigure=Reconfigurer(
                rows,
                settings=settings,
                volumes=volumes,
                rebuilder=rebuilder,
                roles=roles,
                starter=starter,
            ),
            roles=roles,
            reconciler=Reconciler(
                rows,
                docker=docker,
                instance=instance,
                engine=engine,
                rebuilder=rebuilder,
                roles=roles,
                starter=starter,
                provisioning=provisioner,
            ),
            kept=kept,
            volumes=volumes,
            files=FileService(rows, docker, volumes),
        )

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Let background work finish (bounded), then cancel what is left. Role installs are
        not waited for (they take minutes); they are resumed at the next start."""
        await self.roles.close()
        await self.provisioner.drain(timeout_s)
