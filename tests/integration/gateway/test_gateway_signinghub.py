"""SigningHub v3 over real HTTP: the seeds' requests, verbatim, to a gateway on the real stack."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from libs.security.tokens import TokenSettings, TokenVerifier
from libs.tools.topics_admin import create_topics
from services.gateway.app import reply_topic
from services.gateway.errors import BODY_TOO_LARGE, MALFORMED_JSON, OUTCOME_TIMEOUT, RATE_LIMITED
from services.gateway.signinghub import ACCESS_GRANTED, SEED_000_BODY
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from tests.e2e.steps import invitations_of, latest_sms_code, owner_token, send, workflow
from tests.security.test_recipient_credentials import user_with_token
from tests.support.chaos_identity import admin_token
from tests.support.gateway import RunningGateway, gateway_settings, running_gateway
from tests.support.kafka import TopicWatcher, correlated
from tests.support.system import System
from tests.support.waiting import until

SEED_000_TEXT = json.dumps(SEED_000_BODY, indent=3)
"""Seed 000's body as the page prints it: sent as these bytes, not re-encoded by the client."""
ANN_MOBILE = "+447700900001"
PASSWORDS = {"apply_to_all": True, "authentication": {"enabled": True, "password": {
    "enabled": True, "user_password": "Sesame-1"}}}


def recipients(**ann: Any) -> list[wf.RecipientSpec]:
    return [
        wf.RecipientSpec(order=1, email="ann@example.com", name="Ann", mobile_number=ANN_MOBILE, **ann),
        wf.RecipientSpec(order=2, email="bob@example.com", name="Bob"),
    ]


async def draft(system: System, token: str, **ann: Any) -> str:
    """A new package in draft, owned by the token's user."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=token, recipients=recipients(**ann),
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
    ))
    return package_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def authentication_path(package_id: str, order: int = 1) -> str:
    return f"/v3/packages/{package_id}/workflow/{order}/authentication"


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json() if response.content else None


async def test_seed_000_body_verbatim_updates_every_recipient_and_reads_back(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """With passwords set, seed 000's PUT, its bytes verbatim (empty user_password: keep them),
    answers 200 with no body; the GET of each recipient then shows password authentication on and
    the seed's access window (apply_to_all)."""
    package_id = await draft(system, token)
    headers = {**bearer(token), "Content-Type": "application/json"}
    assert (await http.put(authentication_path(package_id), json=PASSWORDS, headers=headers)).status_code == 200

    put = await http.put(authentication_path(package_id), content=SEED_000_TEXT.encode(), headers=headers)

    assert (put.status_code, put.content) == (200, b"")
    assert uuid.UUID(put.headers["X-Correlation-Id"])
    for order in (1, 2):
        read = await http.get(authentication_path(package_id, order), headers=headers)
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["authentication"]["enabled"] is True
        assert body["authentication"]["password"] == {"enabled": True}
        assert body["authentication"]["sms_otp"]["enabled"] is False
        assert body["access_duration"]["enabled"] is True
        assert body["access_duration"]["duration_by_date"] == {
            "enabled": True,
            "duration": {"start_date_time": "2015-02-13T12:10:00Z", "end_date_time": "2015-02-28T12:10:00Z"},
        }
        assert body["access_duration"]["duration_by_days"]["enabled"] is False


