"""The Python client and the `signgate` command on the real stack with all four services."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pyotp
import pytest
from typer.testing import CliRunner

from libs.tools.cli import app
from signgate_client import OutcomeTimeout, SignGateClient
from signgate_contracts import CommandRejected
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from tests.e2e.conftest import System
from tests.e2e.steps import owner_token, workflow
from tests.support.kafka import correlated
from tests.support.signing import session_digests
from tests.support.waiting import until


@pytest.fixture
async def client(system: System):
    async with SignGateClient(system.connections.kafka_bootstrap,
                              topic_prefix=system.connections.topic_prefix) as client:
        yield client


async def test_a_reply_comes_to_the_callers_own_topic_with_the_event(system: System, client: SignGateClient) -> None:
    """AuthenticateUser's outcome holds the event and the reply, which went to the client's own topic
    and not to the service's shared replies topic."""
    command = idn.AuthenticateUser(user_name=f"nobody-{uuid.uuid4().hex[:6]}@example.com", password="wrong")
    outcome = await client.send(command)

    assert isinstance(outcome.event, idn.UserAuthenticationFailedV2)
    assert isinstance(outcome.reply, idn.AuthenticationFailed)
    assert outcome.command.reply_to == client.reply_topic
    assert outcome.reply.correlation_id == outcome.event.correlation_id == command.correlation_id
    shared = system.connections.topic("signgate.identity.replies")
    assert not system.watch.matching(lambda r: r.topic == shared and correlated(r, command.correlation_id))


