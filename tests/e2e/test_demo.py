"""`make demo`'s steps against the in-process system, over HTTP through a gateway (the default) and
over Kafka (``--kafka``): lockout, the owner's unlock, and a new code."""

from __future__ import annotations

import io
import re

import httpx
from rich.console import Console

from libs.security.tokens import TokenSettings
from libs.tools.demo import Demo, HttpDemo
from libs.tools.operator_token import operator_token
from services.gateway.signinghub import ACCESS_GRANTED, LOCKED_OUT, UNLOCKED
from services.otp_dispatch.providers.sandbox import read_outbox
from signgate_client import SignGateClient
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from tests.e2e.conftest import System
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.scanning import leaks


def operator(system: System) -> str:
    secrets = system.secrets
    return operator_token(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                        public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]), "demo").token


async def test_the_demo_over_http_prints_each_request_and_unlocks_signer_two(system: System) -> None:
    """Over a real gateway, the demo authenticates with AssureSign's XML, sets authentication with
    SigningHub's and BoldSign's bodies, locks signer 2 out with three wrong codes (403s), unlocks
    them with seed 003's PUT (their old link then 401) and opens them with the new link; every
    request is printed as method, path and status, and no secret or code is."""
    output = io.StringIO()  # the printed lines, checked below and shown by -s
    async with running_gateway(gateway_settings(system.connections)) as gateway, \
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as http, \
            SignGateClient(system.connections.kafka_bootstrap, topic_prefix=system.connections.topic_prefix) as client:
        demo = HttpDemo(client, operator(system), system.sandbox, Console(file=output, width=200), http=http)
        package_id = await demo.run()

    answers = {name: (r.status_code, r.json() if r.content else None) for name, r in demo.responses.items()
               if name != "authenticate_user"}  # XML, read by the demo itself
    assert demo.responses["authenticate_user"].status_code == 200
    assert answers["set_sms_otp"] == answers["add_access_code"] == (200, None)
    assert answers["open_1"][0] == 200 and answers["open_1"][1]["Message"] == ACCESS_GRANTED
    assert [answers[f"wrong_{n}"] for n in (1, 2, 3)] == [(403, {"Message": "The OTP is incorrect"})] * 2 + [
        (403, {"Message": LOCKED_OUT})]
    assert answers["while_locked"] == (403, {"Message": LOCKED_OUT})
    assert (answers["reset"][0], answers["reset"][1]["Message"], answers["reset"][1]["was_locked"]) == (
        200, UNLOCKED, True)
    assert answers["stale_link"][0] == 401
    assert answers["open_2"][0] == 200 and answers["open_2"][1]["Message"] == ACCESS_GRANTED
    actions = [(a["action_type"], a["order"]) for a in answers["history"][1]["actions"]]
    assert ("RECIPIENT_AUTHENTICATION_RESET", 2) in actions and ("RECIPIENT_AUTHENTICATED", 1) in actions
    printed = output.getvalue()
    assert f"→ PUT /v3/packages/{package_id}/workflow/2/authentication/reset  [Authorization]" in printed
    assert "→ POST /Services/DocumentNOW/Users  [SOAPAction]" in printed
    assert f"→ PATCH /v1/document/addAuthentication?documentId={package_id}  [X-API-KEY]" in printed
    assert len(re.findall(r"^← 403 Forbidden", printed, re.MULTILINE)) == 4
    assert f"history of {package_id}" in printed
    codes = [delivery["code"] for delivery in read_outbox(system.sandbox)]
    assert len(demo.secrets) == 7 and codes  # password, access code, token, API key, three invitations
    assert leaks(printed.splitlines(), [*demo.secrets, *codes]) == []


async def test_the_demo_locks_signer_two_out_and_the_owner_unlocks_them(system: System) -> None:
    """With --kafka, the demo's signer 2 is locked by the third wrong code, refused while locked, unlocked by the
    owner alone (their old signing link then refused), and opens with a new link and code, while
    signer 1 opened with the access code."""
    output = io.StringIO()
    async with SignGateClient(system.connections.kafka_bootstrap,
                              topic_prefix=system.connections.topic_prefix) as client:
        demo = Demo(client, operator(system), system.sandbox, Console(file=output, width=160))
        package_id = await demo.run()

    outcomes = demo.outcomes
    types = {name: outcome.result.type for name, outcome in outcomes.items()}
    assert types["authenticate_user"] == "identity.user_authenticated_v2"
    assert types["open_1"] == "authentication.recipient_authenticated"
    assert isinstance(outcomes["open_1"].reply, auth.DocumentAccessGranted)
    assert [types[f"wrong_{n}"] for n in (1, 2, 3)] == ["authentication.recipient_authentication_failed"] * 2 + [
        "authentication.recipient_locked_out"]
    assert (outcomes["while_locked"].rejection.status, outcomes["while_locked"].rejection.code) == (
        403, "recipient_locked")
    assert outcomes["status_locked"].reply.locked is True
    assert outcomes["reset"].effects["authentication.recipient_authentication_cleared"].was_locked is True
    assert (outcomes["stale_link"].rejection.status, outcomes["stale_link"].rejection.code) == (
        401, "invitation_not_valid")  # the reset made signer 2's old link stale
    assert types["open_2"] == "authentication.recipient_authenticated"
    assert isinstance(outcomes["open_2"].reply, auth.DocumentAccessGranted)
    history = outcomes["history"].reply
    assert isinstance(history, wf.WorkflowHistoryListed) and history.package_id == package_id
    assert [e.action for e in history.entries if e.order == 1] == [
        "recipient_authentication_updated", "recipient_authenticated"]
    printed = output.getvalue()
    assert "recipient_locked_out" in printed and f"history of {package_id}" in printed
    codes = [delivery["code"] for delivery in read_outbox(system.sandbox)]
    assert len(demo.secrets) == 6 and codes  # password, access code, token, three invitations
    assert leaks(printed.splitlines(), [*demo.secrets, *codes]) == []