async def test_seed_000_error_texts_with_their_status_codes(system: System, token: str,
                                                             http: httpx.AsyncClient) -> None:
    """Every error of seed 000 this system can cause is answered with the seed's status and exact
    body: 401 without or with a bad token, 403 not in draft, not the owner's, locked, a disabled
    account, 404 for an unknown package and an order nobody has."""
    put = SEED_000_TEXT.encode()
    headers = {"Content-Type": "application/json"}
    stranger = await owner_token(system)
    draft_package, shared_package, locked_package = [await draft(system, token) for _ in range(3)]
    await invitations_of(system, wf.ShareWorkflow(package_id=shared_package, access_token=token))
    await workflow(system, wf.LockWorkflow(package_id=locked_package, access_token=token))

    async def put_as(token_: str | None, package_id: str, order: int = 1) -> tuple[int, Any]:
        auth_headers = {**headers, **(bearer(token_) if token_ else {})}
        return answer(await http.put(authentication_path(package_id, order), content=put, headers=auth_headers))

    answers = {
        "no token": await put_as(None, draft_package),
        "bad token": await put_as("not-a-token", draft_package),
        "shared": await put_as(token, shared_package),
        "another owner's": await put_as(stranger, draft_package),
        "locked": await put_as(token, locked_package),
        "unknown package": await put_as(token, f"pkg-{uuid.uuid4().hex[:8]}"),
        "order 3": await put_as(token, draft_package, 3),
    }

    assert answers == {
        "no token": (401, {"Message": "User authentication required"}),
        "bad token": (401, {"Message": "Request authorization denied"}),
        "shared": (403, {"Message": "Document is no longer in draft state"}),
        "another owner's": (403, {"Message": "Document does not belong to user"}),
        "locked": (403, {"Message": "You are not allowed to perform this action on locked workflow"}),
        "unknown package": (404, {"Message": "Document not found"}),
        "order 3": (404, {"Message": "No user found at given order"}),
    }


async def test_a_disabled_owner_is_403_account_is_disabled(system: System, http: httpx.AsyncClient) -> None:
    """Once identity has disabled the owner, their still-unexpired token gets seed 000's 403
    "Account is disabled" from the gateway."""
    owner = await owner_token(system)
    package_id = await draft(system, owner)
    disabled = await send(system, "signgate.identity.commands", idn.DisableUser(
        user_name=user_name_of(system, owner), access_token=admin_token(system)), key="disable")
    assert disabled["type"].startswith("identity.user_disabled"), disabled

    async def refused() -> tuple[int, Any] | None:
        got = answer(await http.put(authentication_path(package_id), content=SEED_000_TEXT.encode(),
                                    headers={**bearer(owner), "Content-Type": "application/json"}))
        return got if got[0] == 403 else None  # until the workflow service has heard of it

    assert await until(refused, what="the disabling reaching the workflow service") == (
        403, {"Message": "Account is disabled"})


