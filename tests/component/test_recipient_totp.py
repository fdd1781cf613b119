"""Recipients who open with an authenticator app (method ``totp``), through workflow and
authentication without a broker: a secret workflow provisions for the recipient (its otpauth URI
answered to the sender only), or the authenticator app of the API user named as the recipient's
signer (identity's ``AuthenticatorConfirmed``, published here as identity publishes it). A code
opens once; a used one is refused without spending an attempt; wrong ones spend the recipient's
one retry count, shared with every other method."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from services.authentication.app import DEFINITION as AUTHENTICATION
from services.workflow.app import DEFINITION as WORKFLOW
from signgate_contracts import Command
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.topics import (
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
)
from tests.support.clock import MovableClock
from tests.support.component import (
    ON_SERVER_AND_CLUSTER,
    ComponentService,
    ComponentStack,
    Published,
    on,
    outcome,
)
from tests.support.scanning import leaks
from tests.support.signing import authentication_sealer

pytestmark = ON_SERVER_AND_CLUSTER

PASSWORD = "Acme-7391-Pass"


@dataclass
class Services:
    workflow: ComponentService
    authentication: ComponentService
    stack: ComponentStack
    clock: MovableClock
    published: list[Published]
    """Everything both services published in the module, to scan."""

    async def to_workflow(self, command: Command) -> list[Published]:
        """A workflow command; its facts handed on to authentication, as the bus would."""
        published = await self.workflow.handle(command)
        self.published += published
        self.published += await self.authentication.handle_published(on(published, WORKFLOW_EVENTS))
        return published

    async def to_authentication(self, message: Any) -> Published:
        """A command's outcome on authentication's events topic (or a fact's effects: none)."""
        published = await self.authentication.handle(message)
        self.published += published
        return outcome(published, AUTHENTICATION_EVENTS)

    def code(self, secret: str, *, steps: int = 0) -> str:
        """The code an authenticator app shows now (by the services' clock), ``steps`` later."""
        return pyotp.TOTP(secret).at(self.clock() + timedelta(seconds=30 * steps))

    def wrong_code(self, secret: str) -> str:
        """A code no step of the drift window has."""
        valid = {self.code(secret, steps=n) for n in (-1, 0, 1)}
        return next(c for c in (f"{n:06d}" for n in range(1000, 999999, 7919)) if c not in valid)


@pytest.fixture(scope="module")
async def services(stack: ComponentStack) -> AsyncIterator[Services]:
    clock = MovableClock()
    async with (
        stack.service(WORKFLOW) as workflow,
        stack.service(AUTHENTICATION, clock=clock) as authentication,
    ):
        yield Services(workflow, authentication, stack, clock, [])


@pytest.fixture(autouse=True)
def wall_clock(services: Services):
    yield
    services.clock.reset()


def owner_token(services: Services) -> str:
    return services.stack.token_issuer().issue(str(uuid.uuid4()), "owner").token


async def registered(services: Services, token: str, signer: uuid.UUID | None = None) -> str:
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    [event] = on(await services.to_workflow(wf.RegisterPackage(
        package_id=package_id, name="Lease", access_token=token,
        documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
        recipients=[wf.RecipientSpec(order=1, email="carol@example.com", name="Carol", signer_user_id=signer)])),
        WORKFLOW_EVENTS)
    assert event.type == "workflow.package_registered", event.document
    return package_id


def signinghub_totp(package_id: str, token: str, *, source: str = "provisioned", password: bool = False,
                    apply_to_all: bool = False) -> wf.UpdateRecipientAuthentication:
    return wf.UpdateRecipientAuthentication.model_validate({
        "package_id": package_id, "access_token": token, "order": 1, "body": {
            "apply_to_all": apply_to_all, "authentication": {
                "enabled": True, "password": {"enabled": password, "user_password": PASSWORD if password else ""},
                "totp": {"enabled": True, "source": source}}}})


async def shared(services: Services, package_id: str, token: str) -> Secret:
    """The package shared; recipient 1's invitation."""
    reply = outcome(await services.to_workflow(wf.ShareWorkflow(package_id=package_id, access_token=token)),
                    WORKFLOW_REPLIES)
    return Secret(reply["invitations"][0]["invitation"])


def verify(package_id: str, invitation: Secret, code: str) -> auth.VerifyDocumentTotp:
    return auth.VerifyDocumentTotp(package_id=package_id, invitation=invitation, code=code)


async def status(services: Services, package_id: str, invitation: Secret) -> Published:
    published = await services.authentication.handle(
        auth.GetRecipientAuthenticationStatus(package_id=package_id, invitation=invitation))
    return outcome(published, AUTHENTICATION_REPLIES)


async def user_with_authenticator(
    services: Services, accounts: list[uuid.UUID] | None = None
) -> tuple[uuid.UUID, str, idn.AuthenticatorConfirmed]:
    """An API user whose confirmed authenticator identity announced (its secret sealed to
    authentication, as identity seals it), a member of ``accounts``."""
    user, secret = uuid.uuid4(), pyotp.random_base32()
    confirmed = idn.AuthenticatorConfirmed(
        user_id=user,
        authenticator_id=uuid.uuid4(),
        changed_by="user",
        secret_sealed=authentication_sealer().seal(idn.user_totp_context(user), secret),
        accounts=accounts or [],
    )
    assert await services.authentication.handle(confirmed) == []
    return user, secret, confirmed


async def signed_for(services: Services, token: str, user: uuid.UUID) -> tuple[str, Secret]:
    """A new package whose recipient's signer is ``user``, opening with the user's authenticator
    (BoldSign's addAuthentication), shared: its id and the recipient's invitation."""
    package_id = await registered(services, token, signer=user)
    [event] = on(
        await services.to_workflow(
            wf.AddAuthentication.model_validate(
                {
                    "package_id": package_id,
                    "access_token": token,
                    "body": {
                        "emailId": "carol@example.com",
                        "authenticationType": "TOTP",
                        "totpSource": "user_authenticator",
                    },
                }
            )
        ),
        WORKFLOW_EVENTS,
    )
    assert event.type == "workflow.recipient_authentication_updated_v2", event.document
    return package_id, await shared(services, package_id, token)


async def test_a_provisioned_secret_reaches_only_the_sender_and_its_code_opens_once(services: Services) -> None:
    """The sender asks for a provisioned TOTP secret: the otpauth URI and the secret are answered on
    the replies topic only (the policy event carries them sealed, neither in clear); the app's code
    opens the package once (a grant), the same code again is refused as used (409) and leaves
    the recipient's attempts as they were, and the next step's code opens again."""
    token = owner_token(services)
    package_id = await registered(services, token)
    setting = await services.to_workflow(signinghub_totp(package_id, token))
    provisioned = outcome(setting, WORKFLOW_REPLIES)
    secret, uri = provisioned["secret"], provisioned["otpauth_uri"]
    invitation = await shared(services, package_id, token)

    code = services.code(secret)
    first = await services.authentication.handle(verify(package_id, invitation, code))
    again = await services.to_authentication(verify(package_id, invitation, code))
    after_replay = await status(services, package_id, invitation)
    services.clock.advance(timedelta(seconds=30))
    next_step = await services.to_authentication(verify(package_id, invitation, services.code(secret)))

    assert provisioned["type"] == "workflow.recipient_totp_provisioned" and provisioned["order"] == 1
    query = parse_qs(urlparse(uri).query)
    assert uri.startswith("otpauth://totp/") and query["secret"] == [secret] and query["issuer"] == ["signgate"]
    [policy_event] = on(setting, WORKFLOW_EVENTS)
    sealed_policy = policy_event["authentication"]
    assert sealed_policy["methods"] == ["totp"] and sealed_policy["totp_source"] == "provisioned"
    assert sealed_policy["totp_authenticator_id"] == provisioned["authenticator_id"]
    assert sealed_policy["totp_sealed"] and secret not in policy_event.value.decode()
    assert outcome(first, AUTHENTICATION_EVENTS).type == "authentication.recipient_authenticated"
    assert outcome(first, AUTHENTICATION_EVENTS)["method"] == "totp"
    assert outcome(first, AUTHENTICATION_REPLIES).type == "authentication.document_access_granted"
    assert (again["type"], again["status"], again["code"]) == ("command.rejected", 409, "totp_code_used")
    assert (after_replay["attempts_used"], after_replay["attempts_remaining"]) == (0, 3)
    assert next_step.type == "authentication.recipient_authenticated"
    not_replies = [p.value.decode() for p in services.published
                   if p.topic not in (WORKFLOW_REPLIES.name, AUTHENTICATION_REPLIES.name)]
    assert leaks(not_replies, [secret, uri, secret.lower()]) == []


async def test_wrong_codes_lock_the_recipient_and_the_senders_reset_clears_the_count(services: Services) -> None:
    """Three wrong codes lock a recipient with the default retry count (the third says locked out);
    the right code is then refused as locked; the sender's reset (seed 003) with a new provisioned
    secret clears the lock and the count, and the new secret's code opens while the old one's does not."""
    token = owner_token(services)
    package_id = await registered(services, token)
    old = outcome(await services.to_workflow(signinghub_totp(package_id, token)), WORKFLOW_REPLIES)["secret"]
    invitation = await shared(services, package_id, token)

    wrong = [await services.to_authentication(verify(package_id, invitation, services.wrong_code(old)))
             for _ in range(3)]
    while_locked = await services.to_authentication(verify(package_id, invitation, services.code(old)))
    resetting = await services.to_workflow(wf.ResetRecipientAuthentication(
        package_id=package_id, order=1, access_token=token, totp_source="provisioned"))
    new = outcome(resetting, WORKFLOW_REPLIES)["secret"]
    issued = outcome(await services.to_workflow(wf.IssueRecipientInvitation(
        package_id=package_id, order=1, access_token=token)), WORKFLOW_REPLIES)
    invitation = Secret(issued["invitation"])
    with_old = await services.to_authentication(verify(package_id, invitation, services.code(old)))
    with_new = await services.to_authentication(verify(package_id, invitation, services.code(new)))

    assert [(w["type"], w.get("attempts_remaining")) for w in wrong] == [
        ("authentication.recipient_authentication_failed", 2),
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]
    assert wrong[0]["method"] == "totp"
    assert (while_locked["status"], while_locked["code"]) == (403, "recipient_locked")
    assert outcome(resetting, WORKFLOW_EVENTS).type == "workflow.recipient_authentication_reset_v2"
    assert new != old
    assert (with_old["type"], with_old["attempts_remaining"]) == ("authentication.recipient_authentication_failed", 2)
    assert with_new["type"] == "authentication.recipient_authenticated"


async def test_one_retry_count_is_shared_by_a_password_and_totp(services: Services) -> None:
    """A recipient who must pass a password and a TOTP code is locked by three wrong attempts of
    both kinds together (two passwords, one code), not three of each; a right password does not
    clear the wrong code."""
    token = owner_token(services)
    package_id = await registered(services, token)
    secret = outcome(await services.to_workflow(signinghub_totp(package_id, token, password=True)),
                     WORKFLOW_REPLIES)["secret"]
    invitation = await shared(services, package_id, token)

    code = await services.to_authentication(verify(package_id, invitation, services.wrong_code(secret)))
    right_password = await services.to_authentication(auth.OpenDocumentWithPassword(
        package_id=package_id, invitation=invitation, password=PASSWORD))
    wrong_passwords = [await services.to_authentication(auth.OpenDocumentWithPassword(
        package_id=package_id, invitation=invitation, password=f"Wrong-pass-{n}")) for n in (1, 2)]

    assert (code["type"], code["attempts_remaining"]) == ("authentication.recipient_authentication_failed", 2)
    assert right_password.type == "authentication.recipient_authenticated"  # one of two methods passed
    assert [(w.type, w.get("attempts_remaining")) for w in wrong_passwords] == [
        ("authentication.recipient_authentication_failed", 1),
        ("authentication.recipient_locked_out", None),
    ]


async def test_an_api_users_authenticator_opens_for_the_recipients_they_sign_for(services: Services) -> None:
    """A recipient whose named signer is an API user with a confirmed authenticator opens with its
    codes; the same code is then refused as used for another package that user signs for (one
    subject for the user); while the user is disabled their codes open nothing (403), and once
    identity says the authenticator is removed, nothing either (400)."""
    token = owner_token(services)
    user, secret, confirmed = await user_with_authenticator(services)
    invitations = [await signed_for(services, token, user) for _ in range(2)]

    code = services.code(secret)
    opened = await services.to_authentication(verify(*invitations[0], code))
    elsewhere = await services.to_authentication(verify(*invitations[1], code))
    await services.authentication.handle(idn.UserDisabledV2(user_id=user))
    services.clock.advance(timedelta(seconds=30))
    while_disabled = await services.to_authentication(verify(*invitations[1], services.code(secret)))
    await services.authentication.handle(idn.UserEnabledV2(user_id=user))
    assert await services.authentication.handle(idn.AuthenticatorRemoved(
        user_id=user, authenticator_id=confirmed.authenticator_id, changed_by="administrator")) == []
    services.clock.advance(timedelta(seconds=30))
    removed = await services.to_authentication(verify(*invitations[1], services.code(secret)))

    assert (opened["type"], opened["method"]) == ("authentication.recipient_authenticated", "totp")
    assert (elsewhere["status"], elsewhere["code"]) == (409, "totp_code_used")
    assert (while_disabled["status"], while_disabled["code"]) == (403, "account_disabled")
    assert (removed["status"], removed["code"]) == (400, "totp_without_authenticator")


async def test_totp_without_an_authenticator_or_for_every_recipient_is_refused(services: Services) -> None:
    """TOTP from the user's authenticator for a recipient with no named API user is a 400 naming the
    field; so is a provisioned secret for every recipient at once (apply_to_all); neither changes
    the recipient's policy."""
    token = owner_token(services)
    package_id = await registered(services, token)
    unbound = outcome(await services.to_workflow(signinghub_totp(package_id, token, source="user_authenticator")),
                      WORKFLOW_EVENTS)
    to_all = await services.to_workflow(signinghub_totp(package_id, token, apply_to_all=True))
    reset = outcome(await services.to_workflow(wf.ResetRecipientAuthentication(
        package_id=package_id, order=1, access_token=token, method="totp")), WORKFLOW_EVENTS)

    assert (unbound["status"], unbound["code"], unbound["field"]) == (
        400, "totp_without_authenticator", "body.authentication.totp.source")
    assert on(to_all, WORKFLOW_REPLIES) == []  # no secret answered for a refused command
    assert (outcome(to_all, WORKFLOW_EVENTS)["status"], outcome(to_all, WORKFLOW_EVENTS)["field"]) == (
        400, "body.authentication.totp.source")
    assert (reset["status"], reset["code"], reset["field"]) == (400, "totp_without_authenticator", "totp_source")


async def test_new_packages_naming_one_user_do_not_buy_more_guesses_at_their_authenticator(
    services: Services,
) -> None:
    """An owner names one API user as the signer of four packages (three attempts each, twelve in
    all): the first ten wrong codes are answered as wrong, spending each package's attempts (the
    first three packages lock); from the eleventh, every code for that user, the right one too, is
    429 totp_guesses_exhausted with the time to wait, and spends no attempt; once the window has
    passed the right code opens the fourth package."""
    token = owner_token(services)
    user, secret, _ = await user_with_authenticator(services)
    packages = [await signed_for(services, token, user) for _ in range(4)]

    answers = [
        await services.to_authentication(verify(*package, services.wrong_code(secret)))
        for package in packages[:3]
        for _ in range(3)
    ]
    tenth = await services.to_authentication(verify(*packages[3], services.wrong_code(secret)))
    eleventh = await services.to_authentication(verify(*packages[3], services.wrong_code(secret)))
    right = await services.to_authentication(verify(*packages[3], services.code(secret)))
    held = await status(services, *packages[3])
    services.clock.advance(timedelta(minutes=15))
    after_window = await services.to_authentication(verify(*packages[3], services.code(secret)))

    assert [a.type for a in answers] == [
        "authentication.recipient_authentication_failed",
        "authentication.recipient_authentication_failed",
        "authentication.recipient_locked_out",
    ] * 3
    assert (tenth.type, tenth["attempts_remaining"]) == (
        "authentication.recipient_authentication_failed",
        2,
    )
    for refused in (eleventh, right):
        assert (refused["status"], refused["code"]) == (429, "totp_guesses_exhausted")
        assert 0 < refused["retry_after_seconds"] <= 900
    assert (held["attempts_used"], held["attempts_remaining"]) == (1, 2)
    assert after_window.type == "authentication.recipient_authenticated"


async def test_a_signers_app_opens_only_packages_of_an_account_the_signer_is_a_member_of(
    services: Services,
) -> None:
    """An owner acting for an account names two API users as signers: the member's app opens
    the package; the outsider's is 403 signer_not_member without the code being checked (no
    attempt spent, no guess counted); once identity says the member left the account
    (UserUpdatedV2), their app opens that account's packages no more."""
    account, elsewhere = uuid.uuid4(), uuid.uuid4()
    token = (
        services.stack.token_issuer()
        .issue(str(uuid.uuid4()), "owner", accounts=[str(account)], primary_account=str(account))
        .token
    )
    member, member_secret, _ = await user_with_authenticator(services, [account])
    outsider, outsider_secret, _ = await user_with_authenticator(services, [elsewhere])
    for_member = await signed_for(services, token, member)
    for_outsider = await signed_for(services, token, outsider)

    opened = await services.to_authentication(verify(*for_member, services.code(member_secret)))
    refused = await services.to_authentication(
        verify(*for_outsider, services.code(outsider_secret))
    )
    untouched = await status(services, *for_outsider)
    left = idn.UserUpdatedV2(
        user_id=member,
        accounts=[idn.AccountMembership(name="Elsewhere", context_identifier=elsewhere)],
    )
    assert await services.authentication.handle(left) == []
    services.clock.advance(timedelta(seconds=30))
    after_leaving = await services.to_authentication(
        verify(*for_member, services.code(member_secret))
    )

    assert opened.type == "authentication.recipient_authenticated"
    assert (refused["status"], refused["code"]) == (403, "signer_not_member")
    assert untouched["attempts_used"] == 0
    assert (after_leaving["status"], after_leaving["code"]) == (403, "signer_not_member")
