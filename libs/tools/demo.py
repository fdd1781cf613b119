"""`make demo`: a recipient locked out and unlocked, against the running `make run` stack.

Each step prints the command it sends and the events it caused: an API user authenticates; a
package with two signers is registered; SigningHub's sample body sets SMS OTP on signer 2;
signer 1 opens with an access code (BoldSign's addAuthentication); signer 2 enters wrong
codes and is locked; the owner unlocks signer 2; signer 2 asks for a new code (read from the
sandbox outbox) and opens; the package's history prints as a table.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.text import Text

from libs.devstack.stack import DATA_DIR
from libs.runtime.kafka_security import signgate_client_options
from libs.tools.cli.render import console as make_console
from libs.tools.cli.render import history_table, message_line
from libs.tools.cli.stack import NoStack, find_bootstrap, mint_operator_token, reply_topic
from services.gateway.signinghub import SEED_000_BODY
from services.otp_dispatch.providers.sandbox import read_outbox
from signgate_client import Outcome, SignGateClient
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Command

CLEARED = "authentication.recipient_authentication_cleared"


def sms_otp_body(mobile_number: str, now: datetime) -> dict[str, Any]:
    """The sample body for one recipient: SMS OTP on, password off, open from now for a week."""
    body = json.loads(json.dumps(SEED_000_BODY))
    body["apply_to_all"] = False
    body["authentication"]["password"]["enabled"] = False
    body["authentication"]["sms_otp"] = {"enabled": True, "mobile_number": mobile_number}
    body["access_duration"]["duration_by_date"]["duration"] = {
        "start_date_time": (now - timedelta(hours=1)).isoformat(),
        "end_date_time": (now + timedelta(days=7)).isoformat(),
    }
    return body


@dataclass
class Demo:
    """The demo's steps on one client, printing as it goes; ``outcomes`` keeps every outcome."""

    client: SignGateClient
    operator_token: str
    outbox: Path
    console: Console = field(default_factory=Console)
    timeout: float = 30.0
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    """The password, access code and token the demo used: what it must never print."""

    async def send(self, name: str, command: Command, **options: Any) -> Outcome:
        width = max(self.console.width - 60, 60)
        self.console.print(message_line(command, width=width), overflow="ellipsis", no_wrap=True)
        outcome = await self.client.send(command, timeout=self.timeout, **options)
        for message in (outcome.event, outcome.reply, *outcome.effects.values()):
            if message is not None:
                self.console.print(
                    message_line(message, width=width), overflow="ellipsis", no_wrap=True
                )
        self.outcomes[name] = outcome
        return outcome

    def step(self, text: str) -> None:
        self.console.rule(text, align="left", style="dim")

    async def run(self) -> str:
        """Every step of the demo; returns the package id."""
        run = uuid.uuid4().hex[:6]
        user, password = f"demo-{run}@example.com", secrets.token_urlsafe(12)
        package_id = f"demo-{run}"
        mobile = f"+447700900{secrets.randbelow(1000):03d}"
        access_code = f"AC-{secrets.randbelow(10**6):06d}"
        self.secrets += [password, access_code]

        self.step("1. An API user is registered by the operator and authenticates (token 30 min)")
        await self.send(
            "register_user",
            idn.RegisterUser(
                user_name=user,
                first_name="Dana",
                last_name="Demo",
                password=SecretStr(password),
                accounts=[
                    idn.AccountMembership(
                        name="Demo Ltd", context_identifier=uuid.uuid4(), is_primary=True
                    )
                ],
                access_token=SecretStr(self.operator_token),
            ),
        )
        login = (
            await self.send(
                "authenticate_user",
                idn.AuthenticateUser(user_name=user, password=SecretStr(password)),
            )
        ).accepted()
        assert isinstance(login.reply, idn.AuthenticationSucceeded), login.reply
        token = login.reply.access_token
        self.secrets.append(token.get_secret_value())

        self.step("2. A package with two signers is registered")
        await self.send(
            "register_package",
            wf.RegisterPackage(
                package_id=package_id,
                name="Lease agreement",
                access_token=token,
                documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
                recipients=[
                    wf.RecipientSpec(order=1, email="alice@example.com", name="Alice"),
                    wf.RecipientSpec(
                        order=2, email="bob@example.com", name="Bob", mobile_number=mobile
                    ),
                ],
            ),
        )

        self.step(
            "3. SigningHub's sample body sets SMS OTP on signer 2; BoldSign's sets an access code on signer 1"
        )
        await self.send(
            "set_sms_otp",
            wf.UpdateRecipientAuthentication(
                package_id=package_id,
                order=2,
                access_token=token,
                body=wf.SigningHubAuthenticationBody.model_validate(
                    sms_otp_body(mobile, datetime.now(UTC))
                ),
            ),
        )
        await self.send(
            "add_access_code",
            wf.AddAuthentication(
                package_id=package_id,
                access_token=token,
                body=wf.AddAuthenticationBody.model_validate(
                    {
                        "emailId": "alice@example.com",
                        "authenticationType": "AccessCode",
                        "accessCode": access_code,
                    }
                ),
            ),
        )
        shared = (
            await self.send("share", wf.ShareWorkflow(package_id=package_id, access_token=token))
        ).accepted()
        assert isinstance(shared.reply, wf.RecipientInvitationsIssued), shared.reply
        invitation = {
            i.order: i.invitation for i in shared.reply.invitations
        }  # what the signing links carry
        self.secrets += [i.get_secret_value() for i in invitation.values()]
        await self.projected(package_id, {1: "access_code", 2: "sms_otp"}, token)

        self.step(
            "4. Signer 1 opens with the access code (and the invitation from their signing link)"
        )
        await self.send(
            "open_1",
            auth.OpenDocumentWithPassword(
                package_id=package_id, invitation=invitation[1], password=SecretStr(access_code)
            ),
        )

        self.step("5. Signer 2 asks for a code, enters three wrong ones and is locked")
        await self.send(
            "request_otp", auth.RequestDocumentOtp(package_id=package_id, invitation=invitation[2])
        )
        right = self.latest_code(mobile)
        for attempt in (1, 2, 3):
            wrong = str((int(right) + attempt) % 10 ** len(right)).zfill(len(right))
            await self.send(
                f"wrong_{attempt}",
                auth.VerifyDocumentOtp(
                    package_id=package_id, invitation=invitation[2], code=SecretStr(wrong)
                ),
            )
        await self.send(
            "while_locked",
            auth.VerifyDocumentOtp(
                package_id=package_id, invitation=invitation[2], code=SecretStr(right)
            ),
        )
        await self.send(
            "status_locked",
            auth.GetRecipientAuthenticationStatus(package_id=package_id, invitation=invitation[2]),
        )

        self.step(
            "6. The owner unlocks signer 2 (signer 1 is untouched); signer 2's old link stops working"
        )
        await self.send(
            "reset",
            wf.ResetRecipientAuthentication(package_id=package_id, order=2, access_token=token),
            effects={CLEARED},
        )
        await self.send(
            "stale_link", auth.RequestDocumentOtp(package_id=package_id, invitation=invitation[2])
        )
        fresh = (
            await self.send(
                "invite",
                wf.IssueRecipientInvitation(package_id=package_id, order=2, access_token=token),
            )
        ).accepted()
        assert isinstance(fresh.reply, wf.RecipientInvitationIssued), fresh.reply
        invitation[2] = fresh.reply.invitation
        self.secrets.append(invitation[2].get_secret_value())

        self.step(
            "7. Signer 2, with the new link, asks for a new code, reads it from the sandbox outbox, and opens"
        )
        await self.send(
            "request_again",
            auth.RequestDocumentOtp(package_id=package_id, invitation=invitation[2]),
        )
        await self.send(
            "open_2",
            auth.VerifyDocumentOtp(
                package_id=package_id,
                invitation=invitation[2],
                code=SecretStr(self.latest_code(mobile)),
            ),
        )

        self.step("8. The package's history")
        history = await self.send(
            "history", wf.GetWorkflowHistory(package_id=package_id, access_token=token)
        )
        assert isinstance(history.reply, wf.WorkflowHistoryListed), history.result
        self.console.print(history_table(package_id, history.reply.entries))
        return package_id

    async def projected(self, package_id: str, methods: dict[int, str], token: SecretStr) -> None:
        """Wait until the authentication service knows each recipient's method (no event says so),
        asking as the package's owner."""
        async with asyncio.timeout(self.timeout):
            for order, method in methods.items():
                while True:
                    status = await self.client.send(
                        auth.GetRecipientAuthenticationStatus(
                            package_id=package_id, order=order, access_token=token
                        ),
                        timeout=self.timeout,
                    )
                    if getattr(status.reply, "method", None) == method:
                        break
                    await asyncio.sleep(0.05)  # between two queries, not in place of one

    def latest_code(self, mobile: str) -> str:
        """The last code the sandbox outbox holds for ``mobile`` (a phone, in the demo)."""
        return [d for d in read_outbox(self.outbox) if d["destination"] == mobile][-1]["code"]


async def demo(bootstrap: str, console: Console) -> None:
    async with SignGateClient(bootstrap, reply_topic(), **signgate_client_options()) as client:
        await Demo(
            client, mint_operator_token("demo"), DATA_DIR / "sandbox-outbox.jsonl", console
        ).run()


def main() -> int:
    console = make_console()
    try:
        bootstrap = find_bootstrap()
        asyncio.run(demo(bootstrap, console))
    except NoStack as error:
        console.print(Text(str(error), style="red"))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
