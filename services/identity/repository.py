"""SQL of the identity service: users, accounts and memberships, in the service's own schema."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.security.tokens import AccountState
from services.identity.domain import ApiKey, Authenticator, User
from signgate_contracts.identity import AccountMembership


@dataclass(frozen=True)
class MobileNumberChange:
    """One change of a user's profile mobile number, as recorded."""

    old_number: str | None
    new_number: str | None
    changed_by: str
    actor: str
    correlation_id: uuid.UUID
    changed_at: datetime


_USER_COLUMNS = """
    id, user_name, first_name, last_name, email, mobile_number, roles, disabled, password_hash,
    password_changed_at, password_expired, must_change_password, failed_attempts, lockouts,
    lock_mode, locked_until, tokens_valid_after, locale
"""


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    return User(**{**dict(row), "roles": tuple(row["roles"])})


async def select_user(
    connection: asyncpg.Connection, user_name: str, *, for_update: bool = False
) -> User | None:
    """The user with this normalised name; ``for_update`` serialises attempts on one user."""
    lock = " FOR UPDATE" if for_update else ""
    row = await connection.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE user_name = $1{lock}", user_name
    )
    return _user(row)


async def select_account_state(connection: asyncpg.Connection, subject: str) -> AccountState | None:
    """A token subject's account state, from identity's own users table (the authority, not a
    projection); None for a subject that is no user (an operator token) or nobody."""
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        return None
    row = await connection.fetchrow(
        "SELECT disabled, tokens_valid_after FROM users WHERE id = $1", user_id
    )
    if row is None:
        return None
    return AccountState(disabled=row["disabled"], tokens_valid_after=row["tokens_valid_after"])


async def select_memberships(
    connection: asyncpg.Connection, user_id: uuid.UUID
) -> list[AccountMembership]:
    """The user's accounts, primary first."""
    rows = await connection.fetch(
        """
        SELECT a.name, a.context_identifier, m.is_primary
        FROM memberships m JOIN accounts a USING (context_identifier)
        WHERE m.user_id = $1
        ORDER BY m.is_primary DESC, lower(a.name), a.context_identifier
        """,
        user_id,
    )
    return [AccountMembership(**dict(row)) for row in rows]


async def insert_user(
    connection: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    user_name: str,
    first_name: str,
    last_name: str,
    email: str | None,
    mobile_number: str | None,
    roles: Sequence[str],
    password_hash: str | None,
    must_change_password: bool,
    now: datetime,
    locale: str | None = None,
) -> bool:
    """Insert a new user; False if the name is taken."""
    status = await connection.execute(
        """
        INSERT INTO users (id, user_name, first_name, last_name, email, mobile_number, roles,
                           password_hash, password_changed_at, must_change_password,
                           created_at, updated_at, locale)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                CASE WHEN $8::text IS NULL THEN NULL ELSE $9::timestamptz END, $10, $9, $9, $11)
        ON CONFLICT (user_name) DO NOTHING
        """,
        user_id,
        user_name,
        first_name,
        last_name,
        email,
        mobile_number,
        list(roles),
        password_hash,
        now,
        must_change_password,
        locale,
    )
    return status == "INSERT 0 1"


async def upsert_accounts(
    connection: asyncpg.Connection, accounts: Sequence[AccountMembership]
) -> None:
    """Record the accounts named; an account's name is the latest one given for its identifier."""
    await connection.executemany(
        """
        INSERT INTO accounts (context_identifier, name) VALUES ($1, $2)
        ON CONFLICT (context_identifier) DO UPDATE SET name = EXCLUDED.name
        """,
        [(a.context_identifier, a.name) for a in accounts],
    )


async def replace_memberships(
    connection: asyncpg.Connection, user_id: uuid.UUID, accounts: Sequence[AccountMembership]
) -> None:
    await connection.execute("DELETE FROM memberships WHERE user_id = $1", user_id)
    await connection.executemany(
        "INSERT INTO memberships (user_id, context_identifier, is_primary) VALUES ($1, $2, $3)",
        [(user_id, a.context_identifier, a.is_primary) for a in accounts],
    )


async def update_user_roles(
    connection: asyncpg.Connection, user_id: uuid.UUID, roles: Sequence[str], now: datetime
) -> None:
    await connection.execute(
        "UPDATE users SET roles = $2, updated_at = $3 WHERE id = $1", user_id, list(roles), now
    )


async def update_user_profile(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    first_name: str,
    last_name: str,
    email: str | None,
    mobile_number: str | None,
    now: datetime,
    locale: str | None = None,
) -> None:
    await connection.execute(
        """
        UPDATE users SET first_name = $2, last_name = $3, email = $4, mobile_number = $5,
                         updated_at = $6, locale = $7
        WHERE id = $1
        """,
        user_id,
        first_name,
        last_name,
        email,
        mobile_number,
        now,
        locale,
    )