async def test_concurrent_commands_each_get_their_own_outcome(client: SignGateClient) -> None:
    """Twenty commands in flight at once on one client are each answered with their own outcome."""
    names = [f"many-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(20)]
    outcomes = await asyncio.gather(*(client.send(idn.AuthenticateUser(user_name=name, password="x"))
                                      for name in names))
    digests = session_digests()  # the services' digest key (the session's)
    assert [o.event.user_name_digest for o in outcomes] == [digests.user_name(name) for name in names]
    assert all(o.reply.correlation_id == o.command.correlation_id for o in outcomes)


async def test_a_refusal_is_a_typed_rejection(client: SignGateClient) -> None:
    """A command without a token comes back as `CommandRejected` with the seed's 401."""
    outcome = await client.send(wf.ShareWorkflow(package_id=f"pkg-{uuid.uuid4().hex[:8]}"))
    assert isinstance(outcome.rejection, CommandRejected)
    assert (outcome.rejection.status, outcome.rejection.message) == (401, "User authentication required")


async def test_an_outcome_that_does_not_complete_in_time_raises_with_what_arrived(client: SignGateClient) -> None:
    """Waiting for an effect that never comes ends in `OutcomeTimeout`, holding the event that did
    (a refusal, which causes nothing, is not waited on)."""
    command = idn.AuthenticateUser(user_name=f"nobody-{uuid.uuid4().hex[:6]}@example.com", password="wrong")
    with pytest.raises(OutcomeTimeout) as raised:
        await client.send(command, timeout=1, effects={"workflow.never_published"})
    assert isinstance(raised.value.partial.event, idn.UserAuthenticationFailedV2)
    refused = await client.send(wf.ShareWorkflow(package_id=f"pkg-{uuid.uuid4().hex[:8]}"), timeout=10,
                                effects={"workflow.never_published"})
    assert isinstance(refused.rejection, CommandRejected)


async def test_the_cli_sends_json_and_reads_status_on_the_stack(system: System, tmp_path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`signgate send json` prints the rejection, says so in one stderr line and exits 1 (refused); `status`
    without an invitation or a token is refused with 401 before anything is looked up, and exits 1 too."""
    monkeypatch.setattr("libs.tools.cli.stack.TOKEN_FILE", tmp_path / "cli-token")  # no token kept by anyone
    monkeypatch.setattr("libs.tools.cli.stack.INVITATIONS_FILE", tmp_path / "cli-invitations.json")
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    runner = CliRunner()
    package = f"pkg-{uuid.uuid4().hex[:8]}"

    sent = await asyncio.to_thread(runner.invoke, app, [
        *options, "send", "json", f'{{"type": "workflow.share_workflow", "package_id": "{package}"}}'],
        env={"COLUMNS": "200", "SIGNGATE_ACCESS_TOKEN": ""})
    status = await asyncio.to_thread(runner.invoke, app, [*options, "status", package, "2"],
                                     env={"COLUMNS": "200", "SIGNGATE_ACCESS_TOKEN": ""})

    assert sent.exit_code == 1, sent.output
    assert "→ workflow.share_workflow" in sent.stdout and "command.rejected  status=401" in sent.stdout
    assert sent.stderr == "error: refused workflow.share_workflow: 401 authentication_required: User authentication required\n"
    assert status.exit_code == 1, status.output
    assert "status=401" in status.stdout and "User authentication required" in status.stdout


async def test_with_json_after_the_subcommand_an_answer_exits_0_and_a_refusal_1(system: System) -> None:
    """`send json … --json`: an answered command prints its messages as JSON and exits 0 with nothing on
    stderr; a refused one prints the rejection as JSON, exits 1 and puts one JSON error object on stderr."""
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    runner = CliRunner()
    answered_command = '{"type": "identity.authenticate_user", "user_name": "nobody@example.com", "password": "wrong"}'
    refused_command = f'{{"type": "workflow.share_workflow", "package_id": "pkg-{uuid.uuid4().hex[:8]}"}}'

    answered, refused = [await asyncio.to_thread(runner.invoke, app, ["send", "json", command, "--json", *options],
                                                 env={"SIGNGATE_ACCESS_TOKEN": ""})
                         for command in (answered_command, refused_command)]

    assert (answered.exit_code, answered.stderr) == (0, ""), answered.output
    assert [m["type"] for m in json.loads(answered.stdout)] == ["identity.user_authentication_failed_v2",
                                                                 "identity.authentication_failed"]
    assert refused.exit_code == 1 and [m["type"] for m in json.loads(refused.stdout)] == ["command.rejected"]
    assert json.loads(refused.stderr) == {"error": "refused", "exit_code": 1, "message":
                                          "refused workflow.share_workflow: 401 authentication_required: "
                                          "User authentication required"}


async def test_the_cli_keeps_the_invitations_a_share_answers_with_and_acts_as_the_recipient(
        system: System, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`send share` keeps each recipient's invitation (0600); `status` and `open` then act as that
    recipient with it, and no token is needed for them."""
    monkeypatch.setattr("libs.tools.cli.stack.TOKEN_FILE", tmp_path / "cli-token")
    monkeypatch.setattr("libs.tools.cli.stack.INVITATIONS_FILE", tmp_path / "cli-invitations.json")
    token = await owner_token(system)
    package = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package, name="Lease", access_token=token,
        recipients=[wf.RecipientSpec(order=1, email="erin@example.com", name="Erin")],
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")]))
    await workflow(system, wf.AddAuthentication.model_validate({"package_id": package, "access_token": token, "body": {
        "authenticationType": "AccessCode", "accessCode": "Erin-4471", "emailId": "erin@example.com"}}))
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    runner = CliRunner()

    def cli(*arguments: str, token: str = "") -> Any:
        return runner.invoke(app, [*options, *arguments], env={"COLUMNS": "200", "SIGNGATE_ACCESS_TOKEN": token})

    shared = await asyncio.to_thread(cli, "send", "share", package, token=token)
    await until(lambda: _projected(system, package), what="the authentication service's projection")
    opened = await asyncio.to_thread(cli, "send", "open", package, "1", "--code", "Erin-4471")
    status = await asyncio.to_thread(cli, "status", package, "1")

    assert shared.exit_code == 0 and "invitations of order 1 kept" in shared.output, shared.output
    assert (tmp_path / "cli-invitations.json").stat().st_mode & 0o777 == 0o600
    assert opened.exit_code == 0 and "authentication.recipient_authenticated" in opened.output, opened.output
    assert re.search(r"attempts_remaining\s*│\s*3\s", status.output), status.output  # read as Erin, not refused
    kept = (tmp_path / "cli-invitations.json").read_text()
    assert all(part not in shared.output + opened.output + status.output for part in kept.split('"') if len(part) > 40)


async def _projected(system: System, package_id: str) -> bool:
    pool = system.services["authentication"].resources.pool
    return await pool.fetchval("SELECT count(*) = 1 FROM recipients r JOIN packages p USING (package_id)"
                               " WHERE package_id = $1 AND methods <> '{}' AND p.state = 'in_progress'", package_id)


async def test_the_cli_provisions_a_recipients_totp_prints_its_uri_and_opens_with_a_code(
        system: System, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`send set-totp` prints the otpauth URI of the secret it provisioned (shown nowhere else);
    after `send share`, `send verify-totp` with the app's code opens the document, and the same
    code again is refused as used (exit 1)."""
    monkeypatch.setattr("libs.tools.cli.stack.TOKEN_FILE", tmp_path / "cli-token")
    monkeypatch.setattr("libs.tools.cli.stack.INVITATIONS_FILE", tmp_path / "cli-invitations.json")
    token = await owner_token(system)
    package = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(system, wf.RegisterPackage(
        package_id=package, name="Lease", access_token=token,
        recipients=[wf.RecipientSpec(order=1, email="fay@example.com", name="Fay")],
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")]))
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    runner = CliRunner()

    def cli(*arguments: str, token: str = "") -> Any:
        return runner.invoke(app, [*options, *arguments], env={"COLUMNS": "200", "SIGNGATE_ACCESS_TOKEN": token})

    provisioned = await asyncio.to_thread(cli, "send", "set-totp", package, "1", token=token)
    [uri] = re.findall(r"otpauth://totp/\S+", provisioned.output)
    shared = await asyncio.to_thread(cli, "send", "share", package, token=token)
    await until(lambda: _projected(system, package), what="the authentication service's projection")
    code = pyotp.parse_uri(uri).at(system.clock())
    opened = await asyncio.to_thread(cli, "send", "verify-totp", package, "1", "--code", code)
    again = await asyncio.to_thread(cli, "send", "verify-totp", package, "1", "--code", code)

    assert provisioned.exit_code == 0 and "workflow.recipient_totp_provisioned" in provisioned.output
    assert shared.exit_code == 0, shared.output
    assert opened.exit_code == 0 and "authentication.document_access_granted" in opened.output, opened.output
    assert again.exit_code == 1 and "totp_code_used" in again.output, again.output
    assert code not in opened.output + again.output
