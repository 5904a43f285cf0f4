"""Two asyncio building blocks that the backend, the client and the agent share: the delays
between reconnection attempts (``Backoff``) and the owner of an object's background tasks
(``TaskOwner``). Standard library only, so the backend can import them without importing the
client or the command line."""

from corral.aio.backoff import Backoff
from corral.aio.tasks import TaskOwner

__all__ = ["Backoff", "TaskOwner"]
