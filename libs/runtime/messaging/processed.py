"""Idempotent handling: the record of messages whose effects are committed."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg


async def claim_processed_messages(
    connection: asyncpg.Connection, consumer: str, event_ids: Sequence[UUID]
) -> set[UUID]:
    """Claim many event ids in one statement inside the caller's transaction; returns those not
    handled before (an id repeated in ``event_ids`` is claimed once)."""
    if not event_ids:
        return set()
    rows = await connection.fetch(
        "INSERT INTO processed_messages (consumer, event_id) SELECT $1, unnest($2::uuid[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}
