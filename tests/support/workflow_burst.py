"""A burst of mixed workflow commands over many packages, and what applying them one by one gives.

The reference applies the pure rules (`services.workflow.domain.decide`) to each package's
commands in publication order, with a stand-in for every secret's hash; the service's state
is compared with secret hashes reduced to "set or not".
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from libs.runtime.errors import Refusal
from services.workflow import domain, views
from services.workflow.dependencies import PublishingKeys
from services.workflow.domain import Package
from signgate_contracts.envelope import Command
from signgate_contracts.workflow import (
    AddAuthentication,
    ChangeAccessCode,
    LockWorkflow,
    RecordRecipientDeclined,
    RecordRecipientReceived,
    RecordRecipientSigned,
    RegisterPackage,
    RemoveAuthentication,
    ResetRecipientAuthentication,
    ShareWorkflow,
    TerminateWorkflow,
    UnlockWorkflow,
    UpdateRecipientAuthentication,
)
from tests.support.workflow_driver import User

STAND_IN_HASH = "<hash>"

SIGNINGHUB_BODIES: list[dict[str, Any]] = [
    {"authentication": {"enabled": True, "password": {"enabled": True, "user_password": "pw-burst"}}},
    {"authentication": {"enabled": True, "password": {"enabled": True}}},
    {"authentication": {"enabled": True, "sms_otp": {"enabled": True, "mobile_number": "00445566778899"}}},
    {"apply_to_all": True, "access_duration": {"enabled": True, "duration_by_days": {
        "enabled": True, "duration": {"total_days": 4}}}},
    {"access_duration": {"enabled": True, "duration_by_date": {"enabled": True, "duration": {
        "start_date_time": "2015-02-13T12:10:000Z", "end_date_time": "2015-02-28T12:10:000Z"}}}},
    {"authentication": {"enabled": False}, "access_duration": {"enabled": False}},
]


@dataclass
class Burst:
    """Commands in publication order, and who sent each (by correlation id)."""

    commands: list[Command] = field(default_factory=list)
    callers: dict[str, str] = field(default_factory=dict)


def generate(owner: User, stranger: User, *, packages: int, per_package: int, seed: int, prefix: str) -> Burst:
    """``packages`` x ``per_package`` commands; each package starts with its registration and the
    packages' commands are interleaved at random (each package's own order is kept)."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    queues = [
        _package_commands(rng, f"{prefix}-{index:03d}", owner, stranger, per_package)
        for index in range(packages)
    ]
    burst = Burst()
    tick = 0
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        user, command = queue.pop(0)
        tick += 1
        command = command.model_copy(update={
            "occurred_at": start + timedelta(seconds=tick), "access_token": SecretStr(user.token)})
        burst.commands.append(command)
        burst.callers[str(command.correlation_id)] = user.user_id
    return burst


def _package_commands(
    rng: random.Random, package_id: str, owner: User, stranger: User, count: int
) -> list[tuple[User, Command]]:
    """Mostly sensible: settings while a draft, then sharing, then recipients acting in order,
    with settings changes, locks, resets and some mistakes (wrong order, a stranger) throughout."""
    emails = ["one@example.com", "two@example.com", "one@example.com"][: rng.choice([2, 3])]
    recipients = [
        {"order": order, "email": email, "name": f"R{order}", "mobile_number": f"+447700900{order:03d}"}
        for order, email in enumerate(emails, start=1)
    ]
    commands: list[Command] = [RegisterPackage(
        package_id=package_id, name="Burst", workflow_type=rng.choice(["sequential", "parallel"]),
        documents=[{"document_id": "d-1", "name": "d.pdf"}], recipients=recipients,
    )]
    progress = [
        kind(package_id=package_id, order=order)
        for order in range(1, len(recipients) + 1)
        for kind in (RecordRecipientReceived, RecordRecipientSigned)
    ]
    shared = False
    while len(commands) < count:
        if not shared and len(commands) >= count * 2 // 5:
            commands.append(ShareWorkflow(package_id=package_id))
            shared = True
        elif shared and progress and rng.random() < 0.45:
            commands.append(progress.pop(0))
        else:
            commands.extend(_setting_or_mistake(rng, package_id, len(recipients)))
    return [(stranger if rng.random() < 0.02 else owner, command) for command in commands[:count]]