async def insert_mobile_number_change(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    old_number: str | None,
    new_number: str | None,
    changed_by: str,
    actor: str,
    correlation_id: uuid.UUID,
    now: datetime,
) -> None:
    """Record a change of the profile mobile number, who made it and when."""
    await connection.execute(
        """
        INSERT INTO mobile_number_changes (user_id, old_number, new_number, changed_by, actor,
                                           correlation_id, changed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        user_id,
        old_number,
        new_number,
        changed_by,
        actor,
        correlation_id,
        now,
    )


async def select_mobile_number_changes(
    connection: asyncpg.Connection, user_id: uuid.UUID
) -> list[MobileNumberChange]:
    """The user's mobile number changes, oldest first."""
    rows = await connection.fetch(
        """
        SELECT old_number, new_number, changed_by, actor, correlation_id, changed_at
        FROM mobile_number_changes WHERE user_id = $1 ORDER BY changed_at, id
        """,
        user_id,
    )
    return [MobileNumberChange(**dict(row)) for row in rows]


async def update_password(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    password_hash: str,
    *,
    must_change: bool,
    now: datetime,
) -> None:
    """A new password: not expired, and every token issued before it revoked."""
    await connection.execute(
        """
        UPDATE users SET password_hash = $2, must_change_password = $3, password_changed_at = $4,
                         password_expired = false, tokens_valid_after = $4, updated_at = $4
        WHERE id = $1
        """,
        user_id,
        password_hash,
        must_change,
        now,
    )


async def update_password_hash(
    connection: asyncpg.Connection, user_id: uuid.UUID, password_hash: str
) -> None:
    """Re-hash the same password with the current parameters (nothing else changes)."""
    await connection.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash
    )


async def update_password_expired(
    connection: asyncpg.Connection, user_id: uuid.UUID, now: datetime
) -> None:
    await connection.execute(
        "UPDATE users SET password_expired = true, updated_at = $2 WHERE id = $1", user_id, now
    )


async def update_disabled(
    connection: asyncpg.Connection, user_id: uuid.UUID, disabled: bool, now: datetime
) -> None:
    """Disable (revoking every token issued so far) or enable a user."""
    await connection.execute(
        """
        UPDATE users SET disabled = $2, updated_at = $3,
                         tokens_valid_after = CASE WHEN $2 THEN $3 ELSE tokens_valid_after END
        WHERE id = $1
        """,
        user_id,
        disabled,
        now,
    )


async def update_failed_attempts(
    connection: asyncpg.Connection, user_id: uuid.UUID, failed_attempts: int
) -> None:
    await connection.execute(
        "UPDATE users SET failed_attempts = GREATEST(failed_attempts, $2) WHERE id = $1",
        user_id,
        failed_attempts,
    )


async def update_lock(
    connection: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    mode: str,
    until: datetime | None,
    failed_attempts: int,
    now: datetime,
) -> None:
    """Lock the user durably; a temporary lock counts towards the run's growing wait."""
    await connection.execute(
        """
        UPDATE users SET lock_mode = $2, locked_until = $3,
                         failed_attempts = GREATEST(failed_attempts, $4),
                         lockouts = lockouts + CASE WHEN $2 = 'temporary' THEN 1 ELSE 0 END,
                         updated_at = $5
        WHERE id = $1
        """,
        user_id,
        mode,
        until,
        failed_attempts,
        now,
    )


async def update_lock_cleared(
    connection: asyncpg.Connection, user_id: uuid.UUID, now: datetime
) -> None:
    """End the run of failures: no lock, no count (a success, or an administrator's unlock)."""
    await connection.execute(
        """
        UPDATE users SET failed_attempts = 0, lockouts = 0, lock_mode = NULL, locked_until = NULL,
                         updated_at = $2
        WHERE id = $1
        """,
        user_id,
        now,
    )


# -- API keys --

_API_KEY_COLUMNS = """
    id, user_id, context_identifier, name, digest, created_at, last_used_at, revoked_at
"""


def _api_key(row: asyncpg.Record | None) -> ApiKey | None:
    return ApiKey(**dict(row)) if row is not None else None


async def select_user_by_id(connection: asyncpg.Connection, user_id: uuid.UUID) -> User | None:
    row = await connection.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return _user(row)


