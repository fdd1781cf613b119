"""Code messages in the recipient's language with the sender's brand, through workflow, authentication
and OTP dispatch on real Postgres and Redis, delivered to a real HTTP SMS gateway and a real SMTP
server (aiosmtpd); and hostile brands and locales refused at the contract."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest

from services.authentication.app import DEFINITION as AUTHENTICATION
from services.identity.app import DEFINITION as IDENTITY
from services.otp_dispatch.app import DEFINITION as OTP_DISPATCH
from services.workflow.app import DEFINITION as WORKFLOW
from signgate_contracts import Command
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.identity import AccountMembership, RegisterUser, UpdateUserProfile
from signgate_contracts.topics import (
    AUTHENTICATION_EVENTS,
    IDENTITY_EVENTS,
    OTP_EVENTS,
    OTP_REQUESTS,
    WORKFLOW_COMMANDS,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
)
from tests.support.component import ComponentService, ComponentStack, Published, on, outcome
from tests.support.otp_servers import SmsGateway, SmtpSink, code_in, smtp_server, text_body
from tests.support.scanning import leaks

AMELIE, BOB = "+33612345678", "+447700900311"
CHLOE, DAVE = "chloe@example.com", "dave@example.com"


@dataclass
class Services:
    identity: ComponentService
    workflow: ComponentService
    authentication: ComponentService
    otp_dispatch: ComponentService
    gateway: SmsGateway
    mail: SmtpSink
    published: list[Published]

    async def to_identity(self, command: Command) -> Published:
        """An identity command, its facts handed on to authentication; its outcome."""
        published = await self.identity.handle(command)
        await self.authentication.handle_published(on(published, IDENTITY_EVENTS))
        return outcome(published, IDENTITY_EVENTS)

    async def to_workflow(self, command: Command) -> Published:
        """A workflow command, its facts handed on to authentication; its outcome."""
        published = await self.workflow.handle(command)
        self.published += published
        await self.authentication.handle_published(on(published, WORKFLOW_EVENTS))
        return outcome(published, WORKFLOW_REPLIES if on(published, WORKFLOW_REPLIES) else WORKFLOW_EVENTS)

    async def to_authentication(self, command: Command) -> Published:
        """An authentication command, its OTP requests through OTP dispatch and the answers back."""
        published = await self.authentication.handle(command)
        if requests := on(published, OTP_REQUESTS):
            answers = await self.otp_dispatch.handle_published(requests)
            published = await self.authentication.handle_published(on(answers, OTP_EVENTS))
            self.published += answers
        self.published += published
        return outcome(published, AUTHENTICATION_EVENTS)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SmsGateway, SmtpSink, int]]:
    with SmsGateway() as gateway, smtp_server() as (sink, port):
        yield gateway, sink, port


@pytest.fixture(scope="module")
async def services(stack: ComponentStack, servers: tuple[SmsGateway, SmtpSink, int]) -> AsyncIterator[Services]:
    gateway, sink, port = servers
    async with (
        stack.service(IDENTITY) as identity,
        stack.service(WORKFLOW) as workflow,
        stack.service(AUTHENTICATION) as authentication,
        stack.service(OTP_DISPATCH, sms_provider="http", sms_gateway_url=gateway.url, email_provider="smtp",
                      smtp_port=port, brand_name="Signgate Demo", delivery_retry_delay_seconds=0.01) as otp_dispatch,
    ):
        yield Services(identity, workflow, authentication, otp_dispatch, gateway, sink, [])


async def shared(services: Services, token: str) -> tuple[str, dict[int, Secret]]:
    """Amélie (1, SMS, SigningHub body, fr-CA, the sender's brand), Bob (2, SMS, BoldSign body, no
    locale), Chloé (3, email, BoldSign body, fr, the sender's brand), Dave (4, email, no locale)."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    people = [(1, "amelie@example.com", "Amélie", AMELIE), (2, "bob@example.com", "Bob", BOB),
              (3, CHLOE, "Chloé", None), (4, DAVE, "Dave", None)]
    commands: list[Command] = [
        wf.RegisterPackage(package_id=package_id, name="Bail", access_token=token,
                           documents=[wf.DocumentSpec(document_id="doc-1", name="bail.pdf")],
                           recipients=[wf.RecipientSpec(order=order, email=email, name=name, mobile_number=mobile)
                                       for order, email, name, mobile in people]),
        wf.UpdateRecipientAuthentication.model_validate({"package_id": package_id, "access_token": token, "order": 1,
            "body": {"authentication": {"enabled": True, "sms_otp": {"enabled": True, "mobile_number": AMELIE},
                                        "locale": "fr-CA", "brand_name": "Baux Dupont"}}}),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "emailId": "bob@example.com", "authenticationType": "SMSOTP"}}),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "emailId": CHLOE, "authenticationType": "EmailOTP", "locale": "fr", "brandName": "Baux Dupont"}}),
        wf.AddAuthentication.model_validate({"package_id": package_id, "access_token": token, "body": {
            "emailId": DAVE, "authenticationType": "EmailOTP"}}),
    ]
    for command in commands:
        answer = await services.to_workflow(command)
        assert answer.type != "command.rejected", answer.document
    reply = await services.to_workflow(wf.ShareWorkflow(package_id=package_id, access_token=token))
    return package_id, {item["order"]: Secret(item["invitation"]) for item in reply["invitations"]}


