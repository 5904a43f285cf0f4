"""Typed application state keys: every long-lived resource the handlers reach."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.agents.service import AgentService
from backend.auth.live import LiveStreams
from backend.auth.principal import Authenticator
from backend.auth.tokens import JwtSigner
from backend.auth.users import UserService
from backend.cluster import Cluster
from backend.containers.catalog import Catalog
from backend.containers.service import ContainerServices
from backend.engines import EnginePool
from backend.events.hub import EventHub
from backend.events.log import EventLog
from backend.openapi_served import ServedDocument
from backend.ratelimit import RateLimiter
from backend.settings import Settings
from backend.stats.sampler import StatsSampler

SETTINGS = web.AppKey("settings", Settings)
DB_ENGINE = web.AppKey("db_engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
SIGNER = web.AppKey("signer", JwtSigner)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
USERS = web.AppKey("users", UserService)
# The Docker engines: each container's operations go to its row's engine through the pool.
ENGINES = web.AppKey("engines", EnginePool)
EVENTS = web.AppKey("events", EventLog)
EVENT_HUB = web.AppKey("event_hub", EventHub)
CATALOG = web.AppKey("catalog", Catalog)  # the first engine's (the images it has)
# The first engine's services: what is shared (the repository, kept volumes' records); an
# operation on one container goes through ENGINES to its own engine's services.
CONTAINERS = web.AppKey("containers", ContainerServices)
INSTANCE = web.AppKey("instance", str)
AGENTS = web.AppKey("agents", AgentService)
STATS = web.AppKey("stats", StatsSampler)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
LIVE_STREAMS = web.AppKey("live_streams", LiveStreams)
OPENAPI = web.AppKey("openapi", ServedDocument)  # the document served at /api/openapi.json
# With replicas on PostgreSQL only (absent on SQLite): the bus, the cross-process locks.
CLUSTER = web.AppKey("cluster", Cluster)
# A token was revoked: forget it (on every replica).
FORGET_TOKEN: web.AppKey[Callable[[str], None]] = web.AppKey("forget_token")
