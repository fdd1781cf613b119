"""SQL of the authentication service's projection, one free function per statement.

A lane's recipients are read ahead in one query (`RecipientsAhead`); `select_recipient` consults
what was read before it queries, so no handler needs to know.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from libs.runtime.read_ahead import ByPackage, ReadAhead
from services.authentication.domain import AccessWindow, RecipientPolicy
from signgate_contracts import Message
from signgate_contracts import authentication as auth
from signgate_contracts.otp import Channel
from signgate_contracts.workflow import DEFAULT_RETRY_COUNT


@dataclass(frozen=True)
class Package:
    package_id: str
    owner_id: str
    state: str
    document_ids: list[str]
    account: str | None = None


@dataclass(frozen=True)
class UserProfile:
    """What this service knows of an API user's profile: the mobile number signer codes go to."""

    user_id: UUID
    email_digest: str | None
    mobile_number: str | None
    locale: str | None = None
    """The user's language for signer codes; None: OTP dispatch's default."""


@dataclass(frozen=True)
class StoredRecipient:
    """A recipient row: the policy the domain decides on, plus what only the service needs."""

    policy: RecipientPolicy
    channel: Channel | None
    destination_masked: str | None
    locked_failures: int | None
    last_failure: str | None
    locale: str | None = None
    """The recipient's language for code messages; None: OTP dispatch's default."""
    brand_name: str | None = None
    """The sender's brand for code messages; None: OTP dispatch's."""


async def upsert_package(
    connection: asyncpg.Connection,
    package_id: str,
    owner_id: str,
    state: str,
    document_ids: list[str],
    account: str | None = None,
) -> None:
    await connection.execute(
        """INSERT INTO packages (package_id, owner_id, state, document_ids, account) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (package_id) DO UPDATE SET owner_id = $2, state = $3, document_ids = $4, account = $5""",
        package_id,
        owner_id,
        state,
        document_ids,
        account,
    )


async def insert_recipient(
    connection: asyncpg.Connection,
    package_id: str,
    order: int,
    email_digest: str,
    signer_user_id: str | None = None,
    signer_user_name_digest: str | None = None,
) -> None:
    await connection.execute(
        """INSERT INTO recipients (package_id, "order", email_digest, signer_user_id, signer_user_name_digest)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (package_id, "order") DO NOTHING""",
        package_id,
        order,
        email_digest,
        signer_user_id,
        signer_user_name_digest,
    )


async def update_package_state(connection: asyncpg.Connection, package_id: str, state: str) -> None:
    await connection.execute(
        "UPDATE packages SET state = $2 WHERE package_id = $1", package_id, state
    )


async def update_recipient_received(
    connection: asyncpg.Connection, package_id: str, order: int, at: datetime
) -> None:
    await connection.execute(
        'UPDATE recipients SET received_at = $3 WHERE package_id = $1 AND "order" = $2',
        package_id,
        order,
        at,
    )


async def update_recipient_signed(
    connection: asyncpg.Connection, package_id: str, order: int, at: datetime
) -> None:
    await connection.execute(
        'UPDATE recipients SET signed_at = $3 WHERE package_id = $1 AND "order" = $2',
        package_id,
        order,
        at,
    )


async def update_recipient_policy(
    connection: asyncpg.Connection,
    package_id: str,
    order: int,
    email_digest: str,
    policy: dict[str, Any] | None,
    window: dict[str, Any] | None,
    version: int | None = None,
) -> None:
    """Replace the recipient's policy with the one workflow published (None: no authentication),
    at the authentication ``version`` it carries (None: as it was)."""
    policy = policy or {}
    destination = policy.get("destination") or {}
    window = window or {}
    await connection.execute(
        """INSERT INTO recipients (package_id, "order", email_digest, methods, secret_hash, channel,
               destination, destination_masked, retry_count, frequency, starts_at, ends_at,
               days_after_receipt, authentication_version, locale, brand_name, totp_source,
               totp_authenticator_id, totp_sealed, otp_fallback, fallback_email)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, coalesce($14, 0),
                   $15, $16, $17, $18, $19, $20, $21)
           ON CONFLICT (package_id, "order") DO UPDATE SET
               email_digest = $3, methods = $4, secret_hash = $5, channel = $6, destination = $7,
               destination_masked = $8, retry_count = $9, frequency = $10, starts_at = $11,
               ends_at = $12, days_after_receipt = $13,
               authentication_version = coalesce($14, recipients.authentication_version),
               locale = $15, brand_name = $16, totp_source = $17, totp_authenticator_id = $18,
               totp_sealed = $19, otp_fallback = $20, fallback_email = $21""",
        package_id,
        order,
        email_digest,
        list(policy.get("methods") or []),
        policy.get("secret_hash"),
        destination.get("channel"),
        destination.get("address"),
        destination.get("masked"),
        policy.get("retry_count") or DEFAULT_RETRY_COUNT,
        policy.get("frequency") or "OncePerDocument",
        window.get("starts_at"),
        window.get("ends_at"),
        window.get("days_after_receipt"),
        version,
        policy.get("locale"),
        policy.get("brand_name"),
        policy.get("totp_source"),
        policy.get("totp_authenticator_id"),
        policy.get("totp_sealed"),
        list(policy.get("otp_fallback") or []),
        policy.get("fallback_email"),
    )


