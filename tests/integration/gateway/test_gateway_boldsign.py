"""BoldSign v1 over real HTTP: seed 001's bodies, verbatim, with an API key, to a gateway on the
real stack (broker, Postgres, Redis, the four services); the state read back over Kafka."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
import pytest

from services.gateway.boldsign import CHANGE_ACCESS_CODE_BODY, REMOVE_BODY, SEED_001_BODIES
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.workflow import ID_VERIFICATION_NOT_OFFERED
from tests.e2e.steps import owner_token, send, workflow
from tests.support.scanning import bus_leaks, leaks
from tests.support.system import System
from tests.support.waiting import until

SIGNER = "alexgayle@cubeflakes.com"
IDENTITY, WORKFLOW = "signgate.identity.commands", "signgate.workflow.commands"


class Owner:
    """An API user with a password token (for Kafka) and an API key (for the gateway)."""

    def __init__(self, token: str, api_key: str, key_id: str, user_name: str) -> None:
        self.token, self.api_key, self.key_id, self.user_name = token, api_key, key_id, user_name


async def issue_key(system: System, token: str) -> tuple[str, str]:
    user_name = jwt.decode(token, options={"verify_signature": False})["user_name"]
    issued = await send(system, IDENTITY, idn.IssueApiKey(user_name=user_name, name="BoldSign", access_token=token),
                        answer_on="signgate.identity.replies", key=user_name)
    assert issued["type"] == "identity.issued_api_key", issued
    return issued["api_key"], issued["key_id"]


@pytest.fixture(scope="module")
async def owner(system: System) -> Owner:
    token = await owner_token(system)
    api_key, key_id = await issue_key(system, token)
    return Owner(token, api_key, key_id, jwt.decode(token, options={"verify_signature": False})["user_name"])


async def document(system: System, owner: Owner, *orders: str) -> str:
    """A new package in progress whose signers at orders 1.. have the emails given."""
    package_id = f"doc-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=owner.token,
        recipients=[wf.RecipientSpec(order=n, email=email, name=f"Signer {n}") for n, email in enumerate(orders, 1)],
        documents=[wf.DocumentSpec(document_id="file-1", name="lease.pdf")],
    ))
    await workflow(system, wf.ShareWorkflow(package_id=package_id, access_token=owner.token))
    return package_id


async def described(system: System, owner: Owner, package_id: str, order: int) -> dict[str, Any]:
    """The recipient's settings as the workflow service describes them to the owner."""
    reply = await send(system, WORKFLOW, wf.GetRecipientAuthentication(
        package_id=package_id, order=order, access_token=owner.token),
        answer_on="signgate.workflow.replies", key=package_id)
    assert reply["type"] == "workflow.recipient_authentication_described", reply
    return reply


def patch(http: httpx.AsyncClient, path: str, package_id: str, body: dict[str, Any] | bytes, api_key: str | None):
    headers = {"Content-Type": "application/json", **({"X-API-KEY": api_key} if api_key is not None else {})}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.patch(f"/v1/document/{path}", params={"documentId": package_id}, content=content, headers=headers)


async def test_seed_001_bodies_verbatim_set_each_authentication_and_the_siblings_change_and_remove_it(
    system: System, owner: Owner, http: httpx.AsyncClient
) -> None:
    """With the API key, each of seed 001's single-signer bodies answers 200 with no body and the
    signer's authentication becomes EmailOTP, AccessCode, then SMSOTP to the body's number (retry
    count 3); changeAccessCode after AccessCode answers 200, and removeAuthentication leaves the
    signer with none; the other signer is untouched throughout."""
    package_id = await document(system, owner, SIGNER, "bob@example.com")
    seen = []
    for name in ("EmailOTP", "AccessCode", "SMSOTP"):
        answer = await patch(http, "addAuthentication", package_id, SEED_001_BODIES[name], owner.api_key)
        assert (answer.status_code, answer.content) == (200, b""), answer.text
        policy = (await described(system, owner, package_id, 1))["authentication"]
        seen.append((policy["methods"], policy["retry_count"], policy["secret_set"]))
        if name == "AccessCode":
            changed = await patch(http, "changeAccessCode", package_id, CHANGE_ACCESS_CODE_BODY, owner.api_key)
            assert (changed.status_code, changed.content) == (200, b""), changed.text
    sms = (await described(system, owner, package_id, 1))["authentication"]
    removed = await patch(http, "RemoveAuthentication", package_id, REMOVE_BODY, owner.api_key)
    after = await described(system, owner, package_id, 1)
    other = await described(system, owner, package_id, 2)

    assert seen == [(["email_otp"], 3, False), (["access_code"], 3, True), (["sms_otp"], 3, False)]
    assert sms["destination_masked"] is not None and sms["destination_masked"].endswith("802")
    assert "2015666802" not in json.dumps(sms)
    assert (removed.status_code, after["authentication"]) == (200, None)
    assert other["authentication"] is None


async def test_the_order_body_sets_the_repeated_signer_at_order_2_only(
    system: System, owner: Owner, http: httpx.AsyncClient
) -> None:
    """Seed 001's body with order 2, for a signer who appears twice, gives EmailOTP to the one at
    order 2 and leaves the one at order 1 as they were; the same body without order is a 400."""
    package_id = await document(system, owner, SIGNER, SIGNER)

    answer = await patch(http, "addAuthentication", package_id, SEED_001_BODIES["EmailOTP, order 2"], owner.api_key)
    ambiguous = await patch(http, "addAuthentication", package_id, SEED_001_BODIES["EmailOTP"], owner.api_key)

    assert (answer.status_code, answer.content) == (200, b""), answer.text
    assert (await described(system, owner, package_id, 2))["authentication"]["methods"] == ["email_otp"]
    assert (await described(system, owner, package_id, 1))["authentication"] is None
    assert (ambiguous.status_code, ambiguous.json()) == (
        400, {"error": "order is required: this signer appears more than once"})