def user_name_of(system: System, token: str) -> str:
    verifier = TokenVerifier.from_settings(TokenSettings(public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    return verifier.decode(token).user_name


async def test_bodies_over_the_limit_are_413_before_parsing(gateway: RunningGateway, http: httpx.AsyncClient) -> None:
    """A body over the limit is answered 413 in SigningHub's shape whether its Content-Length says
    so or it is streamed without one; its bytes are never parsed (they are not JSON)."""
    limit = gateway.settings.body_limit_bytes
    too_big = b"x" * (limit + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 8192):
            yield too_big[start:start + 8192]

    declared = await http.put(authentication_path("pkg-any"), content=too_big, headers={"Content-Type": "application/json"})
    streamed = await http.put(authentication_path("pkg-any"), content=chunks(), headers={"Content-Type": "application/json"})

    assert "content-length" not in streamed.request.headers
    assert answer(declared) == answer(streamed) == (413, {"Message": BODY_TOO_LARGE})


async def test_malformed_or_invalid_json_is_400_in_signinghubs_shape(token: str, http: httpx.AsyncClient) -> None:
    """Malformed JSON is 400 {"Message": ...} without a trace; a well-formed body that breaks the
    contract names the offending field, as the services do; neither reaches a service."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    malformed = await http.put(authentication_path("pkg-any"), content=b'{"apply_to_all": tru', headers=headers)
    invalid = await http.put(authentication_path("pkg-any"), headers=headers, json={
        "authentication": {"enabled": True, "sms_otp": {"enabled": True, "mobile_number": "12"}}})
    bad_order = await http.put(authentication_path("pkg-any", 0), headers=headers, json={})

    assert answer(malformed) == (400, {"Message": MALFORMED_JSON})
    assert invalid.status_code == 400
    assert invalid.json()["Message"].startswith("body.authentication.sms_otp.mobile_number: ")
    assert bad_order.status_code == 400 and bad_order.json()["Message"].startswith("order: ")
    assert "Traceback" not in malformed.text + invalid.text + bad_order.text
    assert "X-Correlation-Id" not in malformed.headers  # answered before any command was sent


async def test_rate_limits_per_credential_and_per_address_are_429_with_retry_after(system: System) -> None:
    """With 2 requests per credential and 5 per address a window, a token's third request is 429
    with Retry-After while another token still passes; then the address's sixth is 429 too."""
    # counters are shared by every replica of a deployment: this one counts under a Redis prefix of its own
    own = system.connections.model_copy(update={"redis_prefix": f"{system.connections.redis_prefix}{uuid.uuid4().hex[:6]}:"})
    settings = gateway_settings(own, rate_limit_per_credential=2, rate_limit_per_address=5, rate_limit_window_seconds=60)
    async with running_gateway(settings) as limited, httpx.AsyncClient(base_url=limited.url, timeout=30) as http:
        async def get(credential: str | None) -> httpx.Response:
            headers = bearer(credential) if credential else {}
            return await http.get(authentication_path(f"pkg-{uuid.uuid4().hex[:8]}"), headers=headers)

        first, second, third = [await get("token-a") for _ in range(3)]
        other = await get("token-b")
        anonymous = [await get(None) for _ in range(2)]

    assert [r.status_code for r in (first, second)] == [401, 401]  # through to the services
    assert answer(third) == (429, {"Message": RATE_LIMITED})
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert other.status_code == 401
    assert anonymous[0].status_code == 401
    assert answer(anonymous[1]) == (429, {"Message": RATE_LIMITED})
    assert 1 <= int(anonymous[1].headers["Retry-After"]) <= 60


async def test_no_outcome_in_time_is_504(system: System) -> None:
    """On a deployment (a topic prefix of its own) where no service runs, a request waits its
    outcome timeout and is answered 504 in SigningHub's shape, naming the command it sent."""
    idle = system.connections.model_copy(update={"topic_prefix": f"{system.connections.topic_prefix}idle."})
    await create_topics(idle)
    async with running_gateway(gateway_settings(idle, outcome_timeout_seconds=0.5)) as quiet, \
            httpx.AsyncClient(base_url=quiet.url, timeout=30) as http:
        timed_out = await http.get(authentication_path("pkg-nobody"), headers=bearer("any"))

    assert answer(timed_out) == (504, {"Message": OUTCOME_TIMEOUT})
    assert uuid.UUID(timed_out.headers["X-Correlation-Id"])


async def test_two_replicas_each_answer_the_requests_they_received(system: System, token: str,
                                                                   gateway: RunningGateway) -> None:
    """Two replicas serving at once: twenty concurrent reads, split between them, each get their own
    package's answer, and each reply came to the reply topic of the replica that received it."""
    second = gateway_settings(system.connections)
    packages = [await draft(system, token) for _ in range(4)]
    topics = [reply_topic(gateway.settings), reply_topic(second)]
    async with running_gateway(second) as other, TopicWatcher(system.connections.kafka_bootstrap, *topics) as replies, \
            httpx.AsyncClient(timeout=30) as http:
        urls = [gateway.url, other.url]
        requests = [(n % 2, packages[n % 4], 1 + n % 2) for n in range(20)]
        answers = await asyncio.gather(*(http.get(urls[replica] + authentication_path(package, order),
                                                  headers=bearer(token)) for replica, package, order in requests))
        for (replica, _, _), response in zip(requests, answers, strict=True):
            assert response.status_code == 200, response.text
            correlation = uuid.UUID(response.headers["X-Correlation-Id"])
            [record] = await replies.wait_for(lambda r, c=correlation: correlated(r, c), timeout=10)
            assert record.topic == topics[replica]
            assert json.loads(record.value)["recipient"]["order"] in (1, 2)
    mobiles = [r.json()["authentication"]["sms_otp"]["mobile_number"] for r in answers]
    assert [bool(m) for m in mobiles] == [order == 1 for _, _, order in requests]  # Ann has one, Bob none


async def test_opening_by_password_and_by_otp_and_the_history(system: System, token: str,
                                                               http: httpx.AsyncClient) -> None:
    """Ann opens by password (a wrong one is 403, the right one gets SigningHub's 200 text and a
    grant); Bob by an SMS OTP generated and then verified over HTTP; the owner's history lists both."""
    package_id = await draft(system, token)
    headers = {**bearer(token), "Content-Type": "application/json"}
    bob_otp = {"apply_to_all": False, "authentication": {"enabled": True, "sms_otp": {
        "enabled": True, "mobile_number": "00447700900002"}}}
    assert (await http.put(authentication_path(package_id, 1), json={**PASSWORDS, "apply_to_all": False},
                           headers=headers)).status_code == 200
    assert (await http.put(authentication_path(package_id, 2), json=bob_otp, headers=headers)).status_code == 200
    await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=token))
    pool = system.services["authentication"].resources.pool
    await until(lambda: pool.fetchval("SELECT count(*) = 2 FROM recipients WHERE package_id = $1 AND methods <> '{}'",
                                      package_id), what="the authentication service's projection")
    password = f"{authentication_path(package_id, 1)}/password"
    otp = f"{authentication_path(package_id, 2)}/otp"

    wrong = await http.post(password, json={"password": "not-it-at-all"}, headers=headers)
    right = await http.post(password, json={"password": "Sesame-1"}, headers=headers)
    generated = await http.post(otp, headers=bearer(token))
    assert (generated.status_code, generated.content) == (200, b""), generated.text
    verified = await http.post(otp, json={"otp": latest_sms_code(system, "+447700900002")}, headers=headers)

    async def history_of_both() -> httpx.Response | None:
        got = await http.get(f"/v3/packages/{package_id}/log", headers=bearer(token))
        actions = {(a["action_type"], a["order"]) for a in got.json()["actions"]} if got.status_code == 200 else set()
        return got if {("RECIPIENT_AUTHENTICATED", 1), ("RECIPIENT_AUTHENTICATED", 2)} <= actions else None

    # the workflow records what the authentication service published after it answered
    history = await until(history_of_both, what="both openings in the workflow's history")

    assert answer(wrong) == (403, {"Message": "The password is incorrect"})
    assert right.status_code == 200 and right.json()["Message"] == ACCESS_GRANTED
    assert right.json()["access_grant"].count(".") == 2  # a signed grant (JWS)
    assert right.headers["cache-control"] == wrong.headers["cache-control"] == "no-store"
    assert (generated.status_code, generated.content) == (200, b"")
    assert verified.status_code == 200 and verified.json()["Message"] == ACCESS_GRANTED
    assert history.status_code == 200
    assert [a["log_id"] for a in history.json()["actions"]] == sorted(a["log_id"] for a in history.json()["actions"])