async def update_recipient_locked(
    connection: asyncpg.Connection, package_id: str, order: int, at: datetime, failures: int
) -> bool:
    """Lock the recipient; False if they were locked already (by another attempt handled at the
    same time), so that only one attempt announces the lockout."""
    status = await connection.execute(
        """UPDATE recipients SET locked_at = $3, locked_failures = $4
           WHERE package_id = $1 AND "order" = $2 AND locked_at IS NULL""",
        package_id,
        order,
        at,
        failures,
    )
    return status == "UPDATE 1"


async def update_recipient_unlocked(
    connection: asyncpg.Connection, package_id: str, order: int
) -> bool:
    """Clear the lock and the last failure; returns whether the recipient was locked."""
    locked_at = await connection.fetchval(
        'SELECT locked_at FROM recipients WHERE package_id = $1 AND "order" = $2 FOR UPDATE',
        package_id,
        order,
    )
    await connection.execute(
        """UPDATE recipients SET locked_at = NULL, locked_failures = NULL, last_failure = NULL
           WHERE package_id = $1 AND "order" = $2""",
        package_id,
        order,
    )
    return locked_at is not None


async def update_recipient_last_failure(
    connection: asyncpg.Connection, package_id: str, order: int, reason: str
) -> None:
    await connection.execute(
        'UPDATE recipients SET last_failure = $3 WHERE package_id = $1 AND "order" = $2',
        package_id,
        order,
        reason,
    )


async def select_package(connection: asyncpg.Connection, package_id: str) -> Package | None:
    row = await connection.fetchrow(
        "SELECT package_id, owner_id, state, document_ids, account FROM packages"
        " WHERE package_id = $1",
        package_id,
    )
    return Package(**dict(row)) if row else None


RECIPIENT_COLUMNS = (
    "SELECT r.*, p.state AS package_state FROM recipients r JOIN packages p USING (package_id)"
)


async def select_recipient(
    connection: asyncpg.Connection,
    package_id: str,
    order: int | None,
    email_digest: str | None = None,
    read_ahead: ReadAhead | None = None,
) -> StoredRecipient | None:
    """The recipient at ``order`` (as the lane read it ahead, if it did), or the only one with that
    email; None if none (or ambiguous)."""
    if isinstance(read_ahead, RecipientsAhead) and order is not None:
        known, stored = read_ahead.recall(package_id, order)
        if known:
            return stored
    rows = await connection.fetch(
        f"""{RECIPIENT_COLUMNS}
           WHERE r.package_id = $1 AND (r."order" = $2 OR ($2::int IS NULL AND r.email_digest = $3))
           LIMIT 2""",
        package_id,
        order,
        email_digest,
    )
    return stored_recipient(rows[0]) if len(rows) == 1 else None


async def select_recipients(
    connection: asyncpg.Connection, wanted: Collection[tuple[str, int]]
) -> dict[tuple[str, int], StoredRecipient]:
    """The recipients at the (package id, order) pairs ``wanted``, in one query."""
    package_ids, orders = zip(*wanted, strict=True) if wanted else ((), ())
    rows = await connection.fetch(
        f"""{RECIPIENT_COLUMNS}
           WHERE (r.package_id, r."order") IN (SELECT * FROM unnest($1::text[], $2::int[]))""",
        list(package_ids),
        list(orders),
    )
    return {(row["package_id"], row["order"]): stored_recipient(row) for row in rows}


RECIPIENT_COMMANDS = (
    auth.OpenDocumentWithPassword,
    auth.RequestDocumentOtp,
    auth.VerifyDocumentOtp,
    auth.VerifyDocumentTotp,
    auth.GetRecipientAuthenticationStatus,
)
"""Commands that name one recipient by package and order (a lookup by email is not read ahead)."""


