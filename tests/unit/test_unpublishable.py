"""Which publishing failures are for good, and what the dead letter of an unpublishable record keeps."""

from __future__ import annotations

import json

import pytest
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)

from libs.runtime.messaging.dead_letters import unpublishable_record
from libs.runtime.messaging.publisher import Publication, unpublishable_reason


@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), RecordListTooLargeError(), InvalidTopicError()])
def test_a_record_the_broker_can_never_take_has_a_reason(error: Exception) -> None:
    """A record too large for the broker, or for a topic name it refuses, is unpublishable for good."""
    assert unpublishable_reason(error)


@pytest.mark.parametrize("error", [
    KafkaTimeoutError(), RequestTimedOutError(), KafkaConnectionError(), NotLeaderForPartitionError(),
    UnknownTopicOrPartitionError(), TimeoutError(), ConnectionError(),
])
def test_a_broker_that_does_not_answer_is_no_reason_to_give_up(error: Exception) -> None:
    """An outage, a moving leader or a topic only just gone is waited out: the record is published later."""
    assert unpublishable_reason(error) is None


def test_the_dead_letter_of_a_reply_keeps_neither_its_payload_nor_the_user_name_in_clear() -> None:
    """An unpublishable token reply's dead letter names its type, correlation id and reason, masks the
    user name it was keyed by, and keeps only the digest and size of the payload, never the token."""
    payload = json.dumps({"type": "identity.authentication_succeeded", "token": "eyJhbGciOi.secret.sig"}).encode()
    record = Publication("p.signgate.replies.gone", b"alice@example.com", payload,
                         {"type": "identity.authentication_succeeded", "correlation_id": "c-1"})

    letter = unpublishable_record(record, service="identity", reason="topic p.signgate.replies.gone does not exist")

    document = json.loads(letter)
    assert b"eyJhbGciOi" not in letter and b"alice@" not in letter
    assert document["payload"] is None and document["payload_size"] == len(payload)
    assert (document["type"], document["correlation_id"], document["key"], document["destination_topic"]) == (
        "identity.authentication_succeeded", "c-1", "a***@example.com", "p.signgate.replies.gone")