async def test_seed_002_signer_otp_is_generated_and_verified(system: System, http: httpx.AsyncClient) -> None:
    """Seed 002's body as is sends the named signer a code at their profile's mobile (200, no
    body); the same route with the code verifies it, and a wrong code is 403; another user is
    (of another account) is refused with the seed's 403 text."""
    account = idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)
    owner = await owner_token(system, accounts=[account])
    elsewhere = idn.AccountMembership(name="Other Ltd", context_identifier=uuid.uuid4(), is_primary=True)
    signer_id, _, signer = await user_with_token(system, admin_token(system), [account], "+447911123999")
    _, _, outsider = await user_with_token(system, admin_token(system), [elsewhere], "+447911123998")
    package_id = await draft(system, owner, signer_user_id=signer_id)
    await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=owner))
    path = f"/v3/packages/{package_id}/documents/doc-1/otp"
    headers = {**bearer(signer), "Content-Type": "application/json"}

    async def generated() -> httpx.Response | None:
        got = await http.post(path, content=b'{\n  "field_name": "12345678"\n}', headers=headers)
        return got if got.status_code != 404 else None  # until the package reached authentication

    sent = await until(generated, what="the package reaching the authentication service")
    code = latest_sms_code(system, "+447911123999")
    wrong = await http.post(path, json={"field_name": "12345678", "otp": str((int(code) + 1) % 10**6).zfill(6)},
                            headers=headers)
    right = await http.post(path, json={"field_name": "12345678", "otp": code}, headers=headers)
    stranger = await http.post(path, json={"field_name": "12345678"}, headers=bearer(outsider))

    assert (sent.status_code, sent.content) == (200, b"")
    assert answer(wrong) == (403, {"Message": "The OTP is incorrect"})
    assert (right.status_code, right.content) == (200, b"")
    assert answer(stranger) == (403, {"Message": "Document does not belong to user"})