def _setting_or_mistake(rng: random.Random, package_id: str, recipients: int) -> list[Command]:
    order = rng.randint(1, recipients) if rng.random() < 0.9 else 4  # 4: no one
    ref: dict[str, Any] = {"emailId": rng.choice(["one@example.com", "two@example.com"])}
    if rng.random() < 0.6:
        ref["order"] = order
    choice = rng.choices(
        ["update", "add", "remove", "change", "lock", "reset", "declined", "terminate"],
        weights=[10, 10, 3, 3, 3, 6, 1, 1],
    )[0]
    match choice:
        case "update":
            return [UpdateRecipientAuthentication(package_id=package_id, order=order,
                                                  body=rng.choice(SIGNINGHUB_BODIES))]
        case "add":
            kind = rng.choices(["EmailOTP", "SMSOTP", "AccessCode"], weights=[5, 4, 1])[0]
            extra: dict[str, Any] = {"accessCode": "123456"} if kind == "AccessCode" else {}
            if kind == "SMSOTP" and rng.random() < 0.5:
                extra["phoneNumber"] = {"countryCode": "+1", "number": "2015666802"}
            if rng.random() < 0.3:
                extra["authenticationRetryCount"] = rng.randint(1, 10)
            return [AddAuthentication(package_id=package_id, body={**ref, "authenticationType": kind, **extra})]
        case "remove":
            return [RemoveAuthentication(package_id=package_id, body=ref)]
        case "change":
            return [ChangeAccessCode(package_id=package_id, body={**ref, "accessCode": "654321"})]
        case "lock":
            lock: list[Command] = [LockWorkflow(package_id=package_id)]
            return lock + ([UnlockWorkflow(package_id=package_id)] if rng.random() < 0.8 else [])
        case "reset":
            return [ResetRecipientAuthentication(
                package_id=package_id, order=order, method=rng.choice([None, None, "email_otp"]))]
        case "declined":
            return [RecordRecipientDeclined(package_id=package_id, order=order)]
        case _:
            return [TerminateWorkflow(package_id=package_id)]


@dataclass
class Reference:
    """What applying a burst one command at a time gives."""

    packages: dict[str, Package | None] = field(default_factory=dict)
    history: dict[str, list[tuple[str, int | None, dict[str, Any]]]] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    """Correlation id -> the event types it publishes, or ["command.rejected:<code>"]."""


def _publishing_keys() -> PublishingKeys:
    """The keys the workflow service publishes with, from the session's environment."""
    from services.workflow.app import WorkflowSettings, publishing_keys

    return publishing_keys(WorkflowSettings())


def reference(burst: Burst) -> Reference:
    model, keys = Reference(), _publishing_keys()
    for command in burst.commands:
        package_id = command.package_id  # type: ignore[attr-defined]
        before = model.packages.get(package_id)
        secret = domain.secret_of(command)
        secret_hash = STAND_IN_HASH if secret is not None and secret.get_secret_value() else None
        try:
            decision = domain.decide(command, before, burst.callers[str(command.correlation_id)], secret_hash)
        except Refusal as refusal:
            model.outcomes[str(command.correlation_id)] = [f"command.rejected:{refusal.code}"]
            model.packages.setdefault(package_id, before)
            continue
        model.packages[package_id] = decision.package
        model.history.setdefault(package_id, []).extend(
            (change.action, change.order, dict(change.details)) for change in decision.changes
        )
        model.outcomes[str(command.correlation_id)] = [event.type for event in views.events(decision, keys)]
    return model


def outcome_types(outcomes: list[dict[str, Any]]) -> list[str]:
    """The types of a command's outcomes in the form `Reference.outcomes` uses: its events, in their
    order (a share's reply, the invitations, is not an outcome: it goes to the caller)."""
    return [
        f"command.rejected:{o['code']}" if o["type"] == "command.rejected" else o["type"] for o in outcomes
        if o["type"] != "workflow.recipient_invitations_issued"
    ]


def comparable(package: Package | None) -> Package | None:
    """The package with each secret hash reduced to whether there is one."""
    if package is None:
        return None
    return replace(package, recipients=tuple(
        replace(r, authentication=replace(
            r.authentication, secret_hash=STAND_IN_HASH if r.authentication.secret_hash else None))
        if r.authentication else r
        for r in package.recipients
    ))


def new_prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def stored_against_reference(database_url: str, expected: Any, burst: Any) -> tuple[dict[str, list], int]:
    """Assert every reference package is stored as the reference has it; return each package's
    stored history, and how many history entries of the burst were applied more than once."""
    from collections import Counter

    from libs.runtime.postgres import create_pool
    from services.workflow import repository

    pool = await create_pool(database_url, "workflow")
    try:
        async with pool.acquire() as connection:
            histories = {}
            for package_id, package in expected.packages.items():
                assert comparable(await repository.select_package(connection, package_id)) == comparable(package)
                histories[package_id] = await repository.select_history(connection, package_id)
            causes = await connection.fetch(
                "SELECT cause_id, position FROM history WHERE starts_with(package_id, $1)",
                burst.commands[0].package_id.rsplit("-", 1)[0])
    finally:
        await pool.close()
    return histories, sum(n - 1 for n in Counter((r["cause_id"], r["position"]) for r in causes).values() if n > 1)
