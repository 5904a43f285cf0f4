"""Several Docker engines: each sandbox lives on one, chosen at create (``placement``), and
every later operation on it goes there (``pool``). Each engine has its own ``DockerService``,
its own container services, its health (``health``) and its watcher (``watch``)."""

from backend.engines.engine import Engine
from backend.engines.health import EngineHealth
from backend.engines.pool import EnginePool, RuntimeMissing
from backend.engines.watch import EngineWatch

__all__ = ["Engine", "EngineHealth", "EnginePool", "EngineWatch", "RuntimeMissing"]
