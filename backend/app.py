"""The application factory: ``create_app(settings)``.

Every long-lived resource (database engine, Docker client, services) is opened and closed in a
``cleanup_ctx`` generator, in dependency order, so shutdown undoes start-up in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

from aiohttp import web

from backend.agents.service import AgentService
from backend.auth.live import LiveStreams
from backend.auth.principal import Authenticator
from backend.auth.tokens import JwtSigner
from backend.auth.users import UserService
from backend.cluster import Cluster, Leadership
from backend.cluster.leader import Work
from backend.cluster.shared import instance_id, signing_key
from backend.cluster.wiring import share_events, share_tokens
from backend.containers.repository import ContainerRepository
from backend.containers.volumes import VolumeManager
from backend.db.engine import make_engine, make_sessionmaker
from backend.db.schema import upgrade_schema
from backend.engines import Engine, EnginePool, RuntimeMissing
from backend.errors import DockerError, DockerUnavailable
from backend.events.hub import CLOSE_GOING_AWAY, EventHub
from backend.events.log import EventLog
from backend.middleware import auth_middleware, error_middleware, rate_limit_middleware
from backend.openapi_served import ServedDocument
from backend.ratelimit import RateLimiter, SharedBuckets
from backend.routes import ROUTES
from backend.settings import EngineSpec, Settings
from backend.state import (
    AGENTS,
    AUTHENTICATOR,
    CATALOG,
    CLUSTER,
    CONTAINERS,
    DB_ENGINE,
    ENGINES,
    EVENT_HUB,
    EVENTS,
    FORGET_TOKEN,
    INSTANCE,
    LIVE_STREAMS,
    OPENAPI,
    RATE_LIMITER,
    SESSIONS,
    SETTINGS,
    SIGNER,
    STATS,
    USERS,
)
from backend.stats.sampler import StatsSampler

log = logging.getLogger(__name__)

__all__ = ["RuntimeMissing", "create_app", "instance_id"]

RATE_BUCKETS_PRUNE_S = 60.0  # how often the full buckets are dropped from the shared table


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, settings.database_pool_size)
    await upgrade_schema(engine)
    app[DB_ENGINE] = engine
    app[SESSIONS] = make_sessionmaker(engine)
    cluster = Cluster.for_database(settings.resolved_database_url)
    if cluster is not None:
        app[CLUSTER] = cluster
    app[SIGNER] = JwtSigner(await signing_key(settings, app[SESSIONS]))
    authenticator = Authenticator(app[SESSIONS], app[SIGNER], settings.auth_cache_s)
    app[AUTHENTICATOR] = authenticator
    forget: Callable[[str], None] = authenticator.forget_token
    if cluster is not None:
        forget = share_tokens(cluster, authenticator, app[LIVE_STREAMS])
    app[FORGET_TOKEN] = forget
    app[USERS] = UserService(app[SESSIONS], revoked=forget, live=app[LIVE_STREAMS])
    app[LIVE_STREAMS].check_with(app[USERS].is_revoked)
    app[INSTANCE] = await instance_id(settings, app[SESSIONS])
    yield
    if cluster is not None:
        await cluster.close()
    await engine.dispose()


async def _docker(app: web.Application) -> AsyncIterator[None]:
    """The engines (``backend.engines``): a client each, probed once. One that answers without
    the runtime stops the start (``RuntimeMissing``)."""
    engines = EnginePool(app[SETTINGS])
    try:
        await engines.check_runtimes()
    except BaseException:
        await engines.close()
        raise
    app[ENGINES] = engines
    yield
    await engines.close()


def _volume_root(settings: Settings) -> Callable[[EngineSpec], Path | None]:
    """Where each engine's ext4-backed volumes live, or None for plain Docker volumes (no disk
    quota): decided once, for every engine alike."""
    if settings.disk_quotas == "none":
        return lambda spec: None
    if not VolumeManager.quotas_possible():
        if settings.disk_quotas == "ext4":
            raise RuntimeError(
                'disk_quotas = "ext4" needs root and e2fsprogs (mkfs.ext4, resize2fs, mount)'
            )
        log.warning("disk quotas are off: they need root and e2fsprogs")
        return lambda spec: None
    return lambda spec: spec.volumes_dir


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engines = app[ENGINES]
    cluster = app.get(CLUSTER)
    remote_locks = cluster.locks if cluster is not None else None
    events = EventLog(app[SESSIONS], settings.event_log_per_user)
    rows = ContainerRepository(app[SESSIONS], events, remote_locks)
    engines.attach(app[SESSIONS], rows, events, app[INSTANCE], _volume_root(settings), remote_locks)
    if cluster is not None:
        await share_events(cluster, events, rows, app[AUTHENTICATOR])
    app[EVENTS] = events
    app[CATALOG] = engines.first.catalog
    app[OPENAPI] = ServedDocument(settings, engines.first.catalog)
    app[CONTAINERS] = engines.first.services
    for engine in engines:
        await _prepare_engine(engine, rows)
    agents = AgentService(
        app[SESSIONS],
        events,
        revoked=app[FORGET_TOKEN],
        heartbeat_s=settings.agent_heartbeat_s,
        bus=cluster.bus if cluster is not None else None,
    )
    await agents.start(alone=cluster is None)
    app[AGENTS] = agents
    # Each engine's events are watched (and its rows reconciled) by one replica at a time, and
    # so is the sweep of agents not heard from.
    leaders = [
        _leadership(app, f"docker-watcher:{app[INSTANCE]}:{engine.name}", engine.watch.lead)
        for engine in engines
    ]
    leaders.append(
        _leadership(
            app,
            f"agents-sweep:{app[INSTANCE]}",
            partial(
                _periodically, agents.sweep_stale, settings.agent_heartbeat_s, "sweeping agents"
            ),
        )
    )
    if cluster is not None:  # every replica counts in one place (backend.ratelimit)
        shared = SharedBuckets(app[SESSIONS])
        app[RATE_LIMITER].share(shared)
        prune = partial(_periodically, shared.prune, RATE_BUCKETS_PRUNE_S, "pruning buckets")
        leaders.append(_leadership(app, f"rate-buckets-prune:{app[INSTANCE]}", prune))
    engines.start_probing()
    yield
    for leader in leaders:
        await leader.close()
    await engines.stop()
    await agents.close_all()
    if events.feed is not None:
        await events.feed.close()


async def _prepare_engine(engine: Engine, rows: ContainerRepository) -> None:
    """Mount the engine's volumes again and sweep its stale role images (when it answers)."""
    services = engine.services
    mounted = await services.volumes.remount_all(await rows.all_volumes(engine.name))
    if mounted:
        log.info("engine %s: mounted %d volume(s) again", engine.name, mounted)
    with contextlib.suppress(DockerError, DockerUnavailable):
        await services.roles.images.sweep()


