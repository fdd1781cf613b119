"""`make demo`'s steps against the in-process system: lockout, the owner's unlock, and a new code."""

from __future__ import annotations

import io

from rich.console import Console

from libs.security.tokens import TokenSettings
from libs.tools.demo import Demo
from libs.tools.operator_token import operator_token
from services.otp_dispatch.providers.sandbox import read_outbox
from signgate_client import SignGateClient
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from tests.e2e.conftest import System
from tests.support.scanning import leaks


async def test_the_demo_locks_signer_two_out_and_the_owner_unlocks_them(system: System) -> None:
    """The demo's signer 2 is locked by the third wrong code, refused while locked, unlocked by the
    owner alone (their old signing link then refused), and opens with a new link and code, while
    signer 1 opened with the access code."""
    secrets = system.secrets
    admin = operator_token(TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"],
                                         public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]), "demo").token
    output = io.StringIO()
    async with SignGateClient(system.connections.kafka_bootstrap,
                              topic_prefix=system.connections.topic_prefix) as client:
        demo = Demo(client, admin, system.sandbox, Console(file=output, width=160))
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
