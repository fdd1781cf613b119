"""A small service built on the message spine, used to test the spine on real servers.

`ledger.deposit` appends a row and yields `ledger.deposited`; its `behaviour` field makes the
use case fail the ways the pipeline must handle (attempts are counted in Redis, so they
survive a process restart).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Literal

from faststream import FastStream
from pydantic_settings import SettingsConfigDict

from libs.runtime.errors import NotFound
from libs.runtime.messaging.outgoing import Outgoing
from libs.runtime.service import Resources, Scope, ServiceDefinition, ServiceSettings, build_app
from signgate_contracts import Command, CommandRejected, Event, Topic, TopicKind

Behaviour = Literal["ok", "transient", "poison", "refuse", "hang", "aborts"]
"""``aborts``: a read Postgres refuses before any write, which aborts the lane's transaction."""


class Deposit(Command):
    type: Literal["ledger.deposit"] = "ledger.deposit"
    account: str
    amount: int
    behaviour: Behaviour = "ok"
    transient_failures: int = 0


class Deposited(Event):
    type: Literal["ledger.deposited"] = "ledger.deposited"
    account: str
    amount: int


COMMANDS = Topic("test.ledger.commands", TopicKind.COMMANDS, "account", 3, timedelta(hours=1),
                 (Deposit,), "Test commands.")
EVENTS = Topic("test.ledger.events", TopicKind.EVENTS, "account", 3, timedelta(hours=1),
               (Deposited, CommandRejected), "Test events.")
TOPICS = (COMMANDS, EVENTS)


def attempts_key(scope: Scope[Resources], command: Deposit) -> str:
    return f"{scope.dependencies.settings.connections.redis_prefix}ledger:attempts:{command.event_id}"


def armed_key(prefix: str, event_id: object) -> str:
    return f"{prefix}ledger:hang:{event_id}"


def entered_key(prefix: str, event_id: object) -> str:
    return f"{prefix}ledger:entered:{event_id}"


async def deposit(command: Deposit, scope: Scope[Resources]) -> list[Outgoing]:
    redis = scope.dependencies.redis
    assert redis is not None and scope.connection is not None
    prefix = scope.dependencies.settings.connections.redis_prefix
    attempt = await redis.incr(attempts_key(scope, command))
    match command.behaviour:
        case "transient" if attempt <= command.transient_failures:
            raise ConnectionError("simulated outage of a dependency")
        case "poison":
            raise RuntimeError("simulated defect")
        case "refuse":
            raise NotFound("Account not found", code="account_not_found")
        case "aborts":
            await scope.connection.fetchval("SELECT 'not a number'::int")
        case "hang" if await redis.getdel(armed_key(prefix, command.event_id)):
            await redis.set(entered_key(prefix, command.event_id), 1)
            await asyncio.Event().wait()  # until the process is killed
    await scope.connection.execute(
        "INSERT INTO entries (event_id, account, amount) VALUES ($1, $2, $3)",
        command.event_id, command.account, command.amount,
    )
    return [Outgoing(EVENTS.name, command.account, Deposited(account=command.account, amount=command.amount))]


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_LEDGER_", extra="ignore")


DEFINITION = ServiceDefinition(
    name="ledger",
    schema="ledger",
    uses_redis=True,
    consumes=(COMMANDS,),
    extra_outcomes={COMMANDS.name: EVENTS},
    handlers={Deposit: deposit},
    settings=LedgerSettings,
    dependencies=lambda resources: resources,  # a test service: its handler reads the resources as they are
    folder=Path(__file__).parent,
)


def create_app(settings: LedgerSettings | None = None) -> FastStream:
    return build_app(DEFINITION, settings or LedgerSettings())
