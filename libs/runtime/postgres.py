"""One asyncpg pool per service, with its connections placed in the service's own schema."""

from __future__ import annotations

import asyncpg


async def create_pool(database_url: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose unqualified table names resolve in ``schema``."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"signgate-{schema}"},
    )
    assert pool is not None
    return pool


async def ping(pool: asyncpg.Pool) -> bool:
    """Health check: the pool can run a query."""
    return await pool.fetchval("SELECT true")
