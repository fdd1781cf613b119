"""Seed 003 over real HTTP: the owner unlocks one locked-out recipient, and nobody else changes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.gateway.errors import MALFORMED_JSON
from services.gateway.signinghub import ACCESS_GRANTED, LOCKED_OUT, UNLOCKED
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from tests.e2e.steps import authentication, invitations_of, owner_token, send, workflow
from tests.integration.gateway.test_gateway_signinghub import (
    PASSWORDS,
    answer,
    authentication_path,
    bearer,
    user_name_of,
)
from tests.support.chaos_identity import admin_token
from tests.support.system import System
from tests.support.waiting import until

PASSWORD = PASSWORDS["authentication"]["password"]["user_password"]


def reset_path(package_id: str, order: int) -> str:
    return f"{authentication_path(package_id, order)}/reset"


def password_path(package_id: str, order: int) -> str:
    return f"{authentication_path(package_id, order)}/password"


async def package(system: System, token: str, signers: int, *, shared: bool = True) -> str:
    """A parallel package whose signers all open by password (shared unless told)."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(
        system,
        wf.RegisterPackage(
            package_id=package_id,
            name="Lease",
            access_token=token,
            workflow_type="parallel",
            recipients=[
                wf.RecipientSpec(order=n, email=f"signer{n}@example.com", name=f"Signer {n}")
                for n in range(1, signers + 1)
            ],
            documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
        ),
    )
    await workflow(
        system,
        wf.UpdateRecipientAuthentication.model_validate(
            {"package_id": package_id, "order": 1, "access_token": token, "body": PASSWORDS}
        ),
    )
    if shared:
        await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=token))
        pool = system.services["authentication"].resources.pool
        await until(
            lambda: pool.fetchval(
                "SELECT count(*) = $2 FROM recipients WHERE package_id = $1 AND methods <> '{}'",
                package_id,
                signers,
            ),
            what="the authentication service's projection",
        )
    return package_id


async def lock_out(http: httpx.AsyncClient, token: str, package_id: str, order: int) -> None:
    """Wrong passwords until the recipient is locked (the retry count is 3)."""
    for _ in range(3):
        wrong = await http.post(
            password_path(package_id, order),
            json={"password": "not-it-at-all"},
            headers=bearer(token),
        )
        assert wrong.status_code == 403, wrong.text
    assert answer(wrong) == (403, {"Message": LOCKED_OUT})


async def recorded(http: httpx.AsyncClient, token: str, package_id: str, actions: set[tuple[str, int]]) -> bool:
    """Whether the package's history has these actions (the workflow records the authentication
    service's facts after that service answered)."""
    history = (await http.get(f"/v3/packages/{package_id}/log", headers=bearer(token))).json()
    return actions <= {(a["action_type"], a["order"]) for a in history["actions"]}


