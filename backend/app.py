"""The application factory: ``create_app(settings)``.

Every long-lived resource (database engine, Docker client, services) is opened and closed in a
``cleanup_ctx`` generator, in dependency order, so shutdown undoes start-up in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from backend.agents.service import AgentService
from backend.auth.live import LiveStreams
from backend.auth.principal import Authenticator
from backend.auth.tokens import JwtSigner, load_or_create_secret
from backend.auth.users import UserService
from backend.containers.catalog import Catalog
from backend.containers.service import ContainerServices
from backend.containers.volumes import VolumeManager
from backend.containers.watcher import DockerWatcher
from backend.db.engine import make_engine, make_sessionmaker
from backend.db.schema import upgrade_schema
from backend.docker_service import DockerService
from backend.errors import DockerError, DockerUnavailable
from backend.events.hub import CLOSE_GOING_AWAY, EventHub
from backend.events.log import EventLog
from backend.middleware import auth_middleware, error_middleware, rate_limit_middleware
from backend.openapi_served import ServedDocument
from backend.ratelimit import RateLimiter
from backend.routes import ROUTES
from backend.settings import Settings
from backend.state import (
    AGENTS,
    AUTHENTICATOR,
    CATALOG,
    CONTAINERS,
    DB_ENGINE,
    DOCKER,
    EVENT_HUB,
    EVENTS,
    INSTANCE,
    LIVE_STREAMS,
    OPENAPI,
    RATE_LIMITER,
    SESSIONS,
    SETTINGS,
    SIGNER,
    STATS,
    USERS,
    WATCHER,
)
from backend.stats.sampler import StatsSampler
from corral.aio import TaskOwner

log = logging.getLogger(__name__)


class RuntimeMissing(RuntimeError):
    """The engine runs but has no gVisor runtime: refusing to start rather than run unsandboxed."""


def instance_id(settings: Settings) -> str:
    """This installation's ID, labelled on everything it creates on Docker, so that two backends
    sharing one engine (or tests) never touch each other's containers."""
    if settings.instance_label:
        return settings.instance_label
    path: Path = settings.data_dir / "instance-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_hex(8)
        path.write_text(value + "\n")
        return value


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, settings.database_pool_size)
    await upgrade_schema(engine)
    app[DB_ENGINE] = engine
    app[SESSIONS] = make_sessionmaker(engine)
    app[SIGNER] = JwtSigner(load_or_create_secret(settings.secret_path))
    app[AUTHENTICATOR] = Authenticator(app[SESSIONS], app[SIGNER], settings.auth_cache_s)
    app[USERS] = UserService(
        app[SESSIONS], revoked=app[AUTHENTICATOR].forget_token, live=app[LIVE_STREAMS]
    )
    app[LIVE_STREAMS].check_with(app[USERS].is_revoked)
    app[INSTANCE] = instance_id(settings)
    yield
    await engine.dispose()


