"""Whether the database answers: the health route asks on every call."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def database_reachable(engine: AsyncEngine) -> bool:
    """True when a trivial query succeeds now; any failure is an unreachable database."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
