"""An API user's authenticator app end to end through Kafka and the `signgate` CLI, all four services
running: enrol, confirm with a pyotp code, log in with the second factor, replay, a recovery code,
disable; and what the bus showed of the secrets."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from typer.testing import CliRunner

from libs.security.tokens import TokenSettings
from libs.tools.cli import app
from libs.tools.operator_token import operator_token
from signgate_contracts import identity as idn
from tests.e2e.conftest import System
from tests.e2e.steps import send
from tests.support.scanning import leaks

PASSWORD = "Totp-e2e-Pass-4471"


async def test_an_api_user_adds_an_authenticator_and_logs_in_with_it_through_the_cli(
        system: System, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI: enrol prints the otpauth URI; confirming with a pyotp code prints ten recovery
    codes; a login without a code exits 7 (second factor required); with the code it gets a token; the
    same code again is totp_code_used; a recovery code works once; disabling with a code lets the
    password alone log in again. Nothing of the secret, the URI or the codes reached the bus."""
    monkeypatch.setattr("libs.tools.cli.stack.TOKEN_FILE", tmp_path / "cli-token")
    user_name = f"totp-{uuid.uuid4().hex[:6]}@example.com"
    admin = operator_token(TokenSettings(private_key=system.secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                         public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"])).token
    registered = await send(system, "signgate.identity.commands", idn.RegisterUser(
        user_name=user_name, password=PASSWORD, access_token=admin,
        accounts=[idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)]),
        key=user_name)
    assert registered["type"] == "identity.user_registered_v2", registered
    options = ["--bootstrap", system.connections.kafka_bootstrap, "--topic-prefix", system.connections.topic_prefix]
    runner = CliRunner()

    async def cli(*arguments: str) -> Any:
        return await asyncio.to_thread(runner.invoke, app, [*options, *arguments],
                                       env={"COLUMNS": "200", "SIGNGATE_ACCESS_TOKEN": ""})

    password_only = await cli("send", "authenticate", user_name, "--password", PASSWORD)
    enrolled = await cli("send", "enrol-authenticator", user_name)
    uri = re.search(r"otpauth://\S+", enrolled.output)
    assert enrolled.exit_code == 0 and uri, enrolled.output
    secret = parse_qs(urlparse(uri.group(0)).query)["secret"][0]
    totp = pyotp.TOTP(secret)
    confirm_code = totp.now()
    confirmed = await cli("send", "confirm-authenticator", user_name, "--code", confirm_code)
    recovery_codes = re.findall(r"^\s+([a-z2-9]{5}-[a-z2-9]{5})$", confirmed.output, re.M)

    without_code = await cli("send", "authenticate", user_name, "--password", PASSWORD)
    login_code = totp.at(time.time() + 30)  # the next step's code: inside the drift window, after the one spent
    with_code = await cli("send", "authenticate", user_name, "--password", PASSWORD, "--code", login_code)
    replayed = await cli("send", "authenticate", user_name, "--password", PASSWORD, "--code", login_code)
    recovered = await cli("send", "authenticate", user_name, "--password", PASSWORD, "--code", recovery_codes[0])
    recovered_again = await cli("send", "authenticate", user_name, "--password", PASSWORD, "--code", recovery_codes[0])
    disabled = await cli("send", "disable-authenticator", user_name, "--code", recovery_codes[1])
    after = await cli("send", "authenticate", user_name, "--password", PASSWORD)

    assert password_only.exit_code == 0 and "token kept" in password_only.output, password_only.output
    assert confirmed.exit_code == 0 and len(set(recovery_codes)) == 10, confirmed.output
    assert without_code.exit_code == 7 and "second factor required" in without_code.stderr, without_code.output
    assert with_code.exit_code == 0 and "identity.authentication_succeeded" in with_code.output, with_code.output
    assert replayed.exit_code == 0 and "totp_code_used" in replayed.output, replayed.output
    assert "identity.authentication_succeeded" in recovered.output, recovered.output
    assert "invalid_credentials" in recovered_again.output, recovered_again.output
    assert disabled.exit_code == 0 and "identity.authenticator_removed" in disabled.output, disabled.output
    assert after.exit_code == 0 and "identity.authentication_succeeded" in after.output, after.output
    secrets = [secret, uri.group(0), confirm_code, login_code, *recovery_codes]
    events = [r.value.decode() for r in system.watch.records if ".events" in r.topic or r.topic.endswith(".dlq")]
    assert leaks(events, secrets) == []