async def insert_api_key(
    connection: asyncpg.Connection,
    *,
    key_id: uuid.UUID,
    user_id: uuid.UUID,
    account: uuid.UUID,
    name: str,
    digest: str,
    created_by: str,
    now: datetime,
) -> None:
    await connection.execute(
        """
        INSERT INTO api_keys (id, user_id, context_identifier, name, digest, created_at, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        key_id,
        user_id,
        account,
        name,
        digest,
        now,
        created_by,
    )


async def select_api_key(
    connection: asyncpg.Connection, key_id: uuid.UUID, *, for_update: bool = False
) -> ApiKey | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await connection.fetchrow(
        f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = $1{lock}", key_id
    )
    return _api_key(row)


async def select_api_keys(
    connection: asyncpg.Connection, user_id: uuid.UUID, *, include_revoked: bool
) -> list[ApiKey]:
    """The user's keys, oldest first (the revoked ones only if asked for)."""
    rows = await connection.fetch(
        f"""
        SELECT {_API_KEY_COLUMNS} FROM api_keys
        WHERE user_id = $1 AND ($2 OR revoked_at IS NULL)
        ORDER BY created_at, id
        """,
        user_id,
        include_revoked,
    )
    return [ApiKey(**dict(row)) for row in rows]


async def count_active_api_keys(connection: asyncpg.Connection, user_id: uuid.UUID) -> int:
    count = await connection.fetchval(
        "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return int(count or 0)


async def update_api_key_revoked(
    connection: asyncpg.Connection, key_id: uuid.UUID, now: datetime
) -> None:
    await connection.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1", key_id, now)


async def update_api_key_used(
    connection: asyncpg.Connection, key_id: uuid.UUID, now: datetime
) -> None:
    await connection.execute(
        "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2) WHERE id = $1", key_id, now
    )


# -- authenticator apps and recovery codes --

_AUTHENTICATOR_COLUMNS = """
    id, user_id, secret_encrypted, digits, algorithm, period_seconds, created_at, confirmed_at
"""


async def select_authenticator(
    connection: asyncpg.Connection, user_id: uuid.UUID
) -> Authenticator | None:
    """The user's authenticator that is not removed (pending or confirmed), if any."""
    row = await connection.fetchrow(
        f"SELECT {_AUTHENTICATOR_COLUMNS} FROM authenticators "
        "WHERE user_id = $1 AND removed_at IS NULL",
        user_id,
    )
    return Authenticator(**dict(row)) if row is not None else None


async def delete_pending_authenticator(connection: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Forget an enrolment never confirmed (a new one replaces it)."""
    await connection.execute(
        "DELETE FROM authenticators WHERE user_id = $1 AND confirmed_at IS NULL "
        "AND removed_at IS NULL",
        user_id,
    )


async def insert_authenticator(
    connection: asyncpg.Connection, authenticator: Authenticator
) -> None:
    await connection.execute(
        """
        INSERT INTO authenticators (id, user_id, secret_encrypted, digits, algorithm,
                                    period_seconds, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        authenticator.id,
        authenticator.user_id,
        authenticator.secret_encrypted,
        authenticator.digits,
        authenticator.algorithm,
        authenticator.period_seconds,
        authenticator.created_at,
    )


async def update_authenticator_secret(
    connection: asyncpg.Connection, authenticator_id: uuid.UUID, secret_encrypted: str
) -> None:
    """The same secret sealed again (under the newest key)."""
    await connection.execute(
        "UPDATE authenticators SET secret_encrypted = $2 WHERE id = $1",
        authenticator_id,
        secret_encrypted,
    )


async def update_authenticator_confirmed(
    connection: asyncpg.Connection, authenticator_id: uuid.UUID, now: datetime
) -> None:
    await connection.execute(
        "UPDATE authenticators SET confirmed_at = $2 WHERE id = $1", authenticator_id, now
    )


async def update_authenticator_removed(
    connection: asyncpg.Connection, authenticator_id: uuid.UUID, removed_by: str, now: datetime
) -> None:
    """Remove the authenticator; its recovery codes go with it."""
    await connection.execute(
        "UPDATE authenticators SET removed_at = $2, removed_by = $3 WHERE id = $1",
        authenticator_id,
        now,
        removed_by,
    )
    await connection.execute(
        "DELETE FROM recovery_codes WHERE authenticator_id = $1", authenticator_id
    )


async def replace_recovery_codes(
    connection: asyncpg.Connection,
    authenticator_id: uuid.UUID,
    digests: Sequence[str],
    now: datetime,
) -> None:
    """A new set of recovery codes; the old set no longer opens anything."""
    await connection.execute(
        "DELETE FROM recovery_codes WHERE authenticator_id = $1", authenticator_id
    )
    await connection.executemany(
        "INSERT INTO recovery_codes (authenticator_id, digest, created_at) VALUES ($1, $2, $3)",
        [(authenticator_id, digest, now) for digest in digests],
    )


async def recovery_code_unused(
    connection: asyncpg.Connection, authenticator_id: uuid.UUID, digest: str
) -> bool:
    """Whether an unused recovery code has ``digest`` (looked up, not spent)."""
    found = await connection.fetchval(
        "SELECT 1 FROM recovery_codes "
        "WHERE authenticator_id = $1 AND digest = $2 AND used_at IS NULL",
        authenticator_id,
        digest,
    )
    return found is not None


async def update_recovery_code_used(
    connection: asyncpg.Connection, authenticator_id: uuid.UUID, digest: str, now: datetime
) -> int | None:
    """Spend the unused recovery code with ``digest``: how many unused codes remain, or None if no
    unused code has that digest. One statement, so a code is spent once whoever else tries it."""
    remaining = await connection.fetchval(
        """
        WITH spent AS (
            UPDATE recovery_codes SET used_at = $3
            WHERE authenticator_id = $1 AND digest = $2 AND used_at IS NULL
            RETURNING digest
        )
        SELECT CASE WHEN EXISTS (SELECT 1 FROM spent) THEN (
            -- the statement's snapshot still counts the code just spent as unused
            SELECT count(*) - 1 FROM recovery_codes WHERE authenticator_id = $1 AND used_at IS NULL
        ) END
        """,
        authenticator_id,
        digest,
        now,
    )
    return int(remaining) if remaining is not None else None