async def test_a_recipient_and_a_signer_ask_for_their_code_by_a_call(system: System, token: str,
                                                                     http: httpx.AsyncClient) -> None:
    """With ?channel=voice the recipient's code and seed 002's signer code go out by a call (the
    sandbox's voice entries) and open over HTTP; a channel the policy does not allow is 400."""
    account = idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)
    owner = await owner_token(system, accounts=[account])
    signer_id, _, signer = await user_with_token(system, admin_token(system), [account], "+447911123997")
    package_id = await draft(system, owner, signer_user_id=signer_id)
    headers = {**bearer(owner), "Content-Type": "application/json"}
    by_sms = {"apply_to_all": False, "authentication": {"enabled": True, "sms_otp": {
        "enabled": True, "mobile_number": "00447700900003"}}}
    assert (await http.put(authentication_path(package_id, 2), json=by_sms, headers=headers)).status_code == 200
    await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=owner))
    pool = system.services["authentication"].resources.pool
    await until(lambda: pool.fetchval("SELECT count(*) = 1 FROM recipients WHERE package_id = $1 AND methods <> '{}'",
                                      package_id), what="the authentication service's projection")
    otp = f"{authentication_path(package_id, 2)}/otp"
    signing = f"/v3/packages/{package_id}/documents/doc-1/otp"

    called = await http.post(otp, params={"channel": "voice"}, headers=bearer(owner))
    not_allowed = await http.post(otp, params={"channel": "email"}, headers=bearer(owner))
    [call] = [d for d in sandbox_entries(system, "+447700900003") if d["channel"] == "voice"]
    opened = await http.post(otp, json={"otp": call["code"]}, headers=headers)
    signer_called = await http.post(signing, params={"channel": "voice"}, json={"field_name": "12345678"},
                                    headers={**bearer(signer), "Content-Type": "application/json"})
    [signer_call] = [d for d in sandbox_entries(system, "+447911123997") if d["channel"] == "voice"]
    signed = await http.post(signing, json={"field_name": "12345678", "otp": signer_call["code"]},
                             headers={**bearer(signer), "Content-Type": "application/json"})

    assert (called.status_code, called.content) == (200, b""), called.text
    assert not_allowed.status_code == 400, not_allowed.text
    assert opened.status_code == 200 and opened.json()["Message"] == ACCESS_GRANTED
    assert (signer_called.status_code, signed.status_code) == (200, 200), signer_called.text


def sandbox_entries(system: System, destination: str) -> list[dict]:
    """What the sandbox provider delivered to ``destination``, texts and calls, oldest first."""
    return [d for d in map(json.loads, system.sandbox.read_text().splitlines()) if d["destination"] == destination]


async def test_probes_and_metrics_of_the_gateway(http: httpx.AsyncClient) -> None:
    """/livez and /readyz answer 200 (broker and Redis answer); /metrics counts requests by route
    template and status, a path nobody serves as one "unmatched" series, and no probe."""
    await http.get(authentication_path("pkg-metrics"))
    await http.get("/v3/nowhere/at-all")
    live, ready, scraped = [await http.get(path) for path in ("/livez", "/readyz", "/metrics")]

    assert (live.status_code, ready.status_code) == (200, 200)
    assert ready.json()["checks"] == {"broker": {"ok": True}, "redis": {"ok": True}}
    text = scraped.text
    assert ('signgate_gateway_requests_total{method="GET",route="/v3/packages/{package_id}/workflow/{order}/'
            'authentication",service="gateway",status="401"}') in text
    assert 'route="unmatched",service="gateway",status="404"' in text
    assert 'route="/readyz"' not in text and "process_resident_memory_bytes" in text