async def _docker(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    docker = DockerService(settings.docker_host, settings.docker_workers, settings.docker_timeout_s)
    try:
        runtimes = await docker.runtimes()
    except (DockerUnavailable, DockerError):
        log.warning(
            "the Docker engine is not reachable; serving degraded until it is (just engine)"
        )
    else:
        if settings.runtime not in runtimes:
            docker.close()
            raise RuntimeMissing(
                f"The Docker engine has no {settings.runtime!r} runtime registered. Install gVisor "
                "and register it in /etc/docker/daemon.json (run 'just engine'), or set "
                'runtime = "runc" in the configuration to run without a sandbox.'
            )
    app[DOCKER] = docker
    yield
    await docker.aclose()
    docker.close()


def _volume_root(settings: Settings) -> Path | None:
    """Where ext4-backed volumes live, or None for plain Docker volumes (no disk quota)."""
    if settings.disk_quotas == "none":
        return None
    if not VolumeManager.quotas_possible():
        if settings.disk_quotas == "ext4":
            raise RuntimeError(
                'disk_quotas = "ext4" needs root and e2fsprogs (mkfs.ext4, resize2fs, mount)'
            )
        log.warning("disk quotas are off: they need root and e2fsprogs")
        return None
    return settings.volumes_dir


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    events = EventLog(app[SESSIONS], settings.event_log_per_user)
    catalog = Catalog(settings, app[DOCKER])
    volumes = VolumeManager(app[DOCKER], app[INSTANCE], _volume_root(settings))
    containers = ContainerServices.build(
        settings, app[SESSIONS], app[DOCKER], events, catalog, volumes, app[INSTANCE]
    )
    app[EVENTS] = events
    app[CATALOG] = catalog
    app[OPENAPI] = ServedDocument(settings, catalog)
    app[CONTAINERS] = containers
    mounted = await volumes.remount_all(await containers.repository.all_volumes())
    if mounted:
        log.info("mounted %d volume(s) again", mounted)
    with contextlib.suppress(DockerError, DockerUnavailable):
        await containers.roles.images.sweep()
    agents = AgentService(app[SESSIONS], events, revoked=app[AUTHENTICATOR].forget_token)
    await agents.mark_all_offline()
    app[AGENTS] = agents
    watcher = DockerWatcher(app[DOCKER], containers.reconciler, app[INSTANCE])
    app[WATCHER] = watcher
    watcher.start()
    yield
    await watcher.close()
    await agents.close_all()
    await containers.drain()


async def _event_streams(app: web.Application) -> AsyncIterator[None]:
    """The hub that fans committed events out to WebSocket subscribers, and the periodic prune
    that keeps the log bounded. Open streams are closed (1001) in ``on_shutdown``, before this
    runs: aiohttp waits for open handlers before it tears the contexts down."""
    settings = app[SETTINGS]
    events = app[EVENTS]
    hub = EventHub(settings.event_queue_size)
    app[EVENT_HUB] = hub
    events.add_listener(hub.deliver)
    tasks = TaskOwner("event-log-prune")
    tasks.spawn(_prune_periodically(events, settings.event_prune_interval_s))
    yield
    await tasks.close()
    events.remove_listener(hub.deliver)
    await _close_event_streams(app)


async def _stats(app: web.Application) -> AsyncIterator[None]:
    """The stats sampler (live usage): idle until a stats stream subscribes. It follows the
    container service's events to open and close each sandbox's engine stream."""
    sampler = StatsSampler(app[DOCKER], app[CONTAINERS].repository, app[SETTINGS].stats_interval_s)
    app[STATS] = sampler
    app[EVENTS].add_listener(sampler.on_event)
    yield
    app[EVENTS].remove_listener(sampler.on_event)
    await _close_stats_streams(app)
    await sampler.close()


async def _prune_periodically(events: EventLog, interval_s: float) -> None:
    while True:
        try:
            removed = await events.prune()
        except Exception:
            log.exception("pruning the event log failed; retrying later")
        else:
            if removed:
                log.debug("pruned %d old events", removed)
        await asyncio.sleep(interval_s)


async def _close_event_streams(app: web.Application) -> None:
    hub = app.get(EVENT_HUB)
    if hub is not None and len(hub):
        timeout = app[SETTINGS].event_close_timeout_s + 1.0
        await hub.close_all(CLOSE_GOING_AWAY, "server shutting down", timeout)


async def _close_stats_streams(app: web.Application) -> None:
    sampler = app.get(STATS)
    if sampler is not None and len(sampler):
        timeout = app[SETTINGS].event_close_timeout_s + 1.0
        await sampler.close_all(CLOSE_GOING_AWAY, "server shutting down", timeout)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, rate_limit_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[LIVE_STREAMS] = LiveStreams()
    app[RATE_LIMITER] = RateLimiter(
        {"guest": settings.guest_signin_rate, "login": settings.login_rate},
        settings.write_rate,
        settings.trusted_proxies,
        settings.rate_limit_keys,
    )
    app.add_routes(ROUTES)
    app.cleanup_ctx.extend([_database, _docker, _services, _event_streams, _stats])
    app.on_shutdown.extend([_close_event_streams, _close_stats_streams])
    return app
