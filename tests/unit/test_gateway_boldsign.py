"""BoldSign's requests as workflow commands, its refusals as BoldSign answers them, and the
gateway's memory of the tokens API keys were exchanged for: pure rules, no servers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from services.gateway.api_keys import ApiKeyExchanger, key_digest, refresh_time
from services.gateway.boldsign import (
    SEED_001_BODIES,
    add_authentication_command,
    boldsign_refusal,
    change_access_code_command,
    remove_authentication_command,
)
from services.gateway.errors import GatewayError, shape_for
from signgate_client import Outcome
from signgate_contracts import workflow as wf
from signgate_contracts.identity import ApiKeyRevoked, ApiKeyToken, ExchangeApiKey
from signgate_contracts.rejection import CommandRejected
from tests.support.clock import MovableClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEYS = {name: f"sgk_{uuid.uuid4().hex}{name[0] * 43}" for name in ("key", "same", "other", "one", "two")}
"""API keys of the shape identity issues (the gateway refuses any other without asking)."""


@pytest.mark.parametrize("name", sorted(SEED_001_BODIES))
def test_each_seed_001_body_becomes_an_add_authentication_of_that_document(name: str) -> None:
    """Each of seed 001's bodies, as sent, is the workflow's AddAuthentication of the document id,
    with the exchanged token and the body's fields as given."""
    body = wf.AddAuthenticationBody.model_validate(SEED_001_BODIES[name])

    command = add_authentication_command("doc-1", body, "tok")

    sent = SEED_001_BODIES[name]
    assert (command.type, command.package_id) == ("workflow.add_authentication", "doc-1")
    assert command.access_token is not None and command.access_token.get_secret_value() == "tok"
    assert command.body.authentication_type == sent["authenticationType"]
    assert command.body.email_id == sent["emailId"]
    assert command.body.order == sent.get("order")
    assert (command.body.phone_number.e164 if command.body.phone_number else None) == (
        "+12015666802" if "phoneNumber" in sent else None)
    if "accessCode" in sent:
        assert command.body.access_code is not None
        assert command.body.access_code.get_secret_value() == sent["accessCode"]


@pytest.mark.parametrize("spelling", ["IdVerification", "idverification"])
def test_id_verification_is_refused_by_name_with_the_types_offered(spelling: str) -> None:
    """authenticationType IdVerification (in any case) is refused with a text that says document ID
    checks are not offered here and names AccessCode, EmailOTP and SMSOTP, not pydantic's "input
    should be"."""
    with pytest.raises(ValidationError) as refused:
        wf.AddAuthenticationBody.model_validate({"authenticationType": spelling, "emailId": "a@example.com",
                                                 "identityVerificationSettings": {"type": "EveryAccess"}})

    [problem] = refused.value.errors(include_input=False, include_url=False)
    assert (problem["loc"], problem["msg"]) == (("authenticationType",), wf.ID_VERIFICATION_NOT_OFFERED)
    assert "not offered" in problem["msg"]
    assert all(name in problem["msg"] for name in ("AccessCode", "EmailOTP", "SMSOTP"))


def test_the_siblings_become_remove_and_change_access_code() -> None:
    """removeAuthentication and changeAccessCode bodies become their workflow commands."""
    reference = wf.SignerReference.model_validate({"emailId": "a@example.com", "order": 2})
    change = wf.ChangeAccessCodeBody.model_validate({"emailId": "a@example.com", "accessCode": "654321"})

    removed = remove_authentication_command("doc-1", reference, "tok")
    changed = change_access_code_command("doc-1", change, "tok")

    assert (removed.type, removed.package_id, removed.body.order) == ("workflow.remove_authentication", "doc-1", 2)
    assert (changed.type, changed.body.access_code.get_secret_value()) == ("workflow.change_access_code", "654321")


def rejected(status: int, code: str, message: str, retry_after: int | None = None) -> CommandRejected:
    return CommandRejected(status=status, code=code, message=message, command_type="workflow.add_authentication",
                           command_event_id=uuid.uuid4(), retry_after_seconds=retry_after)


def test_a_missing_or_foreign_document_is_boldsigns_invalid_document_id() -> None:
    """Not found and not the caller's are one answer, 403 "Invalid Document ID"; other refusals keep
    their status and text, and a 429 its Retry-After."""
    missing = boldsign_refusal(rejected(404, "document_not_found", "Document not found"))
    foreign = boldsign_refusal(rejected(403, "document_not_owned", "Document does not belong to user"))
    conflict = boldsign_refusal(rejected(409, "not_access_code", "The signer does not authenticate with an access code"))
    limited = boldsign_refusal(rejected(429, "too_many", "Slow down", retry_after=7))

    assert (missing.status, missing.message) == (foreign.status, foreign.message) == (403, "Invalid Document ID")
    assert (conflict.status, conflict.message) == (409, "The signer does not authenticate with an access code")
    assert (limited.status, limited.headers) == (429, {"Retry-After": "7"})


def test_boldsign_paths_answer_errors_as_error_results() -> None:
    """Under /v1/ an error is {"error": ...}; under /v3/ it stays SigningHub's {"Message": ...}."""
    assert shape_for("/v1/document/addAuthentication")(400, "bad", {}).body == b'{"error":"bad"}'
    assert shape_for("/v3/packages/p/workflow/1/authentication")(400, "bad", {}).body == b'{"Message":"bad"}'


