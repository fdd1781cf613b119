"""Pure parts of the message pipeline: envelopes of bad records, field names, dead letters, ids."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Literal

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from libs.runtime.errors import is_transient
from libs.runtime.messaging.dead_letters import dead_letter_record
from libs.runtime.messaging.outgoing import caused_by
from libs.runtime.messaging.pipeline import RetryPolicy, describe_validation_error, read_envelope
from libs.runtime.messaging.publisher import Publisher
from libs.runtime.messaging.savepoint import reads_only
from libs.runtime.service import balanced_lanes
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import Command, CommandRejected, Secret


class Login(Command):
    type: Literal["test.login"] = "test.login"
    user_name: str
    password: Secret
    attempts: int


def record(value: bytes, offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord(
        topic="signgate.identity.commands", partition=2, offset=offset, timestamp=0, timestamp_type=0,
        key=b"alice", value=value, checksum=None, serialized_key_size=5,
        serialized_value_size=len(value), headers=(),
    )


def test_envelope_of_a_valid_record_carries_its_ids() -> None:
    """The ids and type of a readable envelope are taken as they are."""
    event_id, correlation_id = uuid.uuid4(), uuid.uuid4()
    body = {"type": "x.y", "event_id": str(event_id), "correlation_id": str(correlation_id)}
    envelope = read_envelope(record(json.dumps(body).encode()))
    assert (envelope.event_id, envelope.correlation_id, envelope.type) == (event_id, correlation_id, "x.y")


def test_envelope_of_garbage_gets_ids_stable_across_redelivery() -> None:
    """Unreadable records get stand-in ids derived from their position: the same on every delivery."""
    first, again = read_envelope(record(b"\x00junk")), read_envelope(record(b"\x00junk"))
    other = read_envelope(record(b"\x00junk", offset=8))
    assert first == again and first.event_id != other.event_id and first.type is None


def test_validation_error_names_the_field_without_the_input() -> None:
    """An invalid body is described by its field path and message, never by the value sent."""
    try:
        Login.model_validate({"user_name": "a", "password": "hunter2", "attempts": "many"})
    except ValidationError as error:
        field, text = describe_validation_error(error, "test.login")
    assert field == "attempts"
    assert "many" not in text and "hunter2" not in text


def test_dead_letter_keeps_a_json_payload_with_credentials_removed() -> None:
    """A JSON payload is kept in the dead letter with every secret-named field redacted."""
    body = {"type": "test.login", "user_name": "alice", "password": "hunter2", "nested": {"otp": "123456"}}
    document = json.loads(dead_letter_record(record(json.dumps(body).encode()), service="identity", reason="r"))
    assert document["payload"]["user_name"] == "alice"
    assert "hunter2" not in json.dumps(document) and "123456" not in json.dumps(document)
    assert (document["source_topic"], document["partition"], document["offset"]) == (
        "signgate.identity.commands", 2, 7
    )


def test_dead_letter_of_non_json_keeps_only_a_digest() -> None:
    """Bytes that are not a JSON object are kept only as digest and size."""
    document = json.loads(dead_letter_record(record(b"password=hunter2"), service="identity", reason="r"))
    assert document["payload"] is None and document["payload_size"] == 16
    assert "hunter2" not in json.dumps(document)


def test_effects_get_replay_stable_ids_and_the_cause_s_correlation() -> None:
    """Handling one message twice stamps its effects with the same ids, correlation and causation."""
    cause = Login(user_name="a", password="p", attempts=1)
    effect = CommandRejected(status=401, code="c", message="m")
    first, second = caused_by(cause, effect), caused_by(cause, effect)
    assert first.event_id == second.event_id != caused_by(cause, effect, index=1).event_id
    assert (first.correlation_id, first.causation_id) == (cause.correlation_id, cause.event_id)


def test_retry_delays_grow_and_are_bounded() -> None:
    """A transient fault is retried a bounded number of times with growing delays."""
    assert RetryPolicy(attempts=4, first_delay=0.1).delays() == [0.1, 0.2, 0.4]
    assert RetryPolicy(attempts=1).delays() == []


def test_secret_fields_stay_out_of_repr_but_travel_on_the_wire() -> None:
    """A credential in a command is hidden from repr and logs, and sent in clear only in JSON."""
    command = Login(user_name="a", password="hunter2", attempts=1)
    assert "hunter2" not in repr(command)
    assert json.loads(command.model_dump_json())["password"] == "hunter2"


def test_dead_letter_masks_phone_numbers_and_email_addresses() -> None:
    """A dead-lettered OTP request keeps its destination masked, and a package's recipients too."""
    body = {"type": "otp.delivery_requested", "channel": "sms", "destination": "+447700908899",
            "recipients": [{"email": "alice@example.com", "mobile_number": "+447700900123"}],
            "body": {"phoneNumber": {"countryCode": "+1", "number": "2015666802"}}}
    document = json.loads(dead_letter_record(record(json.dumps(body).encode()), service="otp", reason="r"))
    text = json.dumps(document)
    assert document["payload"]["destination"] == "+44******8899"
    assert document["payload"]["recipients"][0] == {"email": "a***@example.com", "mobile_number": "+44******0123"}
    assert "2015666802" not in text and "alice@example.com" not in text