def text_of(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a delivered email."""
    page = message.get_body(("html",))
    assert page is not None
    return text_body(message), page.get_content()


async def test_each_recipient_gets_the_code_in_their_language_with_the_senders_brand(
    services: Services, stack: ComponentStack
) -> None:
    """A recipient the sender set to fr-CA gets a French SMS, and one set to fr a French email (text
    and HTML), both under the sender's brand; recipients without a locale get English under the
    deployment's brand; the French code opens the document; no event carries a code or a destination."""
    token = stack.token_issuer().issue(str(uuid.uuid4()), "owner").token
    package_id, invitations = await shared(services, token)

    sent = [await services.to_authentication(auth.RequestDocumentOtp(package_id=package_id, invitation=invitations[n]))
            for n in (1, 2, 3, 4)]
    [amelie_sms], [bob_sms] = services.gateway.to(AMELIE), services.gateway.to(BOB)
    [chloe_mail], [dave_mail] = services.mail.to(CHLOE), services.mail.to(DAVE)
    chloe_text, chloe_html = text_of(chloe_mail)
    dave_text, dave_html = text_of(dave_mail)
    amelie_code = code_in(amelie_sms.body["text"])
    opened = await services.to_authentication(auth.VerifyDocumentOtp(package_id=package_id, invitation=invitations[1],
                                                                     code=amelie_code))

    assert [s["type"] for s in sent] == ["authentication.document_otp_sent"] * 4
    assert amelie_sms.body["text"] == (f"Votre code Baux Dupont pour ouvrir votre document est {amelie_code}. "
                                       "Il expire dans 5 minutes. Ne le communiquez à personne.")
    assert bob_sms.body["text"] == (f"Your Signgate Demo code to open your document is {code_in(bob_sms.body['text'])}."
                                    " It expires in 5 minutes. Do not share it with anyone.")
    assert chloe_mail["Subject"] == "Votre code Baux Dupont"
    assert "Votre code Baux Dupont pour ouvrir votre document est :" in chloe_text
    assert code_in(chloe_text) in chloe_html and "Il expire dans 5 minutes." in chloe_html
    assert dave_mail["Subject"] == "Your Signgate Demo code"
    assert "Your Signgate Demo code to open your document is:" in dave_text and code_in(dave_text) in dave_html
    assert opened["type"] == "authentication.recipient_authenticated"
    on_the_bus = [p.value.decode() for p in services.published if p.topic != OTP_REQUESTS.name]
    assert leaks(on_the_bus, [amelie_code, code_in(chloe_text), AMELIE, BOB, CHLOE, DAVE]) == []


async def test_the_sender_reads_back_the_locale_and_brand_set(services: Services, stack: ComponentStack) -> None:
    """The owner's query of a recipient shows the locale and brand the policy holds."""
    token = stack.token_issuer().issue(str(uuid.uuid4()), "owner").token
    package_id, _ = await shared(services, token)

    described = await services.to_workflow(wf.GetRecipientAuthentication(package_id=package_id, order=1,
                                                                          access_token=token))

    assert (described["authentication"]["locale"], described["authentication"]["brand_name"]) == ("fr-CA", "Baux Dupont")


async def test_a_signer_gets_signer_codes_in_the_language_of_their_profile(
    services: Services, stack: ComponentStack
) -> None:
    """An API user whose profile says fr gets the signing code in French; once the profile no longer
    gives a language, in the default locale."""
    mobile, account = "+33612345699", AccountMembership(name="Baux", context_identifier=uuid.uuid4(), is_primary=True)
    operator = stack.token_issuer().issue("operator:tests", "operator:tests", roles=["admin"]).token
    name = f"signer-{uuid.uuid4().hex[:6]}@example.com"
    registered = await services.to_identity(RegisterUser(user_name=name, mobile_number=mobile, locale="fr",
                                                         accounts=[account], access_token=operator))
    assert registered.type == "identity.user_registered_v2", registered.document
    user_id = registered["user_id"]
    token = stack.token_issuer().issue(user_id, name, accounts=[str(account.context_identifier)]).token
    package_id, _ = await shared(services, token)

    def signing_code() -> auth.RequestSigningOtp:
        return auth.RequestSigningOtp(package_id=package_id, document_id="doc-1", field_name=f"f-{uuid.uuid4().hex[:4]}",
                                      access_token=token)

    french = await services.to_authentication(signing_code())
    await services.to_identity(UpdateUserProfile(user_name=name, mobile_number=mobile, access_token=operator))
    english = await services.to_authentication(signing_code())

    assert (french["type"], english["type"]) == ("authentication.signing_otp_sent",) * 2
    [first, second] = [posted.body["text"] for posted in services.gateway.to(mobile)]
    assert first.startswith("Votre code Signgate Demo pour signer votre document est ")
    assert second.startswith("Your Signgate Demo code to sign your document is ")


def raw(type_: str, token: str, package_id: str, body: dict[str, Any], **fields: Any) -> tuple[bytes, str]:
    correlation_id = str(uuid.uuid4())
    command = {"type": type_, "correlation_id": correlation_id, "package_id": package_id,
               "access_token": token, "body": body, **fields}
    return json.dumps(command).encode(), correlation_id


@pytest.mark.parametrize(
    ("type_", "body", "order", "field"),
    [
        ("workflow.update_recipient_authentication",
         {"authentication": {"enabled": True, "sms_otp": {"enabled": True, "mobile_number": AMELIE},
                             "brand_name": "Refund at evil.com"}}, 1, "body.authentication.brand_name"),
        ("workflow.update_recipient_authentication",
         {"authentication": {"enabled": True, "sms_otp": {"enabled": True, "mobile_number": AMELIE},
                             "brand_name": "Acme\nNew code: 000000"}}, 1, "body.authentication.brand_name"),
        ("workflow.add_authentication",
         {"emailId": "bob@example.com", "authenticationType": "SMSOTP", "brandName": "Call 0800 5550199"}, None,
         "body.brandName"),
        ("workflow.add_authentication",
         {"emailId": "bob@example.com", "authenticationType": "SMSOTP", "locale": "../../etc/fr"}, None, "body.locale"),
    ],
)
async def test_a_hostile_brand_or_locale_is_a_400_naming_the_field(
    services: Services, stack: ComponentStack, type_: str, body: dict[str, Any], order: int | None, field: str
) -> None:
    """A brand that holds a domain, a line break or a phone number, or a locale that is a path, is
    rejected 400 at the contract, naming the field, without echoing the value; the policy stays."""
    token = stack.token_issuer().issue(str(uuid.uuid4()), "owner").token
    package_id, _ = await shared(services, token)
    record, correlation_id = raw(type_, token, package_id, body, **({"order": order} if order else {}))

    published = await services.workflow.handle(record, WORKFLOW_COMMANDS, key=package_id)

    [rejected] = [p for p in on(published, WORKFLOW_EVENTS) if p["correlation_id"] == correlation_id]
    assert (rejected["type"], rejected["status"], rejected["code"], rejected["field"]) == (
        "command.rejected", 400, "invalid_command", field)
    assert b"evil.com" not in rejected.value and b"0800" not in rejected.value and b"etc" not in rejected.value
    described = await services.to_workflow(wf.GetRecipientAuthentication(package_id=package_id, order=1,
                                                                          access_token=token))
    assert described["authentication"]["brand_name"] == "Baux Dupont"