async def test_refusals_are_boldsign_error_results(
    system: System, owner: Owner, http: httpx.AsyncClient
) -> None:
    """No key, an unknown key and a revoked key are 401 (the same "Invalid API key" for the two);
    a document of nobody's is 403 "Invalid Document ID"; malformed JSON and an AccessCode body
    without its code are 400; each body is {"error": ...} and nothing changed; no API key is on
    any events or dead-letter topic."""
    package_id = await document(system, owner, SIGNER)
    body = SEED_001_BODIES["EmailOTP"]
    token = owner.token
    assert (await patch(http, "addAuthentication", package_id, body, owner.api_key)).status_code == 200
    revoked_key, revoked_id = await issue_key(system, token)
    revoked = await send(system, IDENTITY, idn.RevokeApiKey(user_name=owner.user_name, key_id=revoked_id,
                                                            access_token=token), key=owner.user_name)
    assert revoked["type"] == "identity.api_key_revoked", revoked

    answers = {
        "no key": await patch(http, "addAuthentication", package_id, body, None),
        "unknown key": await patch(http, "addAuthentication", package_id, body, f"sgk_{uuid.uuid4().hex}{'x' * 43}"),
        "revoked key": await patch(http, "addAuthentication", package_id, body, revoked_key),
        "nobody's document": await patch(http, "addAuthentication", "doc-nobody", body, owner.api_key),
        "malformed JSON": await patch(http, "addAuthentication", package_id, b'{"emailId": ', owner.api_key),
        "no access code": await patch(http, "addAuthentication", package_id,
                                      {"authenticationType": "AccessCode", "emailId": SIGNER}, owner.api_key),
    }

    assert {name: a.status_code for name, a in answers.items()} == {
        "no key": 401, "unknown key": 401, "revoked key": 401, "nobody's document": 403, "malformed JSON": 400,
        "no access code": 400}
    assert answers["unknown key"].json() == answers["revoked key"].json() == {"error": "Invalid API key"}
    assert answers["nobody's document"].json() == {"error": "Invalid Document ID"}
    assert all(set(a.json()) == {"error"} for a in answers.values())
    assert (await described(system, owner, package_id, 1))["authentication"]["methods"] == ["email_otp"]
    elsewhere = [r for r in system.watch.records if not r.topic.endswith((".commands", ".replies"))
                 and not r.topic.startswith(system.connections.topic(system.connections.caller_reply_prefix))]
    assert elsewhere and leaks((r.value.decode(errors="replace") for r in elsewhere),
                               [owner.api_key, revoked_key]) == []
    assert bus_leaks(system.watch.records, system.connections) == []


async def test_a_revoked_key_whose_token_the_gateway_holds_is_refused_once_the_revocation_arrives(
    system: System, owner: Owner, http: httpx.AsyncClient
) -> None:
    """A key the gateway has exchanged (its token held in memory) is refused with 401 "Invalid API
    key" after its revocation, without waiting for the held token to expire: the gateway drops it
    when identity's api_key_revoked reaches its client."""
    package_id = await document(system, owner, SIGNER)
    api_key, key_id = await issue_key(system, owner.token)
    body = SEED_001_BODIES["EmailOTP"]
    assert (await patch(http, "addAuthentication", package_id, body, api_key)).status_code == 200

    revoked = await send(system, IDENTITY, idn.RevokeApiKey(user_name=owner.user_name, key_id=key_id,
                                                            access_token=owner.token), key=owner.user_name)

    async def refused() -> httpx.Response | None:
        answer = await patch(http, "addAuthentication", package_id, body, api_key)
        return answer if answer.status_code == 401 else None

    answer = await until(refused, timeout=20, what="the revoked key's refusal")
    assert revoked["type"] == "identity.api_key_revoked"
    assert answer.json() == {"error": "Invalid API key"}


async def test_id_verification_is_a_clear_400_and_its_settings_are_stored_with_another_type(
    system: System, owner: Owner, http: httpx.AsyncClient
) -> None:
    """IdVerification is answered 400 {"error": ...} saying document ID checks are not offered and
    naming the types that are, and the signer is left as they were; EmailOTP with seed 001's
    identityVerificationSettings answers 200 and the settings read back as sent."""
    package_id = await document(system, owner, SIGNER)
    settings = {"type": "EveryAccess", "maximumRetryCount": 5, "requireLiveCapture": True,
                "requireMatchingSelfie": True, "nameMatcher": "Strict", "holdForPrefill": False}

    refused = await patch(http, "addAuthentication", package_id, {
        "authenticationType": "IdVerification", "emailId": SIGNER, "identityVerificationSettings": settings},
        owner.api_key)
    unchanged = (await described(system, owner, package_id, 1))["authentication"]
    stored = await patch(http, "addAuthentication", package_id, {
        "authenticationType": "EmailOTP", "emailId": SIGNER, "identityVerificationSettings": settings}, owner.api_key)
    policy = (await described(system, owner, package_id, 1))["authentication"]

    assert (refused.status_code, refused.json()) == (400, {"error": f"body.authenticationType: {ID_VERIFICATION_NOT_OFFERED}"})
    assert unchanged is None
    assert (stored.status_code, stored.content) == (200, b""), stored.text
    assert policy["methods"] == ["email_otp"]
    assert policy["identity_verification"] == {
        "type": "EveryAccess", "maximum_retry_count": 5, "require_live_capture": True,
        "require_matching_selfie": True, "name_matcher": "Strict", "hold_for_prefill": False}