class RecipientsAhead(ByPackage[StoredRecipient]):
    """A lane's read-ahead (``libs.runtime.read_ahead``) of the recipients its commands name, by
    package and order, in one query; `select_recipient` consults it."""

    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None:
        wanted = {
            (m.package_id, m.order)
            for m in messages
            if isinstance(m, RECIPIENT_COMMANDS) and m.order is not None
        }
        if not wanted:
            return
        found = await select_recipients(connection, wanted)
        for package_id, order in wanted:
            self.remember(package_id, order, found.get((package_id, order)))


def stored_recipient(row: asyncpg.Record) -> StoredRecipient:
    policy = RecipientPolicy(
        package_id=row["package_id"],
        order=row["order"],
        email=row["email_digest"],
        methods=tuple(row["methods"]),
        retry_count=row["retry_count"],
        frequency=row["frequency"],
        window=AccessWindow(row["starts_at"], row["ends_at"], row["days_after_receipt"]),
        destination=row["destination"],
        secret_hash=row["secret_hash"],
        received_at=row["received_at"],
        signed_at=row["signed_at"],
        package_state=row["package_state"],
        locked_at=row["locked_at"],
        authentication_version=row["authentication_version"],
        signer_user_id=row["signer_user_id"],
        totp_source=row["totp_source"],
        totp_authenticator_id=row["totp_authenticator_id"],
        totp_sealed=row["totp_sealed"],
        otp_fallback=tuple(row["otp_fallback"]),
        fallback_email=row["fallback_email"],
    )
    return StoredRecipient(
        policy,
        row["channel"],
        row["destination_masked"],
        row["locked_failures"],
        row["last_failure"],
        row["locale"],
        row["brand_name"],
    )


async def select_recipients_signed_by(
    connection: asyncpg.Connection, package_id: str, user_id: str, user_name_digest: str
) -> list[int]:
    """The orders of the package whose signer the owner named as this user (by id or by name)."""
    rows = await connection.fetch(
        'SELECT "order" FROM recipients WHERE package_id = $1'
        ' AND (signer_user_id = $2 OR signer_user_name_digest = $3) ORDER BY "order"',
        package_id,
        user_id,
        user_name_digest,
    )
    return [row["order"] for row in rows]


async def upsert_user_profile(
    connection: asyncpg.Connection,
    user_id: UUID,
    email_digest: str | None,
    mobile_number: str | None,
    changed_at: datetime,
    locale: str | None = None,
) -> None:
    """The profile as of ``changed_at``, unless a later one was applied already."""
    await connection.execute(
        """INSERT INTO user_profiles (user_id, email_digest, mobile_number, changed_at, locale)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET email_digest = $2, mobile_number = $3,
               changed_at = $4, locale = $5
           WHERE user_profiles.changed_at IS NULL OR user_profiles.changed_at <= $4""",
        user_id,
        email_digest,
        mobile_number,
        changed_at,
        locale,
    )


async def upsert_user_accounts(
    connection: asyncpg.Connection, user_id: UUID, accounts: list[UUID], changed_at: datetime
) -> None:
    """The accounts the user is a member of as of ``changed_at``, unless later ones were applied."""
    await connection.execute(
        """INSERT INTO user_accounts (user_id, accounts, changed_at) VALUES ($1, $2, $3)
           ON CONFLICT (user_id) DO UPDATE SET accounts = $2, changed_at = $3
           WHERE user_accounts.changed_at <= $3""",
        user_id,
        [str(account) for account in accounts],
        changed_at,
    )


async def user_in_account(connection: asyncpg.Connection, user_id: UUID, account: str) -> bool:
    """Whether identity last said the user is a member of ``account`` (no word: not a member)."""
    found = await connection.fetchval(
        "SELECT 1 FROM user_accounts WHERE user_id = $1 AND $2 = ANY(accounts)", user_id, account
    )
    return found is not None


async def select_user_profile(connection: asyncpg.Connection, user_id: str) -> UserProfile | None:
    try:
        key = UUID(user_id)
    except ValueError:
        return None
    row = await connection.fetchrow(
        "SELECT user_id, email_digest, mobile_number, locale FROM user_profiles WHERE user_id = $1",
        key,
    )
    return UserProfile(**dict(row)) if row else None


@dataclass(frozen=True)
class UserAuthenticator:
    """An API user's confirmed authenticator app, as identity published it: the secret sealed."""

    user_id: UUID
    authenticator_id: UUID
    secret_sealed: str
    digits: int
    algorithm: str
    period_seconds: int