def _leadership(app: web.Application, name: str, work: Work) -> Leadership:
    """``work`` run by this process alone (SQLite), or by one replica at a time (PostgreSQL)."""
    cluster = app.get(CLUSTER)
    leadership = Leadership(cluster.dsn if cluster is not None else None, name, work)
    leadership.start()
    return leadership


async def _cluster_bus(app: web.Application) -> AsyncIterator[None]:
    """With replicas: hear the others (``backend.cluster.wiring``), once every part that listens
    is in place; stop hearing them before the parts close."""
    cluster = app.get(CLUSTER)
    if cluster is not None:
        await cluster.bus.start()
    yield
    if cluster is not None:
        await cluster.bus.close()


async def _event_streams(app: web.Application) -> AsyncIterator[None]:
    """The hub that fans committed events out to WebSocket subscribers, and the periodic prune
    that keeps the log bounded. Open streams are closed (1001) in ``on_shutdown``, before this
    runs: aiohttp waits for open handlers before it tears the contexts down."""
    settings = app[SETTINGS]
    events = app[EVENTS]
    hub = EventHub(settings.event_queue_size)
    app[EVENT_HUB] = hub
    events.add_listener(hub.deliver)
    prune = _leadership(
        app,
        f"event-log-prune:{app[INSTANCE]}",
        partial(_periodically, events.prune, settings.event_prune_interval_s, "pruning events"),
    )
    yield
    await prune.close()
    events.remove_listener(hub.deliver)
    await _close_event_streams(app)


async def _stats(app: web.Application) -> AsyncIterator[None]:
    """The stats sampler (live usage): idle until a stats stream subscribes. It follows the
    container service's events to open and close each sandbox's engine stream."""
    sampler = StatsSampler(app[ENGINES], app[CONTAINERS].repository, app[SETTINGS].stats_interval_s)
    app[STATS] = sampler
    app[EVENTS].add_listener(sampler.on_event)
    yield
    app[EVENTS].remove_listener(sampler.on_event)
    await _close_stats_streams(app)
    await sampler.close()


async def _periodically(
    work: Callable[[], Awaitable[object]], interval_s: float, what: str
) -> None:
    """``work`` every ``interval_s`` (a leader's work, ``_leadership``); a failure is logged and
    the next turn tries again."""
    while True:
        try:
            done = await work()
        except Exception:
            log.exception("%s failed; retrying later", what)
        else:
            if done:
                log.debug("%s: %s", what, done)
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


UPLOAD_READ_BUFFER = 1 << 20


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, rate_limit_middleware],
        client_max_size=settings.max_body_bytes,
        # A request body is read in windows of this size (aiohttp's default is 64 KiB): a file
        # upload streams through a few large reads rather than thousands of small ones.
        handler_args={"read_bufsize": UPLOAD_READ_BUFFER},
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
    app.cleanup_ctx.extend([_database, _docker, _services, _event_streams, _stats, _cluster_bus])
    app.on_shutdown.extend([_close_event_streams, _close_stats_streams])
    return app
