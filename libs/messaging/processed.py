"""Idempotent handling: the record of messages whose effects are committed."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def insert_processed_message(connection: asyncpg.Connection, consumer: str, event_id: UUID) -> bool:
    """Claim ``event_id`` for ``consumer`` inside the caller's transaction; False if already handled."""
    status = await connection.execute(
        "INSERT INTO processed_messages (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        consumer, event_id,
    )
    return status == "INSERT 0 1"
