"""The bus scan finds what each kind of topic must not show, and passes what it may."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.scanning import bus_findings

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJwa2cvMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
URI = "otpauth://totp/signgate:carol%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=signgate"
HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdA$aGFzaA"


@dataclass
class Record:
    topic: str
    value: bytes
    key: bytes | None = None


def kind(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]


def findings(*records: Record) -> list[str]:
    return [what for what, _, _ in bus_findings(records, kind, "portal.")]


def test_what_an_events_topic_must_not_show_is_found() -> None:
    assert findings(Record("s.events", f'{{"h": "{HASH}"}}'.encode())) == ["argon2 hash"]
    assert findings(Record("s.events", b'{"email": "alice@example.com"}')) == ["email in clear"]
    assert findings(Record("s.events", b"{}", b"alice@example.com")) == ["email in clear"]
    assert findings(Record("s.dlq", b'{"to": "+447700900123"}')) == ["phone in clear"]
    assert findings(Record("s.events", f'{{"grant": "{JWT}"}}'.encode())) == ["token, grant or invitation"]
    assert findings(Record("s.dlq", f'{{"u": "{URI}"}}'.encode())) == ["otpauth URI"]


def test_masked_contacts_digests_and_credentials_where_they_belong_pass() -> None:
    assert findings(
        Record("s.events", b'{"email_masked": "a***@example.com", "mobile_masked": "+44******0123"}'),
        Record("s.events", b'{"email_digest": "3f9a0c1d2e", "occurred_at": "2026-12-03T07:00:00Z"}'),
        Record("s.replies", f'{{"grant": "{JWT}"}}'.encode()),
        Record("portal.replies.me", f'{{"otpauth_uri": "{URI}"}}'.encode()),
        Record("s.events", b'{"provider_message_id": "179628488529.25654.1530@signgate.localhost"}'),
        Record("portal.replies.me", f'{{"invitation": "{JWT}"}}'.encode()),
        Record("s.commands", f'{{"access_token": "{JWT}", "email": "bob@example.com"}}'.encode()),
    ) == []
