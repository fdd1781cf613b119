"""`make demo`: a recipient locked out and unlocked, against the running `make run` stack.

Over HTTP through the gateway (``gateway_url`` in ``.signgate/stack.json``) by default, printing
each request's method, path and credential header and each answer's status and body (secrets
marked), so the demo reads as a walk through the API; with ``--kafka``, the same story as Kafka
commands and the events they caused. An API user authenticates (over HTTP: AssureSign's
AuthenticateUser); a package with two signers is registered; SigningHub's sample body sets SMS OTP
on signer 2 and BoldSign's addAuthentication an access code on signer 1, who opens with it; signer
2 enters wrong codes and is locked; the owner unlocks signer 2 (seed 003), whose old link then stops
working; signer 2, with a new link, asks for a code (read from the sandbox outbox) and opens; the
package's history prints as a table. Registering the user and the package, issuing the API key
and sharing stay Kafka commands over HTTP too: no vendor's HTTP call does them here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
from defusedxml import ElementTree
from pydantic import SecretStr
from rich.console import Console
from rich.text import Text

from libs.devstack.stack import DATA_DIR
from libs.runtime.kafka_security import signgate_client_options
from libs.tools.cli.render import HIDDEN, history_table, http_line, message_line
from libs.tools.cli.render import console as make_console
from libs.tools.cli.stack import (
    NoStack,
    find_bootstrap,
    find_gateway,
    mint_operator_token,
    reply_topic,
)
from services.gateway.assuresign import NAMESPACE as ASSURESIGN_NAMESPACE
from services.gateway.assuresign import PATH as ASSURESIGN_PATH
from services.gateway.assuresign import SOAP_ACTION
from services.gateway.signinghub import SEED_000_BODY
from services.otp_dispatch.providers.sandbox import read_outbox
from signgate_client import Outcome, SignGateClient
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Command

CLEARED = "authentication.recipient_authentication_cleared"
AUTHENTICATE_USER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<AuthenticateUser xmlns="{ASSURESIGN_NAMESPACE}">\n'
    '    <AuthenticateUserRequest UserName="{user}" Password="{password}" />\n'
    "</AuthenticateUser>"
)
"""Seed 004's request, with the demo user's name and password."""


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
    """The demo's steps as Kafka commands on one client, printing as it goes; ``outcomes`` keeps
    every outcome."""

    client: SignGateClient
    operator_token: str
    outbox: Path
    console: Console = field(default_factory=Console)
    timeout: float = 30.0
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    """The password, access code, token and invitations the demo used: what it must never print."""

    @property
    def width(self) -> int:
        return max(self.console.width - 60, 60)

    def show(self, line: Text) -> None:
        self.console.print(line, overflow="ellipsis", no_wrap=True)

    async def send(self, name: str, command: Command, **options: Any) -> Outcome:
        self.show(message_line(command, width=self.width))
        outcome = await self.client.send(command, timeout=self.timeout, **options)
        for message in (outcome.event, outcome.reply, *outcome.effects.values()):
            if message is not None:
                self.show(message_line(message, width=self.width))
        self.outcomes[name] = outcome
        return outcome

    def step(self, text: str) -> None:
        self.console.rule(text, align="left", style="dim")

    def kept(self, secret: str | SecretStr) -> SecretStr:
        """``secret``, remembered as one the demo must never print."""
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self.secrets.append(value)
        return SecretStr(value)

    async def register_user(self, user: str, password: str) -> None:
        """The operator registers the API user (an operator's command: Kafka either way)."""
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

    async def register_package(self, package_id: str, token: SecretStr, mobile: str) -> None:
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

    async def share(self, package_id: str, token: SecretStr) -> dict[int, SecretStr]:
        """Share the package; each signer's invitation (what their signing link carries)."""
        shared = (
            await self.send("share", wf.ShareWorkflow(package_id=package_id, access_token=token))
        ).accepted()
        assert isinstance(shared.reply, wf.RecipientInvitationsIssued), shared.reply
        invitation = {i.order: self.kept(i.invitation) for i in shared.reply.invitations}
        await self.projected(package_id, {1: "access_code", 2: "sms_otp"}, token)
        return invitation

    async def run(self) -> str:
        """Every step of the demo; returns the package id."""
        story = Story.new()
        self.kept(story.password)
        self.kept(story.access_code)

        self.step("1. An API user is registered by the operator and authenticates (token 30 min)")
        await self.register_user(story.user, story.password)
        login = (
            await self.send(
                "authenticate_user",
                idn.AuthenticateUser(user_name=story.user, password=SecretStr(story.password)),
            )
        ).accepted()
        assert isinstance(login.reply, idn.AuthenticationSucceeded), login.reply
        token = self.kept(login.reply.access_token)
        package_id = story.package_id

        self.step("2. A package with two signers is registered")
        await self.register_package(package_id, token, story.mobile)

        self.step(STEP_3)
        await self.send(
            "set_sms_otp",
            wf.UpdateRecipientAuthentication(
                package_id=package_id,
                order=2,
                access_token=token,
                body=wf.SigningHubAuthenticationBody.model_validate(
                    sms_otp_body(story.mobile, datetime.now(UTC))
                ),
            ),
        )
        await self.send(
            "add_access_code",
            wf.AddAuthentication(
                package_id=package_id,
                access_token=token,
                body=wf.AddAuthenticationBody.model_validate(story.access_code_body()),
            ),
        )
        invitation = await self.share(package_id, token)

        self.step(STEP_4)
        await self.send(
            "open_1",
            auth.OpenDocumentWithPassword(
                package_id=package_id,
                invitation=invitation[1],
                password=SecretStr(story.access_code),
            ),
        )

        self.step(STEP_5)
        await self.send(
            "request_otp", auth.RequestDocumentOtp(package_id=package_id, invitation=invitation[2])
        )
        right = self.latest_code(story.mobile)
        for attempt in (1, 2, 3):
            await self.send(
                f"wrong_{attempt}",
                auth.VerifyDocumentOtp(
                    package_id=package_id,
                    invitation=invitation[2],
                    code=SecretStr(wrong_code(right, attempt)),
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

        self.step(STEP_6)
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
        invitation[2] = self.kept(fresh.reply.invitation)

        self.step(STEP_7)
        await self.send(
            "request_again",
            auth.RequestDocumentOtp(package_id=package_id, invitation=invitation[2]),
        )
        await self.send(
            "open_2",
            auth.VerifyDocumentOtp(
                package_id=package_id,
                invitation=invitation[2],
                code=SecretStr(self.latest_code(story.mobile)),
            ),
        )

        self.step(STEP_8)
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


STEP_3 = "3. SigningHub's sample body sets SMS OTP on signer 2; BoldSign's sets an access code on signer 1"
STEP_4 = "4. Signer 1 opens with the access code (and the invitation from their signing link)"
STEP_5 = "5. Signer 2 asks for a code, enters three wrong ones and is locked"
STEP_6 = "6. The owner unlocks signer 2 (signer 1 is untouched); signer 2's old link stops working"
STEP_7 = "7. Signer 2, with the new link, asks for a new code, reads it from the sandbox outbox, and opens"
STEP_8 = "8. The package's history"


@dataclass(frozen=True)
class Story:
    """One run's names and secrets: a user of its own, a package, a mobile number, an access code."""

    user: str
    password: str
    package_id: str
    mobile: str
    access_code: str

    @classmethod
    def new(cls) -> Story:
        run = uuid.uuid4().hex[:6]
        return cls(
            user=f"demo-{run}@example.com",
            password=secrets.token_urlsafe(12),
            package_id=f"demo-{run}",
            mobile=f"+447700900{secrets.randbelow(1000):03d}",
            access_code=f"AC-{secrets.randbelow(10**6):06d}",
        )

    def access_code_body(self) -> dict[str, Any]:
        """BoldSign's AccessCode body (seed 001) for signer 1."""
        return {
            "emailId": "alice@example.com",
            "authenticationType": "AccessCode",
            "accessCode": self.access_code,
        }


def wrong_code(right: str, attempt: int) -> str:
    """A code of the right length that is not ``right``."""
    return str((int(right) + attempt) % 10 ** len(right)).zfill(len(right))


CREDENTIAL_HEADERS = ("Authorization", "X-API-KEY", "X-Recipient-Invitation", "SOAPAction")


@dataclass(kw_only=True)
class HttpDemo(Demo):
    """The demo's story over HTTP through the gateway (what no vendor's call does, over Kafka);
    ``responses`` keeps every answer."""

    http: httpx.AsyncClient
    responses: dict[str, httpx.Response] = field(default_factory=dict)

    async def call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        shown: Any = None,
        **options: Any,
    ) -> httpx.Response:
        """One request, printed as sent (credential headers named, their values never shown)
        and as answered; ``shown`` stands for a body that is not JSON."""
        headers = options.get("headers") or {}
        named = " ".join(f"[{h}]" for h in CREDENTIAL_HEADERS if h in headers)
        response = await self.http.request(method, path, **options)
        request = response.request
        target = request.url.raw_path.decode()
        self.show(
            http_line(
                "→",
                f"{method} {target}  {named}".rstrip(),
                shown or options.get("json"),
                width=self.width,
            )
        )
        answered: Any = response.reason_phrase
        if response.headers.get("content-type", "").startswith("application/json"):
            answered = response.json()
        self.show(
            http_line(
                "←",
                f"{response.status_code} {response.reason_phrase}",
                answered if isinstance(answered, dict) else None,
                width=self.width,
                failed=response.status_code >= 400,
            )
        )
        self.responses[name] = response
        return response

    async def authenticate(self, user: str, password: str) -> SecretStr:
        """AssureSign's AuthenticateUser (seed 004's XML): the token from its answer."""
        request = AUTHENTICATE_USER.format(
            user=escape(user, {'"': "&quot;"}), password=escape(password, {'"': "&quot;"})
        )
        response = await self.call(
            "authenticate_user",
            "POST",
            ASSURESIGN_PATH,
            content=request.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION},
            shown={"UserName": user, "Password": "•••"},
        )
        result = ElementTree.fromstring(response.content).find(
            f"{{{ASSURESIGN_NAMESPACE}}}AuthenticateUserResult"
        )
        assert result is not None and result.get("Success") == "true", response.text
        self.show(
            http_line(
                "←",
                "AuthenticateUserResult",
                {
                    "Success": "true",
                    "AuthenticationToken": HIDDEN,
                    "UserName": result.get("UserName"),
                },
                width=self.width,
            )
        )
        return self.kept(result.get("AuthenticationToken", ""))

    async def run(self) -> str:
        """Every step of the demo; returns the package id."""
        story = Story.new()
        self.kept(story.password)
        self.kept(story.access_code)
        package_id = story.package_id
        recipient = f"/v3/packages/{package_id}/workflow"

        self.step(
            "1. An API user is registered by the operator (Kafka) and authenticates over HTTP (token 30 min)"
        )
        await self.register_user(story.user, story.password)
        token = await self.authenticate(story.user, story.password)
        owner = {"Authorization": f"Bearer {token.get_secret_value()}"}
        issued = (
            await self.send(
                "issue_api_key",
                idn.IssueApiKey(user_name=story.user, name="demo", access_token=token),
            )
        ).accepted()
        assert isinstance(issued.reply, idn.IssuedApiKey), issued.reply
        api_key = {"X-API-KEY": self.kept(issued.reply.api_key).get_secret_value()}

        self.step("2. A package with two signers is registered (Kafka)")
        await self.register_package(package_id, token, story.mobile)

        self.step(STEP_3 + " (then shared, over Kafka)")
        await self.call(
            "set_sms_otp",
            "PUT",
            f"{recipient}/2/authentication",
            headers=owner,
            json=sms_otp_body(story.mobile, datetime.now(UTC)),
        )
        await self.call(
            "add_access_code",
            "PATCH",
            "/v1/document/addAuthentication",
            params={"documentId": package_id},
            headers=api_key,
            json=story.access_code_body(),
        )
        invitation = await self.share(package_id, token)

        def link(order: int) -> dict[str, str]:
            return {"X-Recipient-Invitation": invitation[order].get_secret_value()}

        self.step(STEP_4)
        await self.call(
            "open_1",
            "POST",
            f"{recipient}/1/authentication/password",
            headers=link(1),
            json={"password": story.access_code},
        )

        self.step(STEP_5)
        otp = f"{recipient}/2/authentication/otp"
        await self.call("request_otp", "POST", otp, headers=link(2))
        right = self.latest_code(story.mobile)
        for attempt in (1, 2, 3):
            await self.call(
                f"wrong_{attempt}",
                "POST",
                otp,
                headers=link(2),
                json={"otp": wrong_code(right, attempt)},
            )
        await self.call("while_locked", "POST", otp, headers=link(2), json={"otp": right})

        self.step(STEP_6 + "; the answer carries the new one")
        reset = await self.call(
            "reset", "PUT", f"{recipient}/2/authentication/reset", headers=owner, json={}
        )
        await self.call("stale_link", "POST", otp, headers=link(2))
        invitation[2] = self.kept(reset.json()["invitation"])

        self.step(STEP_7)
        await self.call("request_again", "POST", otp, headers=link(2))
        await self.call(
            "open_2", "POST", otp, headers=link(2), json={"otp": self.latest_code(story.mobile)}
        )

        self.step(STEP_8)
        history = await self.call("history", "GET", f"/v3/packages/{package_id}/log", headers=owner)
        self.console.print(history_table(package_id, entries_of(history.json())))
        return package_id


def entries_of(history: dict[str, Any]) -> list[wf.HistoryEntry]:
    """Get Workflow History's actions as the history table shows entries."""
    return [
        wf.HistoryEntry(
            sequence=action["log_id"],
            occurred_at=action["date_time"],
            recorded_at=action["date_time"],
            actor=action["actor"],
            action=action["action_type"].lower(),
            order=action["order"],
            details=action["details"],
        )
        for action in history["actions"]
    ]


async def demo(bootstrap: str, console: Console, gateway_url: str | None) -> None:
    """The demo over HTTP at ``gateway_url``, or over Kafka without one."""
    outbox = DATA_DIR / "sandbox-outbox.jsonl"
    async with SignGateClient(bootstrap, reply_topic(), **signgate_client_options()) as client:
        if gateway_url is None:
            await Demo(client, mint_operator_token("demo"), outbox, console).run()
            return
        async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
            await HttpDemo(client, mint_operator_token("demo"), outbox, console, http=http).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="every step as a Kafka command (the default: over HTTP through the gateway)",
    )
    arguments = parser.parse_args(argv)
    console = make_console()
    try:
        bootstrap = find_bootstrap()
        gateway_url = None if arguments.kafka else find_gateway()
        asyncio.run(demo(bootstrap, console, gateway_url))
    except NoStack as error:
        console.print(Text(str(error), style="red"))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