class Identity:
    """Answers exchanges as identity would: a token per call, or a refusal; counts the calls."""

    def __init__(self, clock: MovableClock, ttl: timedelta = timedelta(minutes=15)) -> None:
        self.clock, self.ttl, self.calls, self.refuse = clock, ttl, 0, False
        self.release, self.entered = asyncio.Event(), asyncio.Event()
        self.release.set()

    async def __call__(self, command: ExchangeApiKey) -> Outcome:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        if self.refuse:
            raise GatewayError(401, "Invalid API key")
        now = self.clock()
        reply = ApiKeyToken(access_token=SecretStr(f"token-{self.calls}"), expires_at=now + self.ttl,
                            key_id=uuid.uuid4(), user_id=uuid.uuid4(), user_name="u", account=uuid.uuid4(),
                            occurred_at=now)
        return Outcome(command, None, reply)


async def test_a_token_is_held_until_a_minute_before_it_expires_then_exchanged_again() -> None:
    """The second request with a key uses the held token; 14 minutes later (a minute before the
    15-minute token expires) the key is exchanged again."""
    clock = MovableClock(T0)
    identity = Identity(clock)
    exchanger = ApiKeyExchanger(identity, clock=clock)

    first, again = await exchanger(KEYS["key"]), await exchanger(KEYS["key"])
    clock.advance(timedelta(minutes=14))
    later = await exchanger(KEYS["key"])

    assert (first, again, later, identity.calls) == ("token-1", "token-1", "token-2", 2)


async def test_concurrent_first_requests_share_one_exchange_and_a_refusal_is_not_held() -> None:
    """Five requests with a new key at once cause one exchange; a refused key is asked again each time."""
    clock = MovableClock(T0)
    identity = Identity(clock)
    exchanger = ApiKeyExchanger(identity, clock=clock)
    identity.release.clear()

    waiting = [asyncio.create_task(exchanger(KEYS["same"])) for _ in range(5)]
    await identity.entered.wait()  # the first is exchanging; the other four were scheduled before us
    identity.release.set()
    tokens = await asyncio.gather(*waiting)
    identity.refuse = True
    refusals = []
    for _ in range(2):
        with pytest.raises(GatewayError) as refused:
            await exchanger(KEYS["other"])
        refusals.append(refused.value.status)

    assert tokens == ["token-1"] * 5
    assert refusals == [401, 401] and identity.calls == 3


@pytest.mark.parametrize("api_key", ["", "hello", "sgk_" + "0" * 32, KEYS["key"] + "x", "sgk_" + "z" * 75])
async def test_a_request_without_a_key_of_our_shape_is_refused_without_an_exchange(api_key: str) -> None:
    """No X-API-KEY, or one that is no key's shape, is a 401 and asks identity nothing."""
    identity = Identity(MovableClock(T0))

    with pytest.raises(GatewayError) as refused:
        await ApiKeyExchanger(identity)(api_key)

    assert refused.value.status == 401 and identity.calls == 0


def test_held_tokens_are_filed_by_digest_and_short_tokens_refresh_half_way() -> None:
    """The memory's key is no API key; a one-minute token is exchanged again after 30 seconds."""
    assert KEYS["key"] not in key_digest(KEYS["key"])
    assert refresh_time(T0 + timedelta(minutes=1), T0) == T0 + timedelta(seconds=30)


async def test_a_revocation_drops_the_held_token_of_that_key_only() -> None:
    """After identity's api_key_revoked for one key, its next request is exchanged again; another
    key's held token stays."""
    clock = MovableClock(T0)
    identity = Identity(clock)
    exchanger = ApiKeyExchanger(identity, clock=clock)
    await exchanger(KEYS["one"])
    await exchanger(KEYS["two"])
    revoked_id = next(k for k, d in exchanger._by_key_id.items() if d == key_digest(KEYS["one"]))

    exchanger.on_revoked(ApiKeyRevoked(user_id=uuid.uuid4(), key_id=revoked_id, revoked_by="user"))
    one, two = await exchanger(KEYS["one"]), await exchanger(KEYS["two"])

    assert (one, two, identity.calls) == ("token-3", "token-2", 3)


def test_only_a_revocation_signed_by_identity_reaches_the_key_cache() -> None:
    """A revocation record counts only with identity's signature: unsigned, or signed by another service,
    it has no effect on the tokens a gateway holds."""
    from aiokafka import ConsumerRecord

    from libs.security.record_signatures import RecordKeySettings, RecordVerifier
    from services.gateway.app import signed_by_writer
    from signgate_contracts.topics import BY_NAME
    from tests.support.signing import signed_headers

    topic = BY_NAME["signgate.identity.events"]
    value = b'{"type": "identity.api_key_revoked"}'

    def record(headers: list[tuple[str, bytes]]) -> ConsumerRecord:
        return ConsumerRecord(topic.name, 0, 0, 0, 0, b"k", value, None, 0, 0, headers)

    authentic = signed_by_writer(RecordVerifier.from_settings(RecordKeySettings()))
    assert authentic(record(signed_headers("identity", topic.name, b"k", value)), topic)
    assert not authentic(record([]), topic)
    assert not authentic(record(signed_headers("workflow", topic.name, b"k", value)), topic)
