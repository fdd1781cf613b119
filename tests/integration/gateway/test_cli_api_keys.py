"""`signgate send issue-api-key | list-api-keys | revoke-api-key` on the real stack: the key shown
once, listed without its secret, refused by the gateway and by identity once revoked."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import jwt
from click.testing import Result
from typer.testing import CliRunner

from libs.tools.cli import app
from signgate_client import SignGateClient
from signgate_contracts import identity as idn
from tests.e2e.steps import owner_token
from tests.support.gateway import RunningGateway
from tests.support.system import System
from tests.support.waiting import until

KEY = re.compile(r"sgk_[A-Za-z0-9_-]+")
KEY_ID = re.compile(r"key_id=([0-9a-f-]{36})")


async def signgate(system: System, *arguments: str, token: str = "") -> Result:
    """The CLI on the system's broker, as the holder of ``token`` (none: no token kept either)."""
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    return await asyncio.to_thread(CliRunner().invoke, app, [*options, *arguments],
                                   env={"COLUMNS": "240", "SIGNGATE_ACCESS_TOKEN": token})


def user_name_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["user_name"]


async def gateway_answer(gateway: RunningGateway, api_key: str) -> tuple[int, Any]:
    """A BoldSign call with ``api_key`` on a document nobody has: 403 once the key is accepted, 401 if not."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        answer = await http.patch("/v1/document/addAuthentication", params={"documentId": "doc-nobody"},
                                  json={"authenticationType": "EmailOTP", "emailId": "ann@example.com"},
                                  headers={"X-API-KEY": api_key})
    return answer.status_code, answer.json()


async def exchanged(system: System, api_key: str) -> idn.ApiKeyToken | tuple[int, str]:
    """identity's answer to ExchangeApiKey: the token, or the refusal's status and code."""
    async with SignGateClient(system.connections.kafka_bootstrap, topic_prefix=system.connections.topic_prefix) as client:
        outcome = await client.send(idn.ExchangeApiKey(api_key=api_key), timeout=30)
    if outcome.rejection is not None:
        return outcome.rejection.status, outcome.rejection.code
    assert isinstance(outcome.reply, idn.ApiKeyToken), outcome.result
    return outcome.reply


async def test_issue_shows_the_key_once_list_never_and_revoke_makes_the_gateway_and_identity_refuse_it(
    system: System, gateway: RunningGateway
) -> None:
    """`issue-api-key` prints the key once, and the gateway accepts it; `list-api-keys` shows its id
    and name but not the key; after `revoke-api-key` the gateway answers 401 "Invalid API key",
    ExchangeApiKey is refused 401, and only `--include-revoked` lists it, as revoked."""
    token = await owner_token(system)
    user = user_name_of(token)

    issued = await signgate(system, "send", "issue-api-key", user, "--name", "billing", token=token)
    [api_key] = KEY.findall(issued.stdout)
    [key_id] = set(KEY_ID.findall(issued.stdout))  # on the event and on the reply
    accepted = await gateway_answer(gateway, api_key)
    listed = await signgate(system, "send", "list-api-keys", user, token=token)
    revoked = await signgate(system, "send", "revoke-api-key", user, key_id, token=token)
    refused = await until(lambda: _refused(gateway, api_key), timeout=20, what="the gateway hearing of the revocation")
    after = await signgate(system, "send", "list-api-keys", user, token=token)
    with_revoked = await signgate(system, "send", "list-api-keys", user, "--include-revoked", token=token)

    assert issued.exit_code == 0, issued.output
    assert f"API key (shown once, keep it): {api_key}\n" in issued.stdout and issued.output.count(api_key) == 1
    assert accepted == (403, {"error": "Invalid Document ID"})  # through the key check, to the workflow
    assert listed.exit_code == 0 and f"{key_id}  'billing'  account " in listed.stdout, listed.output
    assert "never used" not in listed.stdout  # the gateway's exchange counted as a use
    assert api_key not in listed.output and api_key.removeprefix("sgk_")[:16] not in listed.output
    assert revoked.exit_code == 0 and "identity.api_key_revoked" in revoked.stdout, revoked.output
    assert refused == (401, {"error": "Invalid API key"})
    assert await exchanged(system, api_key) == (401, "invalid_api_key")
    assert after.exit_code == 0 and key_id not in after.stdout, after.output
    assert re.search(rf"{key_id}  'billing' .*, revoked\s+\d{{4}}-", with_revoked.stdout), with_revoked.output


async def _refused(gateway: RunningGateway, api_key: str) -> tuple[int, Any] | None:
    answer = await gateway_answer(gateway, api_key)
    return answer if answer[0] == 401 else None


async def test_with_json_each_command_prints_parseable_json_and_issue_alone_gives_the_key(system: System) -> None:
    """With `--json`, issue prints JSON whose identity.issued_api_key holds the key in clear (the key
    that ExchangeApiKey then takes) and nothing on stderr; list prints the key's summary without any
    secret; revoke prints identity.api_key_revoked of that key id and nothing on stderr."""
    token = await owner_token(system)
    user = user_name_of(token)

    issued = await signgate(system, "send", "issue-api-key", user, "--name", "ci", "--json", token=token)
    documents = json.loads(issued.stdout)
    [issue] = [d for d in documents if d["type"] == "identity.issued_api_key"]
    exchange = await exchanged(system, issue["api_key"])
    listed = await signgate(system, "--json", "send", "list-api-keys", user, token=token)
    revoked = await signgate(system, "send", "revoke-api-key", user, issue["key_id"], "--json", token=token)

    assert (issued.exit_code, issued.stderr) == (0, ""), issued.output
    assert KEY.fullmatch(issue["api_key"]) and issue["name"] == "ci"
    assert [d for d in documents if d is not issue and issue["api_key"] in json.dumps(d)] == []
    assert isinstance(exchange, idn.ApiKeyToken) and str(exchange.key_id) == issue["key_id"]
    assert listed.exit_code == 0, listed.output  # its table, a remark for a person, is on stderr
    [keys] = [d["keys"] for d in json.loads(listed.stdout) if d["type"] == "identity.api_keys_listed"]
    assert [(k["key_id"], k["name"]) for k in keys] == [(issue["key_id"], "ci")]
    assert {"key_id", "name", "account", "created_at"} <= set(keys[0]) <= {
        "key_id", "name", "account", "created_at", "last_used_at", "revoked_at"}
    assert issue["api_key"] not in listed.stdout + listed.stderr
    assert (revoked.exit_code, revoked.stderr) == (0, ""), revoked.output
    assert [(d["type"], d["key_id"]) for d in json.loads(revoked.stdout)] == [("identity.api_key_revoked", issue["key_id"])]


async def test_refusals_exit_with_the_documented_codes(system: System) -> None:
    """Without a token: exit 2 (usage); a key id that is not a UUID: 2; another user's keys, an unknown
    key, a key revoked already and a bad token: exit 1 (refused), with identity's status and code in the
    one stderr line, or as one JSON object with `--json`."""
    token = await owner_token(system)
    user = user_name_of(token)
    other = user_name_of(await owner_token(system))
    issued = await signgate(system, "send", "issue-api-key", user, "--name", "once", token=token)
    [key_id] = set(KEY_ID.findall(issued.stdout))
    assert (await signgate(system, "send", "revoke-api-key", user, key_id, token=token)).exit_code == 0

    answers = {
        "no token": await signgate(system, "send", "issue-api-key", user, "--name", "x"),
        "not a uuid": await signgate(system, "send", "revoke-api-key", user, "key-1", token=token),
        "another user's": await signgate(system, "send", "issue-api-key", other, "--name", "x", token=token),
        "unknown key": await signgate(system, "send", "revoke-api-key", user, str(uuid.uuid4()), token=token),
        "revoked twice": await signgate(system, "send", "revoke-api-key", user, key_id, token=token),
        "bad token": await signgate(system, "send", "list-api-keys", user, token="not-a-token"),
    }
    as_json = await signgate(system, "send", "revoke-api-key", user, key_id, "--json", token=token)

    assert {name: result.exit_code for name, result in answers.items()} == {
        "no token": 2, "not a uuid": 2, "another user's": 1, "unknown key": 1, "revoked twice": 1, "bad token": 1}
    assert answers["no token"].stderr == (
        "error: no token: run `signgate send authenticate USER` first, or set SIGNGATE_ACCESS_TOKEN\n")
    assert answers["not a uuid"].stderr.endswith("Error: Invalid value for 'key_id': 'key-1' is not a valid UUID.\n")
    assert answers["another user's"].stderr.startswith("error: refused identity.issue_api_key: 403 ")
    assert answers["unknown key"].stderr == (
        "error: refused identity.revoke_api_key: 404 api_key_not_found: API key not found\n")
    assert answers["revoked twice"].stderr == (
        "error: refused identity.revoke_api_key: 409 api_key_revoked: API key is already revoked\n")
    assert answers["bad token"].stderr.startswith("error: refused identity.list_api_keys: 401 ")
    assert all(result.stderr.count("\n") == 1 for name, result in answers.items() if name != "not a uuid")
    assert as_json.exit_code == 1 and json.loads(as_json.stderr) == {
        "error": "refused", "exit_code": 1,
        "message": "refused identity.revoke_api_key: 409 api_key_revoked: API key is already revoked"}
    assert [d["type"] for d in json.loads(as_json.stdout)] == ["command.rejected"]
