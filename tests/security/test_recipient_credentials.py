"""Issue 14's findings replayed on the real stack: recipient commands need what the recipient
holds, signers are the identity the owner named, and the bus shows no hash, contact or credential.

Each test is an attack as it was tried before the fix, and what the system now answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from libs.security.invitations import InvitationIssuer, InvitationSettings
from libs.security.tokens import generate_key_pair
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from tests.e2e.steps import (
    SharedPackage,
    authentication,
    latest_sms_code,
    new_invitation,
    owner_token,
    send,
    shared_package,
    workflow,
)
from tests.support.chaos_identity import admin_token
from tests.support.kafka import json_object
from tests.support.scanning import bus_leaks
from tests.support.system import System

ALICE_CODE = "Alice-code-5521"
BOB_MOBILE = "+447700900611"


async def two_recipients(system: System, token: str, **alice: Any) -> SharedPackage:
    """Alice (1) opens with an access code, Bob (2) with an SMS OTP."""
    tag = uuid.uuid4().hex[:6]
    return await shared_package(
        system, token,
        [wf.RecipientSpec(order=1, email=f"alice-{tag}@example.com", name="Alice", **alice),
         wf.RecipientSpec(order=2, email=f"bob-{tag}@example.com", name="Bob", mobile_number=BOB_MOBILE)],
        {"body": {"accessCode": ALICE_CODE, "authenticationType": "AccessCode", "emailId": f"alice-{tag}@example.com"}},
        {"body": {"authenticationType": "SMSOTP", "emailId": f"bob-{tag}@example.com",
                  "phoneNumber": {"countryCode": "+44", "number": BOB_MOBILE[3:]}}},
    )


def otp_requests_for(system: System, package_id: str) -> list[dict[str, Any]]:
    topic = system.connections.topic("signgate.otp.requests")
    return [body for r in system.watch.records
            if r.topic == topic and (body := json_object(r)).get("package_id") == package_id]


async def test_knowing_a_package_and_an_order_reads_sends_and_locks_nothing(system: System) -> None:
    """Before: a package id and an order were enough to read Bob's status, have codes sent to his
    phone and lock him out with three wrong codes. Now each is refused with 401 before anything is
    read, sent or counted, by order and by email alike; Bob's own link then finds him untouched."""
    token = await owner_token(system)
    shared = await two_recipients(system, token)
    package_id = shared.package_id
    attempts = [
        auth.GetRecipientAuthenticationStatus(package_id=package_id, order=2),
        auth.GetRecipientAuthenticationStatus(package_id=package_id, email="alice@example.com"),
        auth.RequestDocumentOtp(package_id=package_id, order=2),
        *(auth.VerifyDocumentOtp(package_id=package_id, order=2, code=f"{n:06d}") for n in range(3)),
        *(auth.OpenDocumentWithPassword(package_id=package_id, order=1, password=f"guess-{n}") for n in range(3)),
    ]

    refused = [await authentication(system, attempt) for attempt in attempts]
    bob = await authentication(system, auth.GetRecipientAuthenticationStatus(
        package_id=package_id, invitation=shared.invitations[2]), answer_on="signgate.authentication.replies")
    alice = await authentication(system, auth.GetRecipientAuthenticationStatus(
        package_id=package_id, invitation=shared.invitations[1]), answer_on="signgate.authentication.replies")

    assert {(r["type"], r["status"], r["code"], r["message"]) for r in refused} == {
        ("command.rejected", 401, "credential_required", "User authentication required")}
    assert otp_requests_for(system, package_id) == []  # no code was sent, so no SMS was paid for
    assert [(s["attempts_used"], s["locked"]) for s in (alice, bob)] == [(0, False), (0, False)]