async def upsert_user_authenticator(
    connection: asyncpg.Connection, authenticator: UserAuthenticator, confirmed_at: datetime
) -> None:
    """The user's authenticator from now on (a user has one: a new enrolment replaces the last),
    unless a later one was confirmed already."""
    await connection.execute(
        """INSERT INTO user_authenticators (user_id, authenticator_id, secret_sealed, digits, algorithm,
               period_seconds, confirmed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (user_id) DO UPDATE SET authenticator_id = $2, secret_sealed = $3, digits = $4,
               algorithm = $5, period_seconds = $6, confirmed_at = $7
           WHERE user_authenticators.confirmed_at <= $7""",
        authenticator.user_id,
        authenticator.authenticator_id,
        authenticator.secret_sealed,
        authenticator.digits,
        authenticator.algorithm,
        authenticator.period_seconds,
        confirmed_at,
    )


async def delete_user_authenticator(
    connection: asyncpg.Connection, user_id: UUID, authenticator_id: UUID
) -> None:
    """Forget that authenticator (not a newer one the user confirmed since)."""
    await connection.execute(
        "DELETE FROM user_authenticators WHERE user_id = $1 AND authenticator_id = $2",
        user_id,
        authenticator_id,
    )


async def select_user_authenticator(
    connection: asyncpg.Connection, user_id: str | None
) -> UserAuthenticator | None:
    try:
        key = UUID(user_id) if user_id else None
    except ValueError:
        return None
    if key is None:
        return None
    row = await connection.fetchrow(
        "SELECT user_id, authenticator_id, secret_sealed, digits, algorithm, period_seconds"
        " FROM user_authenticators WHERE user_id = $1",
        key,
    )
    return UserAuthenticator(**dict(row)) if row else None


async def insert_otp_request(
    connection: asyncpg.Connection,
    request_id: UUID,
    package_id: str,
    order: int | None,
    user_id: str | None = None,
    document_id: str | None = None,
    field_name: str | None = None,
) -> None:
    await connection.execute(
        """INSERT INTO otp_requests (request_id, package_id, "order", user_id, document_id, field_name)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
        request_id,
        package_id,
        order,
        user_id,
        document_id,
        field_name,
    )


async def select_otp_request(
    connection: asyncpg.Connection, request_id: UUID
) -> dict[str, Any] | None:
    row = await connection.fetchrow("SELECT * FROM otp_requests WHERE request_id = $1", request_id)
    return dict(row) if row else None


@dataclass(frozen=True)
class RevokedGrant:
    jti: UUID
    package_id: str
    order: int
    expires_at: datetime


async def select_recipient_for_grant(
    connection: asyncpg.Connection, package_id: str, order: int
) -> tuple[int, str] | None:
    """The recipient's authentication version and package state as committed now, their rows locked
    (shared) until the transaction ends: a revocation of the recipient or the package waits for the
    grant to be recorded, and a change committed first is seen here."""
    row = await connection.fetchrow(
        """SELECT r.authentication_version, p.state FROM recipients r JOIN packages p USING (package_id)
           WHERE r.package_id = $1 AND r."order" = $2 FOR SHARE OF r, p""",
        package_id,
        order,
    )
    return (row["authentication_version"], row["state"]) if row else None


async def insert_issued_grant(
    connection: asyncpg.Connection,
    jti: str,
    package_id: str,
    order: int,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        """INSERT INTO issued_grants (jti, package_id, "order", issued_at, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        UUID(jti),
        package_id,
        order,
        issued_at,
        expires_at,
    )


async def update_grants_revoked(
    connection: asyncpg.Connection,
    package_id: str,
    order: int | None,
    reason: str,
    now: datetime,
    expired_since: datetime,
) -> list[RevokedGrant]:
    """Revoke the recipient's (``order`` None: every recipient's of the package) grants not yet
    revoked that expire after ``expired_since``; returns them, oldest first. The recipients' rows
    (or the package's) are locked first, so a grant being issued meanwhile is recorded before, and
    revoked here, or sees what revokes it."""
    if order is None:
        await connection.execute(
            "SELECT 1 FROM packages WHERE package_id = $1 FOR UPDATE", package_id
        )
    else:
        await connection.execute(
            'SELECT 1 FROM recipients WHERE package_id = $1 AND "order" = $2 FOR UPDATE',
            package_id,
            order,
        )
    rows = await connection.fetch(
        """UPDATE issued_grants SET revoked_at = $4, revocation_reason = $3
           WHERE package_id = $1 AND ($2::int IS NULL OR "order" = $2) AND revoked_at IS NULL
                 AND expires_at > $5
           RETURNING jti, package_id, "order", issued_at, expires_at""",
        package_id,
        order,
        reason,
        now,
        expired_since,
    )
    ordered = sorted(rows, key=lambda row: (row["issued_at"], row["order"], row["jti"]))
    return [
        RevokedGrant(row["jti"], row["package_id"], row["order"], row["expires_at"])
        for row in ordered
    ]