async def state_of(
    system: System, token: str, package_id: str, order: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the workflow and the authentication services hold of one recipient, as the owner reads them."""
    described = await send(
        system,
        "signgate.workflow.commands",
        wf.GetRecipientAuthentication(package_id=package_id, order=order, access_token=token),
        answer_on="signgate.workflow.replies",
        key=package_id,
    )
    status = await authentication(
        system,
        auth.GetRecipientAuthenticationStatus(
            package_id=package_id, order=order, access_token=token
        ),
        answer_on="signgate.authentication.replies",
    )
    assert described["type"] == "workflow.recipient_authentication_described", described
    assert status["type"] == "authentication.recipient_authentication_status", status
    for volatile in ("event_id", "correlation_id", "causation_id", "occurred_at"):
        described.pop(volatile, None)
        status.pop(volatile, None)
    return described, status


async def test_a_locked_out_recipient_is_unlocked_over_http_and_nobody_else_changes(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """Seed 003's PUT with ``{}`` unlocks signer 1 (locked by three wrong passwords): 200 says they
    were locked and returns a new invitation, with which they open with the right password; signer
    2 (received and signed) and signer 3 (locked) read exactly as before, signer 3 still locked,
    and the history has one reset, of signer 1."""
    package_id = await package(system, token, 3)
    for command in (wf.RecordRecipientReceived, wf.RecordRecipientSigned):
        await workflow(system, command(package_id=package_id, order=2, access_token=token))
    assert (
        answer(
            await http.post(
                password_path(package_id, 2), json={"password": PASSWORD}, headers=bearer(token)
            )
        )[1]["Message"]
        == ACCESS_GRANTED
    )
    await lock_out(http, token, package_id, 1)
    await lock_out(http, token, package_id, 3)
    await until(lambda: recorded(http, token, package_id, {("RECIPIENT_AUTHENTICATED", 2), ("RECIPIENT_LOCKED_OUT", 3)}),
                what="the workflow recording signer 2's opening and signer 3's lockout")
    before = {order: await state_of(system, token, package_id, order) for order in (2, 3)}

    reset = await http.put(
        reset_path(package_id, 1),
        content=b"{}",
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    opened = await http.post(
        password_path(package_id, 1),
        json={"password": PASSWORD},
        headers={"X-Recipient-Invitation": reset.json()["invitation"]},
    )
    still_locked = await http.post(
        password_path(package_id, 3), json={"password": PASSWORD}, headers=bearer(token)
    )
    after = {order: await state_of(system, token, package_id, order) for order in (2, 3)}
    history = (await http.get(f"/v3/packages/{package_id}/log", headers=bearer(token))).json()

    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert (body["Message"], body["order"], body["was_locked"]) == (UNLOCKED, 1, True)
    assert body["invitation"] and body["invitation_expires_at"].endswith("Z")
    assert opened.status_code == 200 and opened.json()["Message"] == ACCESS_GRANTED, opened.text
    assert answer(still_locked) == (403, {"Message": LOCKED_OUT})
    assert after == before
    assert before[2][0]["recipient"]["status"] == "signed" and before[3][1]["locked"] is True
    resets = [
        a["order"]
        for a in history["actions"]
        if a["action_type"] == "RECIPIENT_AUTHENTICATION_RESET"
    ]
    assert resets == [1]


async def test_the_unlock_sets_a_new_password_in_the_same_step(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """A reset with ``access_code`` and ``resend_envelope=false`` unlocks the recipient with the new
    password (the old one now refused) and returns no invitation."""
    package_id = await package(system, token, 1)
    await lock_out(http, token, package_id, 1)

    reset = await http.put(
        reset_path(package_id, 1),
        params={"resend_envelope": "false"},
        json={"access_code": "Sesame-2"},
        headers=bearer(token),
    )
    old = await http.post(
        password_path(package_id, 1), json={"password": PASSWORD}, headers=bearer(token)
    )
    new = await http.post(
        password_path(package_id, 1), json={"password": "Sesame-2"}, headers=bearer(token)
    )

    assert answer(reset) == (
        200,
        {
            "Message": UNLOCKED,
            "order": 1,
            "was_locked": True,
            "invitation": None,
            "invitation_expires_at": None,
            "totp": None,
        },
    )
    assert answer(old) == (403, {"Message": "The password is incorrect"})
    assert new.status_code == 200 and new.json()["Message"] == ACCESS_GRANTED


async def test_the_unlocks_refusals_are_seed_000s_texts_with_their_status_codes(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """Without or with a bad token 401, another account's caller 403 "Document does not belong to
    user", a locked workflow 403, an unknown package and an order nobody has 404, a terminated
    workflow 409, a code for a method without one and malformed JSON 400, each in SigningHub's
    shape; a draft package's recipient is reset with no invitation to resend."""
    other_account = idn.AccountMembership(
        name="Other Ltd", context_identifier=uuid.uuid4(), is_primary=True
    )
    stranger = await owner_token(system, accounts=[other_account])
    mine, locked, terminated = [await package(system, token, 2) for _ in range(3)]
    draft = await package(system, token, 1, shared=False)
    await workflow(system, wf.LockWorkflow(package_id=locked, access_token=token))
    await workflow(system, wf.TerminateWorkflow(package_id=terminated, access_token=token))
    await workflow(
        system,
        wf.AddAuthentication(
            package_id=mine,
            access_token=token,
            body=wf.AddAuthenticationBody(
                **{
                    "emailId": "signer2@example.com",
                    "authenticationType": "SMSOTP",
                    "phoneNumber": {"countryCode": "+44", "number": "7700900123"},
                }
            ),
        ),
    )

    async def reset_as(
        token_: str | None, package_id: str, order: int = 1, body: bytes = b"{}"
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **(bearer(token_) if token_ else {})}
        return answer(await http.put(reset_path(package_id, order), content=body, headers=headers))

    answers = {
        "no token": await reset_as(None, mine),
        "bad token": await reset_as("not-a-token", mine),
        "another account's": await reset_as(stranger, mine),
        "locked": await reset_as(token, locked),
        "unknown package": await reset_as(token, f"pkg-{uuid.uuid4().hex[:8]}"),
        "order 3": await reset_as(token, mine, 3),
        "terminated": await reset_as(token, terminated),
        "code for SMS OTP": await reset_as(token, mine, 2, b'{"access_code": "Sesame-2"}'),
        "malformed": await reset_as(token, mine, 1, b'{"access_code": '),
        "draft": await reset_as(token, draft),
    }

    assert answers == {
        "no token": (401, {"Message": "User authentication required"}),
        "bad token": (401, {"Message": "Request authorization denied"}),
        "another account's": (403, {"Message": "Document does not belong to user"}),
        "locked": (
            403,
            {"Message": "You are not allowed to perform this action on locked workflow"},
        ),
        "unknown package": (404, {"Message": "Document not found"}),
        "order 3": (404, {"Message": "No user found at given order"}),
        "terminated": (409, {"Message": "The workflow is terminated"}),
        "code for SMS OTP": (
            400,
            {"Message": "access_code applies only to password or access_code authentication"},
        ),
        "malformed": (400, {"Message": MALFORMED_JSON}),
        "draft": (
            200,
            {
                "Message": UNLOCKED,
                "order": 1,
                "was_locked": False,
                "invitation": None,
                "invitation_expires_at": None,
                "totp": None,
            },
        ),
    }


async def test_a_disabled_owner_cannot_unlock(system: System, http: httpx.AsyncClient) -> None:
    """Once identity has disabled the owner, their still-unexpired token gets seed 000's 403 "Account
    is disabled" from the unlock, and the locked recipient stays locked."""
    owner = await owner_token(system)
    package_id = await package(system, owner, 1)
    await lock_out(http, owner, package_id, 1)
    disabled = await send(system, "signgate.identity.commands", idn.DisableUser(
        user_name=user_name_of(system, owner), access_token=admin_token(system)), key="disable")
    assert disabled["type"].startswith("identity.user_disabled"), disabled

    async def refused_a_read() -> tuple[int, Any] | None:  # polled with a read: a reset could unlock
        got = answer(await http.get(authentication_path(package_id, 1), headers=bearer(owner)))
        return got if got[0] == 403 else None  # until the workflow service has heard of it

    await until(refused_a_read, what="the disabling reaching the workflow service")
    assert answer(await http.put(reset_path(package_id, 1), json={}, headers=bearer(owner))) == (
        403, {"Message": "Account is disabled"})
    pool = system.services["authentication"].resources.pool
    assert await pool.fetchval("SELECT locked_at IS NOT NULL FROM recipients WHERE package_id = $1 AND \"order\" = 1",
                               package_id) is True