def test_dead_letter_of_an_object_too_deep_to_redact_keeps_only_a_digest() -> None:
    """A JSON object nested deeper than the redactor can walk is dead-lettered as digest and size."""
    raw = ('{"type":"x.y","a":' + '{"a":' * 900 + '1' + '}' * 901).encode()
    document = json.loads(dead_letter_record(record(raw), service="identity", reason="r"))
    assert document["payload"] is None and document["payload_size"] == len(raw)


def test_dead_letter_of_a_huge_object_fits_on_the_broker() -> None:
    """A JSON object whose escaped form would pass the broker's 1 MiB limit is kept only as a digest."""
    raw = json.dumps({"type": "x.y", "name": "é" * 300_000}, ensure_ascii=False).encode()
    dead_letter = dead_letter_record(record(raw), service="identity", reason="r")
    assert len(dead_letter) < 64 * 1024 and json.loads(dead_letter)["payload"] is None


def test_only_a_plain_select_counts_as_reading() -> None:
    """A plain SELECT opens no savepoint; an update, an insert or a CTE (which may write) does."""
    assert reads_only("  select * from recipients")
    assert not reads_only("UPDATE recipients SET locked_at = now()")
    assert not reads_only("INSERT INTO outbox VALUES (1)")
    assert not reads_only("WITH gone AS (DELETE FROM outbox RETURNING id) SELECT count(*) FROM gone")


class _SilentBroker:
    """A broker that takes a record and never answers, as one that hangs does."""

    async def publish(self, *_args, **_kwargs):
        await asyncio.Event().wait()


async def test_a_publish_to_a_silent_broker_gives_up_after_twice_the_request_timeout() -> None:
    """A publish the broker never acknowledges fails as a (transient) timeout after twice the request
    timeout, instead of holding the relay for as long as the broker stays silent (aiokafka #1101)."""
    settings = ConnectionSettings(kafka_request_timeout_ms=1_000)
    publisher = Publisher(_SilentBroker(), settings)  # type: ignore[arg-type]
    started = time.monotonic()

    with pytest.raises(TimeoutError) as raised:
        await publisher.send("topic", b"key", b"{}", {})

    assert 2.0 <= time.monotonic() - started < 4.0
    assert is_transient(raised.value)


def _record(key: bytes | None, offset: int, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 0, 0, key, b"{}", None, 0, 0, [])


def test_lanes_keep_each_keys_records_together_in_order_and_hold_about_as_many() -> None:
    """A batch's records are split so that every key's records share one lane, in the order they
    came, no more lanes than asked for, and the lanes about equally full."""
    records = [_record(f"pkg-{n % 10}".encode(), n) for n in range(100)]
    records += [_record(None, 100 + n, partition=3) for n in range(5)]

    lanes = balanced_lanes(records, 4)

    assert len(lanes) == 4
    assert sorted(r.offset for lane in lanes for r in lane) == list(range(105))
    for lane in lanes:
        keys = {r.key or b"p3" for r in lane}
        for key in keys:
            offsets = [r.offset for r in lane if (r.key or b"p3") == key]
            assert offsets == sorted(offsets)
            assert not any((r.key or b"p3") == key for other in lanes if other is not lane for r in other)
    assert max(map(len, lanes)) - min(map(len, lanes)) <= 10
    assert balanced_lanes(records[:3], 4) == [[records[0]], [records[1]], [records[2]]]
