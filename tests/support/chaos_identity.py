"""Driving the identity service through the broker as a caller would, timing each answer."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from libs.security.tokens import TokenIssuer, TokenSettings
from signgate_contracts import Command, encode
from signgate_contracts import identity as idn
from signgate_contracts.envelope import utc_now
from tests.support.kafka import correlated
from tests.support.system import System

COMMANDS = "signgate.identity.commands"


def admin_token(system: System) -> str:
    """An operator token issued on the identity service's own clock (tests move it forward)."""
    settings = TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                             public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"])
    issuer = TokenIssuer.from_settings(settings, clock=system.identity_clock or utc_now)
    return issuer.issue("operator:security", "operator:security", roles=["admin"]).token


@dataclass
class Answer:
    reply: dict[str, Any]
    events: list[dict[str, Any]]
    seconds: float


async def command(system: System, client: AIOKafkaProducer, message: Command, key: str,
                  *, reply: bool = False) -> Answer:
    """Publish ``message``; wait for its event (and its reply) and say how long the answer took."""
    connections = system.connections
    started = time.perf_counter()
    await client.send_and_wait(connections.topic(COMMANDS), encode(message), key=key.encode())
    answered: dict[str, Any] = {}
    if reply:
        [record] = await system.watch.wait_for(lambda r: r.topic == connections.topic("signgate.identity.replies")
                                               and correlated(r, message.correlation_id), timeout=30)
        answered = json.loads(record.value)
    seconds = time.perf_counter() - started
    events = await system.watch.wait_for(lambda r: r.topic == connections.topic("signgate.identity.events")
                                         and correlated(r, message.correlation_id), timeout=30)
    return Answer(answered, [json.loads(r.value) for r in events], seconds)


async def register_user(system: System, client: AIOKafkaProducer, password: str) -> str:
    return (await register_user_with_id(system, client, password))[0]


async def register_user_with_id(system: System, client: AIOKafkaProducer, password: str) -> tuple[str, str]:
    """A new user's name and id (the events name users by id only)."""
    user_name = f"user-{uuid.uuid4().hex[:8]}@example.com"
    answer = await command(system, client, idn.RegisterUser(
        user_name=user_name, first_name="Sam", last_name="Tester", password=password,
        accounts=[idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)],
        access_token=admin_token(system)), user_name)
    assert answer.events[0]["type"] == "identity.user_registered_v2", answer.events
    return user_name, answer.events[0]["user_id"]


async def authenticate(system: System, client: AIOKafkaProducer, user_name: str, password: str) -> Answer:
    return await command(system, client, idn.AuthenticateUser(user_name=user_name, password=password),
                         user_name.strip().lower(), reply=True)