async def test_a_forged_a_foreign_or_a_stale_invitation_is_refused(system: System) -> None:
    """An invitation signed with a key of the attacker's, Alice's invitation used for Bob or for
    another package, and Bob's invitation from before the owner reset his authentication: each
    401, and none of them counts a failure or sends a code."""
    token = await owner_token(system)
    shared, other = await two_recipients(system, token), await two_recipients(system, token)
    package_id = shared.package_id
    forger = InvitationIssuer(InvitationSettings(private_key=generate_key_pair().private_key))
    forged, _ = forger.issue(package_id, 2, 1, datetime.now(UTC))
    await workflow(system, wf.ResetRecipientAuthentication(package_id=package_id, order=2, access_token=token))
    stale = shared.invitations[2]

    async def request(invitation: Secret, order: int | None = None, package: str = package_id) -> dict[str, Any]:
        return await authentication(system, auth.RequestDocumentOtp(package_id=package, order=order,
                                                                    invitation=invitation))

    answers = {
        "forged": await request(Secret(forged)),
        "alice's for bob": await request(shared.invitations[1], order=2),
        "another package's": await request(other.invitations[2]),
        "stale": await request(stale),
    }
    fresh = await new_invitation(system, package_id, 2, token)
    sent = await request(fresh)

    assert {name: (a["status"], a["code"]) for name, a in answers.items()} == {
        "forged": (401, "authorization_denied"), "alice's for bob": (401, "invitation_not_valid"),
        "another package's": (401, "invitation_not_valid"), "stale": (401, "invitation_not_valid")}
    assert sent["type"] == "authentication.document_otp_sent", sent
    assert [r["destination"] for r in otp_requests_for(system, package_id)] == [BOB_MOBILE]


async def test_a_self_edited_profile_signs_nothing_and_the_named_signer_does(system: System) -> None:
    """Before: a user of another account set their profile email to a recipient's and their mobile
    to their own, and passed the signer OTP of that package. Now the signer is the API user the
    owner named: the impostor is refused 403 and no code goes to their phone; the named signer,
    in the package's account, gets the code at their own number."""
    admin = admin_token(system)
    account = idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)
    elsewhere = idn.AccountMembership(name="Other Ltd", context_identifier=uuid.uuid4(), is_primary=True)
    owner = await owner_token(system, accounts=[account])
    signer_id, _, signer = await user_with_token(system, admin, [account], "+447911123521")
    _, impostor_name, impostor = await user_with_token(system, admin, [elsewhere], "+447911123522")
    shared = await two_recipients(system, owner, signer_user_id=signer_id)
    package_id = shared.package_id
    edited = await send(system, "signgate.identity.commands", idn.UpdateUserProfile(
        user_name=impostor_name, email=f"alice@{package_id}.example.com", mobile_number="+447911123522",
        access_token=impostor), key=impostor_name)
    assert edited["type"] == "identity.user_profile_updated_v2", edited

    refused = await authentication(system, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="Signature1", access_token=impostor))
    sent = await authentication(system, auth.RequestSigningOtp(
        package_id=package_id, document_id="doc-1", field_name="Signature1", access_token=signer))

    assert (refused["status"], refused["message"]) == (403, "Document does not belong to user")
    assert sent["type"] == "authentication.signing_otp_sent", sent
    assert [r["destination"] for r in otp_requests_for(system, package_id)] == ["+447911123521"]
    assert latest_sms_code(system, "+447911123521")


async def user_with_token(system: System, admin: str, accounts: list[idn.AccountMembership],
                          mobile: str) -> tuple[uuid.UUID, str, str]:
    """A registered API user with a profile mobile: their id, user name and token."""
    name, password = f"u-{uuid.uuid4().hex[:6]}@example.com", "User-pass-7731"
    registered = await send(system, "signgate.identity.commands", idn.RegisterUser(
        user_name=name, first_name="U", last_name="Ser", password=password, mobile_number=mobile,
        accounts=accounts, access_token=admin), key=name)
    assert registered["type"].startswith("identity.user_registered"), (registered["code"], registered["message"])
    reply = await send(system, "signgate.identity.commands", idn.AuthenticateUser(user_name=name, password=password),
                       answer_on="signgate.identity.replies", key=name)
    return uuid.UUID(registered["user_id"]), name, reply["access_token"]


async def test_the_bus_shows_no_hash_contact_or_credential(system: System) -> None:
    """Everything the services published in this package's runs so far (every events, replies,
    requests and dead-letter topic): no argon2 hash outside command topics, no email or phone in
    clear on an events or dead-letter topic, no token, grant or invitation outside replies. (The
    system's teardown scans again, after every test of the package.)"""
    events = [r for r in system.watch.records if r.topic.endswith(".events")]
    assert len(events) > 20, "the scan must have something to scan"
    assert bus_leaks(system.watch.records, system.connections) == []
