"""The workflow's SQL: packages with their recipients, and the history, in the `workflow` schema.

Functions are named after the SQL they run and take the caller's connection, so a handler's
reads and writes share its transaction. Reading a package for a change locks its row
(``for_update``): commands for one package are applied one at a time even while partitions
move between replicas. A lane's read-ahead (``PackagesAhead``: the packages its authentication
facts are about, read and locked in one go) is consulted here, by ``select_package``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from libs.runtime.read_ahead import ByPackage, ReadAhead
from services.workflow.domain import Authentication, Document, Package, Recipient, RecipientTotp
from signgate_contracts import Message
from signgate_contracts.workflow import AccessWindow, IdentityVerification


@dataclass(frozen=True)
class NewHistoryEntry:
    occurred_at: datetime
    actor: str
    action: str
    cause_id: UUID
    position: int
    """Among the entries of the message that caused it."""
    order: int | None = None
    correlation_id: UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryRecord:
    sequence: int
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    action: str
    order: int | None
    correlation_id: UUID | None
    details: dict[str, Any]


# -- packages --


async def select_package(
    connection: asyncpg.Connection,
    package_id: str,
    *,
    for_update: bool = False,
    read_ahead: ReadAhead | None = None,
) -> Package | None:
    """The package with its recipients, or None: as the lane read it ahead (``read_ahead``, whose
    packages are locked for update), else read now."""
    if isinstance(read_ahead, PackagesAhead):
        known, package = read_ahead.recall(package_id, None)
        if known:
            return package
    return (await select_packages(connection, [package_id], for_update=for_update)).get(package_id)


async def select_packages(
    connection: asyncpg.Connection, package_ids: Sequence[str], *, for_update: bool = False
) -> dict[str, Package]:
    """The packages of ``package_ids`` that exist, with their recipients, in two queries (locked
    in the order of their ids, so that two transactions locking several never wait on each other)."""
    rows = await connection.fetch(
        "SELECT * FROM packages WHERE package_id = ANY($1::text[]) ORDER BY package_id"
        + (" FOR UPDATE" if for_update else ""),
        list(package_ids),
    )
    if not rows:
        return {}
    recipients: dict[str, list[Recipient]] = {}
    for r in await connection.fetch(
        "SELECT * FROM recipients WHERE package_id = ANY($1::text[]) ORDER BY package_id, recipient_order",
        [row["package_id"] for row in rows],
    ):
        recipients.setdefault(r["package_id"], []).append(_recipient(r))
    return {
        row["package_id"]: Package(
            package_id=row["package_id"],
            owner_id=row["owner_id"],
            name=row["name"],
            workflow_type=row["workflow_type"],
            documents=tuple(Document(**d) for d in json.loads(row["documents"])),
            recipients=tuple(recipients.get(row["package_id"], ())),
            registered_at=row["registered_at"],
            state=row["state"],
            locked=row["locked"],
            on_behalf_of=row["on_behalf_of"],
            account=row["account"],
            shared_at=row["shared_at"],
            finished_at=row["finished_at"],
        )
        for row in rows
    }


class PackagesAhead(ByPackage[Package]):
    """A lane's read-ahead (``libs.runtime.read_ahead``) of the packages its messages of the types
    ``about`` (the authentication facts) are about, locked for update as recording a fact locks them."""

    def __init__(self, about: frozenset[type[Message]]) -> None:
        super().__init__()
        self._about = about

    async def load(self, connection: asyncpg.Connection, messages: Sequence[Message]) -> None:
        wanted = sorted({m.package_id for m in messages if type(m) in self._about})  # type: ignore[attr-defined]
        if not wanted:
            return
        found = await select_packages(connection, wanted, for_update=True)
        for package_id in wanted:
            self.remember(package_id, None, found.get(package_id))


async def insert_package(connection: asyncpg.Connection, package: Package) -> None:
    await connection.execute(
        "INSERT INTO packages (package_id, owner_id, name, workflow_type, state, locked, on_behalf_of,"
        " documents, registered_at, shared_at, finished_at, account)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12)",
        package.package_id,
        package.owner_id,
        package.name,
        package.workflow_type,
        package.state,
        package.locked,
        package.on_behalf_of,
        json.dumps([{"document_id": d.document_id, "name": d.name} for d in package.documents]),
        package.registered_at,
        package.shared_at,
        package.finished_at,
        package.account,
    )
    await connection.executemany(
        "INSERT INTO recipients (package_id, recipient_order, email, name, role, mobile_number,"
        " signer_user_id, signer_user_name, status, received_at, signed_at, declined_at, authentication,"
        " access_window, failed_attempts, locked_out_at, authentication_version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::jsonb, $15, $16, $17)",
        [
            (
                package.package_id,
                r.order,
                r.email,
                r.name,
                r.role,
                r.mobile_number,
                r.signer_user_id,
                r.signer_user_name,
                *_recipient_state(r),
            )
            for r in package.recipients
        ],
    )


async def update_package(connection: asyncpg.Connection, before: Package, after: Package) -> None:
    """Write what changed between ``before`` and ``after``: the package row, the recipients."""
    if replace(before, recipients=()) != replace(after, recipients=()):
        await connection.execute(
            "UPDATE packages SET state = $2, locked = $3, shared_at = $4, finished_at = $5"
            " WHERE package_id = $1",
            after.package_id,
            after.state,
            after.locked,
            after.shared_at,
            after.finished_at,
        )
    changed = [
        new for old, new in zip(before.recipients, after.recipients, strict=True) if old != new
    ]
    if changed:
        await connection.executemany(
            "UPDATE recipients SET status = $3, received_at = $4, signed_at = $5, declined_at = $6,"
            " authentication = $7::jsonb, access_window = $8::jsonb, failed_attempts = $9, locked_out_at = $10,"
            " authentication_version = $11"
            " WHERE package_id = $1 AND recipient_order = $2",
            [(after.package_id, r.order, *_recipient_state(r)) for r in changed],
        )


def _recipient_state(recipient: Recipient) -> tuple[Any, ...]:
    return (
        recipient.status,
        recipient.received_at,
        recipient.signed_at,
        recipient.declined_at,
        _dump_authentication(recipient.authentication),
        recipient.access_window.model_dump_json() if recipient.access_window else None,
        recipient.failed_attempts,
        recipient.locked_out_at,
        recipient.authentication_version,
    )


def _recipient(row: asyncpg.Record) -> Recipient:
    return Recipient(
        order=row["recipient_order"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        mobile_number=row["mobile_number"],
        status=row["status"],
        received_at=row["received_at"],
        signed_at=row["signed_at"],
        declined_at=row["declined_at"],
        authentication=_load_authentication(row["authentication"]),
        access_window=AccessWindow.model_validate_json(row["access_window"])
        if row["access_window"]
        else None,
        failed_attempts=row["failed_attempts"],
        locked_out_at=row["locked_out_at"],
        authentication_version=row["authentication_version"],
        signer_user_id=row["signer_user_id"],
        signer_user_name=row["signer_user_name"],
    )


def _dump_authentication(authentication: Authentication | None) -> str | None:
    if authentication is None:
        return None
    verification = authentication.identity_verification
    return json.dumps(
        {
            "methods": list(authentication.methods),
            "secret_hash": authentication.secret_hash,
            "mobile_number": authentication.mobile_number,
            "retry_count": authentication.retry_count,
            "frequency": authentication.frequency,
            "identity_verification": verification.model_dump(mode="json") if verification else None,
            "on_behalf_of": authentication.on_behalf_of,
            "locale": authentication.locale,
            "brand_name": authentication.brand_name,
            "totp": dataclasses.asdict(authentication.totp) if authentication.totp else None,
            "otp_fallback": list(authentication.otp_fallback),
        }
    )


def _load_authentication(text: str | None) -> Authentication | None:
    if text is None:
        return None
    document = json.loads(text)
    verification = document["identity_verification"]
    totp = document.get("totp")  # the provisioned secret only sealed: workflow cannot open it
    return Authentication(
        methods=tuple(document["methods"]),
        secret_hash=document["secret_hash"],
        mobile_number=document["mobile_number"],
        retry_count=document["retry_count"],
        frequency=document["frequency"],
        identity_verification=IdentityVerification.model_validate(verification)
        if verification
        else None,
        on_behalf_of=document["on_behalf_of"],
        locale=document.get("locale"),  # policies stored before code messages were localised
        brand_name=document.get("brand_name"),
        totp=RecipientTotp(**totp) if totp else None,
        otp_fallback=tuple(document.get("otp_fallback") or ()),  # absent from rows written before
    )


# -- history --


async def insert_history_entries(
    connection: asyncpg.Connection, package_id: str, entries: Sequence[NewHistoryEntry]
) -> None:
    """Append entries after the package's last one (the caller holds the package's row lock)."""
    await connection.executemany(
        "INSERT INTO history (package_id, sequence, occurred_at, actor, action, recipient_order,"
        " correlation_id, cause_id, position, details)"
        " SELECT $1, coalesce(max(sequence), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb"
        " FROM history WHERE package_id = $1",
        [
            (
                package_id,
                e.occurred_at,
                e.actor,
                e.action,
                e.order,
                e.correlation_id,
                e.cause_id,
                e.position,
                json.dumps(e.details),
            )
            for e in entries
        ],
    )


async def select_history(
    connection: asyncpg.Connection,
    package_id: str,
    *,
    after_sequence: int = 0,
    limit: int | None = None,
) -> list[HistoryRecord]:
    rows = await connection.fetch(
        "SELECT sequence, occurred_at, recorded_at, actor, action, recipient_order, correlation_id, details"
        " FROM history WHERE package_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        package_id,
        after_sequence,
        limit,
    )
    return [
        HistoryRecord(
            sequence=row["sequence"],
            occurred_at=row["occurred_at"],
            recorded_at=row["recorded_at"],
            actor=row["actor"],
            action=row["action"],
            order=row["recipient_order"],
            correlation_id=row["correlation_id"],
            details=json.loads(row["details"]),
        )
        for row in rows
    ]
