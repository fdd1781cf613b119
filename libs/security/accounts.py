"""Every service's projection of API users' account state, for verifying tokens locally.

A service that accepts tokens keeps, in its own Postgres schema, the state identity's events
say each user is in: disabled or not, and since when earlier tokens are revoked. Postgres,
not Redis, so that losing a cache can never re-enable a disabled user.

To use it, a service
- asks for the shared ``accounts`` migration track (``shared_tracks=("accounts",)``), which
  creates the table below in its own schema;
- consumes ``signgate.identity.events`` with ``ACCOUNT_STATE_HANDLERS`` among its handlers;
- verifies with ``TokenVerifier(..., states=PostgresAccountStates(pool_or_connection))``.

    CREATE TABLE account_states (
        user_id            uuid        PRIMARY KEY,
        disabled           boolean     NOT NULL DEFAULT false,
        tokens_valid_after timestamptz,
        changed_at         timestamptz NOT NULL
    );

Events of one user share a partition (the key is the user id), so they arrive in order; the
updates are still written to be safe against an older event arriving later (a replay, or a
record of the first event shapes, which were keyed by user name, so in another partition).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import MessageHandler, Scope
from libs.security.tokens import AccountState
from signgate_contracts import Message
from signgate_contracts.identity import (
    PasswordChanged,
    PasswordChangedV2,
    UserDisabled,
    UserDisabledV2,
    UserEnabled,
    UserEnabledV2,
)


class _Queryable(Protocol):
    async def fetchrow(self, query: str, *args: Any) -> Any: ...


class PostgresAccountStates:
    """``AccountStates`` read from the ``account_states`` table through a pool or a connection."""

    def __init__(self, source: _Queryable) -> None:
        self._source = source

    async def get(self, subject: str) -> AccountState | None:
        try:
            user_id = uuid.UUID(subject)
        except ValueError:
            return None  # not a user of identity's (an operator token): nothing is known
        row = await self._source.fetchrow(
            "SELECT disabled, tokens_valid_after FROM account_states WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return AccountState(disabled=row["disabled"], tokens_valid_after=row["tokens_valid_after"])


async def upsert_disabled_account(connection: Any, user_id: uuid.UUID, at: datetime) -> None:
    """Mark disabled as of ``at``: tokens issued before it are revoked for good."""
    await connection.execute(
        """
        INSERT INTO account_states (user_id, disabled, tokens_valid_after, changed_at)
        VALUES ($1, true, $2, $2)
        ON CONFLICT (user_id) DO UPDATE SET
            disabled = CASE WHEN account_states.changed_at <= EXCLUDED.changed_at
                            THEN true ELSE account_states.disabled END,
            tokens_valid_after = GREATEST(account_states.tokens_valid_after, EXCLUDED.tokens_valid_after),
            changed_at = GREATEST(account_states.changed_at, EXCLUDED.changed_at)
        """,
        user_id,
        at,
    )


async def upsert_enabled_account(connection: Any, user_id: uuid.UUID, at: datetime) -> None:
    """Mark enabled as of ``at``, unless a later disabling was already applied."""
    await connection.execute(
        """
        INSERT INTO account_states (user_id, disabled, changed_at)
        VALUES ($1, false, $2)
        ON CONFLICT (user_id) DO UPDATE SET
            disabled = CASE WHEN account_states.changed_at <= EXCLUDED.changed_at
                            THEN false ELSE account_states.disabled END,
            changed_at = GREATEST(account_states.changed_at, EXCLUDED.changed_at)
        """,
        user_id,
        at,
    )


async def upsert_revoked_tokens(connection: Any, user_id: uuid.UUID, at: datetime) -> None:
    """Revoke the user's tokens issued before ``at``."""
    await connection.execute(
        """
        INSERT INTO account_states (user_id, tokens_valid_after, changed_at)
        VALUES ($1, $2, $2)
        ON CONFLICT (user_id) DO UPDATE SET
            tokens_valid_after = GREATEST(account_states.tokens_valid_after, EXCLUDED.tokens_valid_after)
        """,
        user_id,
        at,
    )


async def record_user_disabled(
    event: UserDisabledV2 | UserDisabled, scope: Scope[object]
) -> list[Outgoing]:
    await upsert_disabled_account(scope.transaction, event.user_id, event.occurred_at)
    return []


async def record_user_enabled(
    event: UserEnabledV2 | UserEnabled, scope: Scope[object]
) -> list[Outgoing]:
    await upsert_enabled_account(scope.transaction, event.user_id, event.occurred_at)
    return []


async def record_password_changed(
    event: PasswordChangedV2 | PasswordChanged, scope: Scope[object]
) -> list[Outgoing]:
    await upsert_revoked_tokens(scope.transaction, event.user_id, event.occurred_at)
    return []


ACCOUNT_STATE_HANDLERS: Mapping[type[Message], MessageHandler] = {
    UserDisabledV2: record_user_disabled,
    UserEnabledV2: record_user_enabled,
    PasswordChangedV2: record_password_changed,
    # the first shapes, still read while records of them are on the topic (7 days)
    UserDisabled: record_user_disabled,
    UserEnabled: record_user_enabled,
    PasswordChanged: record_password_changed,
}
"""Use cases that keep ``account_states`` current; merge them into a service's handlers."""
