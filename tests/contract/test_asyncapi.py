"""The AsyncAPI documents show every topic of the registry with the messages it carries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from libs.runtime.messaging.dead_letters import dead_letter_record
from libs.runtime.service import __version__
from libs.runtime.specification import (
    DeadLetter,
    receives,
    sends,
    service_specification,
    system_specification,
)
from libs.tools.docs import DOCS_DIR, asyncapi_files, documentation_connections
from services.registry import SERVICES
from signgate_contracts.schemas import message_type
from signgate_contracts.topics import TOPICS
from tests.support.signing import signing_key_of


@pytest.fixture(scope="module")
def system() -> dict[str, Any]:
    spec = system_specification(SERVICES, documentation_connections(), version=__version__)
    return spec.to_specification().to_jsonable()


def node_path(ref: str) -> list[str]:
    return ref.removeprefix("#/").split("/")


def follow(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref``s followed to what they name."""
    while "$ref" in node:
        target: Any = document
        for part in node_path(node["$ref"]):
            target = target[part]
        node = target
    return node


def payload_classes(document: dict[str, Any], channel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Message ``type`` → its schema, for every message a channel carries."""
    found = {}
    for message in channel["messages"].values():
        payload = follow(document, follow(document, message)["payload"])
        for member in payload.get("oneOf", [payload]):
            schema = follow(document, member)
            type_ = schema.get("properties", {}).get("type", {}).get("const", schema.get("title"))
            found[type_] = schema
    return found


def channels_at(document: dict[str, Any], address: str) -> list[dict[str, Any]]:
    return [c for c in document["channels"].values() if c["address"] == address]


def test_every_topic_appears_with_each_message_type_it_carries(system: dict[str, Any]) -> None:
    """Every registry topic has a channel whose payload offers exactly the topic's message types."""
    for topic in TOPICS:
        channels = channels_at(system, topic.name)
        assert channels, f"{topic.name} is not in the document"
        for channel in channels:
            assert set(payload_classes(system, channel)) == {message_type(m) for m in topic.messages}


def test_each_message_schema_has_the_fields_of_its_class(system: dict[str, Any]) -> None:
    """Each message type's schema in the document has the same fields as its contract class."""
    for topic in TOPICS:
        schemas = payload_classes(system, channels_at(system, topic.name)[0])
        for message in topic.messages:
            schema = schemas[message_type(message)]
            assert set(schema["properties"]) == set(message.model_json_schema()["properties"])
            assert schema.get("description") == message.model_json_schema().get("description")


def test_every_consumed_topic_has_a_dead_letter_channel(system: dict[str, Any]) -> None:
    """The dead-letter topic of every topic a service consumes appears, carrying dead-letter records."""
    for definition in SERVICES:
        for topic in definition.consumes:
            channels = channels_at(system, topic.dlq)
            assert channels, f"{topic.dlq} is not in the document"
            schemas = payload_classes(system, channels[0])
            assert set(schemas) == {"DeadLetter"}
            assert set(schemas["DeadLetter"]["properties"]) == set(DeadLetter.model_fields)


def test_operations_say_who_receives_and_who_sends(system: dict[str, Any]) -> None:
    """Each service receives its consumed topics and sends its outcome, reply, request and DLQ topics."""
    actions = {
        (name.partition(":")[0], follow(system, op["channel"])["address"], op["action"])
        for name, op in system["operations"].items()
    }
    assert ("authentication", "signgate.otp.requests", "send") in actions
    assert ("otp_dispatch", "signgate.otp.requests", "receive") in actions
    assert ("identity", "signgate.identity.replies", "send") in actions
    for definition in SERVICES:
        for channel in receives(definition):
            assert (definition.name, channel.name, "receive") in actions
        for channel in sends(definition):
            assert (definition.name, channel.name, "send") in actions


def test_a_service_document_holds_only_its_own_topics() -> None:
    """A service's document receives what it consumes and sends what it publishes, nothing else."""
    connections = documentation_connections()
    for definition in SERVICES:
        spec = service_specification(definition, connections, version=__version__)
        document = spec.to_specification().to_jsonable()
        addresses = {c["address"] for c in document["channels"].values()}
        expected = {c.name for c in receives(definition)} | {c.name for c in sends(definition)}
        assert addresses == expected, definition.name


def test_a_topic_prefix_is_applied_to_every_channel() -> None:
    """On a deployment with a topic prefix, the document names the topics as deployed."""
    connections = documentation_connections().model_copy(update={"topic_prefix": "staging."})
    spec = service_specification(SERVICES[0], connections, version=__version__)
    addresses = {c["address"] for c in spec.to_specification().to_jsonable()["channels"].values()}
    assert addresses and all(address.startswith("staging.signgate.") for address in addresses)


def test_the_dead_letter_schema_matches_the_records_the_pipeline_writes() -> None:
    """A dead-letter record as the pipeline writes it is exactly what the documented schema describes."""
    record = ConsumerRecord(
        topic="signgate.identity.commands", partition=2, offset=41, timestamp=0, timestamp_type=0,
        key=b"someone", value=b'{"type": "identity.unknown", "password": "x"}', checksum=None,
        serialized_key_size=7, serialized_value_size=40, headers=(),
    )
    document = json.loads(dead_letter_record(record, service="identity", reason="unknown type"))
    assert set(document) == set(DeadLetter.model_fields)
    DeadLetter.model_validate(document)


def test_the_html_page_loads_the_vendored_viewer_and_embeds_the_document() -> None:
    """The generated page loads its viewer from committed files beside it and embeds the whole document."""
    html = asyncapi_files()["asyncapi/index.html"]
    for asset in ("vendor/react-component-3.1.5.js", "vendor/react-component-3.1.5.min.css"):
        assert f'"{asset}"' in html
        assert (DOCS_DIR / "asyncapi" / asset).is_file()
    assert "unpkg.com" not in html and "jsdelivr" not in html
    assert '<meta charset="utf-8">' in html
    assert all(topic.name in html for topic in TOPICS)


@pytest.mark.parametrize("definition", SERVICES, ids=lambda d: d.name)
def test_a_service_serves_the_document_of_its_topics(definition) -> None:
    """The FastStream app of each service serves libs.runtime.specification's document at /docs, topic by topic."""
    from libs.runtime.service import ServiceSettings, build_service

    connections = documentation_connections()
    served = build_service(definition, ServiceSettings(connections=connections, record_signing_key=signing_key_of(definition.name))).app.schema
    mine = service_specification(definition, connections, version=__version__)
    addresses = [
        {channel["address"] for channel in document.to_specification().to_jsonable()["channels"].values()}
        for document in (served, mine)
    ]
    http_routes = {"/livez", "/readyz", "/health", *(path for path, _ in (definition.http_routes(ServiceSettings()) if definition.http_routes else ()))}
    assert addresses[0] - http_routes == addresses[1] and addresses[1]  # plus the HTTP routes (probes, JWKS)
