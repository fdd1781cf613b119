"""The four services start on real servers, answer what they cannot handle, and dead-letter garbage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from unittest import mock

import pytest

from libs.devstack.dev_secrets import generate_secrets
from libs.runtime.service import build_service
from libs.runtime.settings import ConnectionSettings
from services.registry import SERVICES
from signgate_contracts.topics import OUTCOME_TOPIC
from tests.support.kafka import TopicWatcher, document, producer
from tests.support.signing import as_writer, signing_key_of

COMMAND_TOPICS = {s.name: t for s in SERVICES for t in s.consumes if t.name in OUTCOME_TOPIC}


@pytest.fixture(scope="module")
async def running_services(provisioned: ConnectionSettings) -> AsyncIterator[None]:
    # each service's own settings class, its secrets (peppers, keys) from a development set
    secrets = {k: v for k, v in generate_secrets().items() if "RECORD" not in k}  # records: the session's keys
    with mock.patch.dict(os.environ, secrets):
        settings = [(d, d.settings(connections=provisioned, record_signing_key=signing_key_of(d.name)))
                    for d in SERVICES if d.settings is not None]
    async with contextlib.AsyncExitStack() as stack:
        services = [build_service(d, s) for d, s in settings]
        await asyncio.gather(*(stack.enter_async_context(s.app) for s in services))  # joins overlap
        yield


@pytest.mark.parametrize("service", sorted(COMMAND_TOPICS))
async def test_unknown_command_gets_a_rejection_on_the_outcome_topic(
    running_services: None, provisioned: ConnectionSettings, service: str
) -> None:
    """A command the service does not know, sent by a plain producer, is answered with a 400."""
    topic = COMMAND_TOPICS[service]
    outcome_topic = provisioned.topic(OUTCOME_TOPIC[topic.name].name)
    correlation_id = str(uuid.uuid4())
    async with TopicWatcher(provisioned.kafka_bootstrap, outcome_topic) as watch:
        async with producer(provisioned.kafka_bootstrap) as client:
            body = {"type": "no.such.command", "correlation_id": correlation_id, "event_id": str(uuid.uuid4())}
            deployed, value = provisioned.topic(topic.name), json.dumps(body).encode()
            await client.send_and_wait(deployed, value, key=b"k", headers=as_writer(topic.name, deployed, b"k", value))
        rejection = await watch.outcome(correlation_id, timeout=30)

    assert rejection["type"] == "command.rejected"
    assert (rejection["status"], rejection["code"], rejection["command_type"]) == (
        400, "unknown_message_type", "no.such.command"
    )


@pytest.mark.parametrize("service", sorted(COMMAND_TOPICS))
async def test_garbage_is_dead_lettered_without_its_content(
    running_services: None, provisioned: ConnectionSettings, service: str
) -> None:
    """Bytes that are not JSON go to the topic's DLQ as a digest, never as the bytes themselves."""
    topic = COMMAND_TOPICS[service]
    secret = f"password={uuid.uuid4().hex}"
    async with TopicWatcher(provisioned.kafka_bootstrap, provisioned.topic(topic.dlq)) as watch:
        async with producer(provisioned.kafka_bootstrap) as client:
            deployed = provisioned.topic(topic.name)
            await client.send_and_wait(deployed, secret.encode(), key=b"k",
                                       headers=as_writer(topic.name, deployed, b"k", secret.encode()))
        [dead] = await watch.wait_for(lambda r: True, timeout=30)

    assert document(dead)["service"] == service
    assert document(dead)["reason"].startswith("undecodable")
    assert secret not in dead.value.decode()
