"""The engines, together: each container's operations go to the engine its row names, a create
goes where ``placement`` says, and each engine's health is probed in the background so that an
engine going away (or coming back) is announced for its containers.

While an engine cannot be reached, its containers read ``unknown`` (derived, never stored: the
rows keep what was last known) and every operation on them answers 503 ``docker unavailable``
(the Docker call itself fails; nothing in the database changes); the other engines' containers
are untouched. When it answers again its watcher reconnects and reconciles its rows, and each of
them is announced again with its stored status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.principal import Principal
from backend.containers.catalog import Catalog
from backend.containers.locks import KeyedLocks, RemoteLocks
from backend.containers.provisioning import CreateResult
from backend.containers.repository import ContainerRepository
from backend.containers.resources import check_resources
from backend.containers.service import ContainerServices
from backend.containers.volumes import VolumeManager
from backend.db.models import Container, KeptVolume, iso
from backend.engines.drains import Drains
from backend.engines.engine import Engine, EngineParts
from backend.engines.health import EngineHealth, probe
from backend.engines.placement import Candidate, choose
from backend.engines.watch import EngineWatch
from backend.errors import DockerUnavailable, EngineNotFound, GuestSessionExpired
from backend.events.log import EventLog
from backend.settings import EngineSpec, ImageSpec, Settings
from corral.aio import TaskOwner
from corral.shapes import Container as ContainerJson
from corral.shapes import ContainerCreate, EventType, Status
from corral.shapes import Engine as EngineJson
from corral.shapes import KeptVolume as KeptVolumeJson

log = logging.getLogger(__name__)


class RuntimeMissing(RuntimeError):
    """An engine runs but has no gVisor runtime: refusing to start rather than run unsandboxed."""


PLACEMENT = "engines"  # the one key placement serializes on


class EnginePool:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engines = {spec.name: Engine(spec, settings) for spec in settings.engine_specs}
        self.first = next(iter(self._engines.values()))  # whose catalog lists the images
        self._rows: ContainerRepository | None = None
        self._events: EventLog | None = None
        self._drains: Drains | None = None
        # A choice and its row stored, one create at a time: in this process, and with replicas
        # across all of them (``attach``), or two could both take an engine's last room.
        self._placing = KeyedLocks()
        self._tasks = TaskOwner("engine-health")
        # Each engine's announcement in progress: one task, replaced when the engine flips again.
        self._announcing: dict[str, asyncio.Task[None]] = {}

    def __iter__(self) -> Iterator[Engine]:
        return iter(self._engines.values())

    def __len__(self) -> int:
        return len(self._engines)

    # -- start and stop -----------------------------------------------------------------------

    async def check_runtimes(self) -> None:
        """Probe every engine once. One that answers without the runtime stops the start (it
        would run sandboxes unsandboxed); one that does not answer is served degraded until it
        does (its containers unknown)."""
        await self.refresh(announce=False)
        runtime = self._settings.runtime
        for engine in self:
            if not engine.health.reachable:
                log.warning(
                    "Docker engine %r is not reachable; serving degraded until it is", engine.name
                )
            elif not engine.health.runtime:
                raise RuntimeMissing(
                    f"The Docker engine {engine.name!r} has no {runtime!r} runtime registered. "
                    "Install gVisor and register it in /etc/docker/daemon.json (run 'just "
                    f'engine\'), or set runtime = "runc" to run without a sandbox.'
                )

    def attach(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rows: ContainerRepository,
        events: EventLog,
        instance: str,
        volume_root: Callable[[EngineSpec], Path | None],
        remote_locks: RemoteLocks | None = None,
    ) -> None:
        """Build each engine's services on the shared rows (the database is open now)."""
        settings = self._settings
        self._rows, self._events, self._drains = rows, events, Drains(sessions)
        self._placing = KeyedLocks(remote_locks, "placement")
        for engine in self:
            catalog = Catalog(settings, engine.docker)
            volumes = VolumeManager(engine.docker, instance, volume_root(engine.spec))
            services = ContainerServices.build(
                settings,
                sessions,
                rows,
                engine.docker,
                catalog,
                volumes,
                instance,
                engine.name,
                remote_locks,
            )
            watch = EngineWatch(engine.name, engine.docker, services.reconciler, instance)
            engine.attach(EngineParts(services, catalog, watch))

    def start_probing(self) -> None:
        """Probe each engine every ``engine_probe_interval_s`` until ``stop`` (a loop per
        engine, so one that hangs delays no other)."""
        for engine in self:
            self._tasks.spawn(self._probe_periodically(engine), name=f"engine-health-{engine.name}")

    async def _probe_periodically(self, engine: Engine) -> None:
        while True:
            await asyncio.sleep(self._settings.engine_probe_interval_s)  # a period, not a wait
            try:
                await self._check(engine, announce=True)
            except Exception:
                log.exception("probing engine %s failed; trying again", engine.name)

    async def stop(self) -> None:
        """Stop probing, then each engine's watch and its background work (before the database
        closes: they write to it)."""
        await self._tasks.close()
        for engine in self:
            if engine.attached:
                await engine.watch.close()
                await engine.services.drain()

    async def close(self) -> None:
        """Close every engine's client (after ``stop``)."""
        await self._tasks.close()
        for engine in self:
            await engine.aclose()

    # -- health -------------------------------------------------------------------------------

    async def refresh(self, *, announce: bool = True) -> None:
        """Probe every engine now (``_check``)."""
        await asyncio.gather(*(self._check(engine, announce=announce) for engine in self))

    async def _check(self, engine: Engine, *, announce: bool) -> None:
        """Probe one engine. One that went away has each of its containers announced as
        ``unknown``; one that came back, each with its stored status."""
        health = await probe(engine.docker, self._settings.runtime)
        changed = health.reachable != engine.health.reachable
        engine.health = health
        # Only the replica leading the engine's watch tells clients it went or came back (each
        # replica probes for itself; one event per change is enough).
        if changed and announce and engine.watch.running:
            state = "answers again" if health.reachable else "cannot be reached"
            log.warning("Docker engine %r %s", engine.name, state)
            # In the background: with many sandboxes (each announced under its lock) it takes
            # a while, and the probes must go on meanwhile, or the engine's health (what the
            # lists show) would wait for the announcement. A newer flip replaces it.
            previous = self._announcing.pop(engine.name, None)
            if previous is not None:
                previous.cancel()
            self._announcing[engine.name] = self._tasks.spawn(
                self._announce(engine), name=f"engine-announce-{engine.name}"
            )

    async def _announce(self, engine: Engine) -> None:
        """One ``container_updated`` per sandbox of ``engine``: ``unknown`` while it is down,
        else the stored row. Each is read and sent under the row's lock, as the reconciler
        writes, so the last event a client gets for a row is never older than the row."""
        rows, events = self.rows, self.events
        for db_id in await rows.ids(engine.name):
            async with rows.lock(db_id):
                row = await rows.get(db_id)
                if row is None:
                    continue
                payload: dict[str, Any] = dict(row.as_json())
                if not engine.health.reachable:
                    payload["status"] = Status.UNKNOWN
                    payload["started_at"] = None
                await events.publish(row.user_id, EventType.CONTAINER_UPDATED, payload)

    def down(self) -> set[str]:
        """The engines that did not answer their last probe."""
        return {engine.name for engine in self if not engine.health.reachable}

    def overlay(self, items: list[ContainerJson]) -> list[ContainerJson]:
        """``items`` with ``status: unknown`` on the containers of engines that do not answer
        (or that are no longer configured). Agents (no engine) are left as they are."""
        down = self.down()

        def unknown(item: ContainerJson) -> bool:
            engine = item.get("engine")
            return engine is not None and (engine in down or engine not in self._engines)

        return [
            {**item, "status": Status.UNKNOWN, "started_at": None} if unknown(item) else item
            for item in items
        ]

    # -- routing ------------------------------------------------------------------------------

    def get(self, name: str) -> Engine:
        """The engine a row names; 503 when it is no longer configured (its sandbox is out of
        reach exactly as if it were down)."""
        engine = self._engines.get(name)
        if engine is None:
            raise DockerUnavailable(
                f"The Docker engine {name!r} this container lives on is not configured; "
                "nothing was changed."
            )
        return engine

    async def resolve(self, principal: Principal, ident: str) -> tuple[Container, Engine]:
        """The container ``ident`` names (404 as ever) and its engine."""
        row = await self.rows.resolve(principal, ident)
        return row, self.get(row.engine)

    async def engine_of_volume(self, name: str) -> Engine:
        """The engine holding the kept volume ``name`` (the first one when there is no such
        volume: its own lookup then says 404, exactly as before)."""
        record = await self.first.services.kept.record_of(name)
        return self.first if record is None else self.get(record.engine)

    async def kept_json(self, principal: Principal, all_users: bool) -> list[KeptVolumeJson]:
        """The kept volumes (one table for every engine), each measured on its own engine
        (None for one whose engine is no longer configured)."""

        async def measure(record: KeptVolume) -> int | None:
            engine = self._engines.get(record.engine)
            return None if engine is None else await engine.services.volumes.used_mb(record.name)

        return await self.first.services.kept.list_json(principal, all_users, measure)

    async def services_for(self, principal: Principal, ident: str) -> ContainerServices:
        """The services of the engine of the container ``ident`` names (404 as ever)."""
        return self.get(await self.rows.engine_of(principal, ident)).services

    async def stats_once(self, engine: str, container_id: str) -> dict[str, Any]:
        return await self.get(engine).docker.stats_once(container_id)

    async def stats_stream(self, engine: str, container_id: str) -> AsyncIterator[dict[str, Any]]:
        async for raw in self.get(engine).docker.stats_stream(container_id):
            yield raw

    # -- create -------------------------------------------------------------------------------

    async def create(self, principal: Principal, fields: ContainerCreate) -> CreateResult:
        """Place a new sandbox (``backend.engines.placement``) and create it there."""
        if principal.guest_session_over():
            raise GuestSessionExpired()
        tier = self._settings.tier(principal.user.tier)
        image = self.first.catalog.image(fields["image"])
        memory_mb = check_resources(dict(fields), tier, fill_defaults=True)["memory_mb"]
        allowed = list(tier.engines) or list(self._engines)
        volume = fields.get("volume")
        if volume:
            kept = await self.first.services.kept.find(principal.user_id, volume)
            if kept is not None:
                allowed = [kept.engine]  # a volume stays on its engine's host
        engines = [self._engines[name] for name in allowed if name in self._engines]
        images = await asyncio.gather(*(self._has_image(engine, image) for engine in engines))
        async with self._placing.hold(PLACEMENT):
            placed = await self.rows.placed()
            drains = await self.drains.all()
            candidates = [
                _candidate(engine, has, placed.get(engine.name, (0, 0))[1], engine.name in drains)
                for engine, has in zip(engines, images, strict=True)
            ]
            chosen = self._engines[choose(candidates, memory_mb, image.name)]
            return await chosen.services.provisioner.create(principal, fields)

    @staticmethod
    async def _has_image(engine: Engine, image: ImageSpec) -> bool:
        if not engine.health.reachable:
            return False
        try:
            return await engine.docker.image_exists(image.reference)
        except DockerUnavailable:
            return False

    # -- the engines' own routes --------------------------------------------------------------

    async def listing(self) -> list[EngineJson]:
        """Every engine, probed now, with its sandboxes, memory and drain."""
        await self.refresh()
        placed = await self.rows.placed()
        drains = await self.drains.all()
        return [
            _engine_json(
                engine,
                placed.get(engine.name, (0, 0)),
                engine.name in drains,
                drains.get(engine.name),
            )
            for engine in self
        ]

    async def drain(self, name: str, draining: bool) -> EngineJson:
        if name not in self._engines:
            raise EngineNotFound()
        await self.drains.set(name, draining)
        return next(item for item in await self.listing() if item["name"] == name)

    # -- collaborators (set by ``attach``) ----------------------------------------------------

    @property
    def rows(self) -> ContainerRepository:
        assert self._rows is not None, "EnginePool.attach first"
        return self._rows

    @property
    def events(self) -> EventLog:
        assert self._events is not None, "EnginePool.attach first"
        return self._events

    @property
    def drains(self) -> Drains:
        assert self._drains is not None, "EnginePool.attach first"
        return self._drains


def _candidate(engine: Engine, has_image: bool, placed_mb: int, draining: bool) -> Candidate:
    health: EngineHealth = engine.health
    return Candidate(
        name=engine.name,
        reachable=health.reachable,
        runtime=health.runtime,
        draining=draining,
        has_image=has_image,
        memory_total_mb=health.memory_total_mb,
        memory_placed_mb=placed_mb,
    )


def _engine_json(
    engine: Engine, placed: tuple[int, int], draining: bool, drained_at: Any
) -> EngineJson:
    health = engine.health
    total = health.memory_total_mb
    return {
        "name": engine.name,
        "docker": "ok" if health.reachable else "unavailable",
        "runtime": "ok" if health.runtime else "unavailable",
        "draining": draining,
        "drained_at": iso(drained_at),
        "sandboxes": placed[0],
        "memory_total_mb": total,
        "memory_placed_mb": placed[1],
        "memory_free_mb": None if total is None else total - placed[1],
        "labels": dict(engine.spec.labels),
    }
