"""A Postgres database of a test run's own, on a shared server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@contextlib.asynccontextmanager
async def own_database(server_url: str, name: str) -> AsyncIterator[str]:
    """Create database ``name`` on the server of ``server_url``; yield its URL; drop it after."""
    server = urlsplit(server_url)
    admin_url = urlunsplit(server._replace(path="/postgres"))
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(server._replace(path=f"/{name}"))
    finally:
        await _admin(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
