"""Dead-letter records: where a message went, why, and its payload with every credential removed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord

from libs.runtime.logging import redact
from libs.security.masking import mask_contacts, mask_email
from signgate_contracts import UndecodableMessage
from signgate_contracts.codec import read_object

MAX_KEPT_PAYLOAD = 64 * 1024
"""Bytes of redacted JSON a dead letter keeps; beyond it (escaping can triple a record's size,
past the broker's 1 MiB limit) only the digest and size are kept."""


def dead_letter_record(record: ConsumerRecord, *, service: str, reason: str) -> bytes:
    """The DLQ payload for ``record``.

    A payload that is a JSON object is kept with secret-named fields redacted and phone numbers
    and email addresses masked; anything else
    is kept only as a digest and size (it may hold a credential in a shape no redactor knows),
    and can be read from the source topic at its partition and offset while it is retained.
    So is an object nested too deeply to redact, or too large to keep: the dead letter must
    always fit on the broker, or the partition would stop on it.
    """
    raw: bytes = record.value or b""
    payload: dict[str, Any] | None
    try:
        payload = mask_contacts(redact(read_object(raw)))
        if len(json.dumps(payload)) > MAX_KEPT_PAYLOAD:
            payload = None
    except (UndecodableMessage, RecursionError):
        payload = None
    document = {
        "reason": reason,
        "service": service,
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key else None,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_size": len(raw),
        "payload": payload,
    }
    return json.dumps(document).encode()


def unpublishable_record(record: Any, *, service: str, reason: str) -> bytes:
    """The DLQ payload for an outbox record the broker can never take (``record``: a `Publication`).

    Its payload is not kept, only its digest and size: a reply carries what only its caller may
    hold (a user's token, a document-access grant), and a dead letter is read by operators. Its
    type and correlation id (from its headers) say which command's outcome it was; its key is
    kept as `unpublishable_key` shows it.
    """
    payload: bytes = record.payload
    document = {
        "reason": reason,
        "service": service,
        "destination_topic": record.topic,
        "key": unpublishable_key(record.key),
        "type": record.headers.get("type"),
        "correlation_id": record.headers.get("correlation_id"),
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_size": len(payload),
        "payload": None,
    }
    return json.dumps(document).encode()


def unpublishable_key(key: bytes | None) -> str | None:
    """A dead letter's record key as kept: a user name (the key of identity's replies) masked."""
    if key is None:
        return None
    shown = key.decode(errors="replace")
    return mask_email(shown) if "@" in shown else shown
