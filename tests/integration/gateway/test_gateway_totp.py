"""Authenticator apps (TOTP) over real HTTP, on the real stack: a SigningHub caller and a BoldSign
caller set a recipient's TOTP and get its secret back in the answer (to them only, not cached),
the recipient opens with the app's code once, a used code is 409 and wrong ones lock as every
method's, and past the secret's ceiling of wrong codes every code is 429 with Retry-After."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pyotp

from services.authentication.domain import SIGNER_NOT_MEMBER
from services.gateway.signinghub import ACCESS_GRANTED, LOCKED_OUT
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from tests.e2e.steps import invitations_of, owner_token, send, workflow
from tests.integration.gateway.test_gateway_signinghub import answer, authentication_path, bearer
from tests.security.test_recipient_credentials import user_with_token
from tests.support.chaos_identity import admin_token
from tests.support.system import System
from tests.support.waiting import until

PROVISIONED = {
    "apply_to_all": False,
    "authentication": {"enabled": True, "totp": {"enabled": True, "source": "provisioned"}},
}


def wrong_code(secret: str) -> str:
    """A code that no step of the drift window (±1 step, with a step of margin) has now."""
    now = time.time()
    valid = {pyotp.TOTP(secret).at(now + 30 * n) for n in range(-2, 3)}
    return next(c for c in (f"{n:06d}" for n in range(1000, 999_999, 7919)) if c not in valid)


async def package(system: System, token: str, recipient: str = "ann@example.com") -> str:
    """A new package in draft with one recipient, owned by the token's user."""
    package_id = f"pkg-{uuid.uuid4().hex[:8]}"
    await workflow(
        system,
        wf.RegisterPackage(
            package_id=package_id,
            name="Lease",
            access_token=token,
            recipients=[wf.RecipientSpec(order=1, email=recipient, name="Ann")],
            documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
        ),
    )
    return package_id


async def shared_and_projected(system: System, package_id: str, token: str) -> None:
    """Share the package and wait until the authentication service holds the recipient's TOTP."""
    await invitations_of(system, wf.ShareWorkflow(package_id=package_id, access_token=token))
    pool = system.services["authentication"].resources.pool
    await until(
        lambda: pool.fetchval(
            "SELECT count(*) = 1 FROM recipients WHERE package_id = $1 AND 'totp' = ANY(methods)",
            package_id,
        ),
        what="the authentication service's projection of the recipient's TOTP",
    )


async def test_a_provisioned_secret_over_signinghub_opens_once_and_wrong_codes_lock(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """The PUT with totp provisioned answers 200 with the otpauth URI and secret, not to be cached;
    the GET shows totp enabled from a provisioned secret and neither; the app's code opens the
    document (SigningHub's text and a grant), the same code again is 409 with its text and spends
    no attempt; three wrong codes then lock the recipient as wrong passwords do, and the next
    right code is 403 locked; the unlock with a new provisioned secret (a lost phone) answers it
    in the reset's body, not to be cached, and the new secret's code opens."""
    package_id = await package(system, token)
    put = await http.put(authentication_path(package_id), json=PROVISIONED, headers=bearer(token))
    read_back = await http.get(authentication_path(package_id), headers=bearer(token))
    await shared_and_projected(system, package_id, token)
    totp_path = f"{authentication_path(package_id)}/totp"
    secret = put.json()["secret"]
    code = pyotp.TOTP(secret).now()

    opened = await http.post(totp_path, json={"otp": code}, headers=bearer(token))
    again = await http.post(totp_path, json={"otp": code}, headers=bearer(token))
    wrong = [
        await http.post(totp_path, json={"otp": wrong_code(secret)}, headers=bearer(token))
        for _ in range(3)
    ]
    locked = await http.post(
        totp_path, json={"otp": pyotp.TOTP(secret).now()}, headers=bearer(token)
    )
    reset = await http.put(
        f"{authentication_path(package_id)}/reset",
        json={"method": "totp", "totp_source": "provisioned"},
        headers=bearer(token),
    )
    new_secret = reset.json()["totp"]["secret"]
    with_new = await http.post(
        totp_path, json={"otp": pyotp.TOTP(new_secret).now()}, headers=bearer(token)
    )

    assert put.status_code == 200, put.text
    assert put.headers["cache-control"] == "no-store"
    provisioned = put.json()
    query = parse_qs(urlparse(provisioned["otpauth_uri"]).query)
    assert provisioned["otpauth_uri"].startswith("otpauth://totp/")
    assert query["secret"] == [secret] and query["issuer"] == ["signgate"]
    assert (provisioned["digits"], provisioned["algorithm"], provisioned["period_seconds"]) == (
        6,
        "SHA1",
        30,
    )
    assert read_back.status_code == 200
    assert read_back.json()["authentication"]["totp"] == {"enabled": True, "source": "provisioned"}
    assert secret not in read_back.text and "otpauth" not in read_back.text
    assert opened.status_code == 200 and opened.json()["Message"] == ACCESS_GRANTED
    assert opened.json()["access_grant"].count(".") == 2
    assert answer(again) == (409, {"Message": auth.TOTP_CODE_USED})
    assert [answer(w) for w in wrong] == [
        (403, {"Message": "The authenticator code is incorrect"}),
        (403, {"Message": "The authenticator code is incorrect"}),
        (403, {"Message": LOCKED_OUT}),
    ]
    assert locked.status_code == 403
    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    assert reset.json()["was_locked"] is True and new_secret != secret
    assert reset.json()["totp"]["otpauth_uri"].startswith("otpauth://totp/")
    assert with_new.status_code == 200 and with_new.json()["Message"] == ACCESS_GRANTED


async def test_past_the_secrets_ceiling_every_code_is_429_with_retry_after_across_resets(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """Resetting a locked recipient as is (seed 003) gives three more attempts on the same secret,
    but not more guesses at it: after ten wrong codes over three resets, the eleventh code, and
    then the right one, are 429 with a Retry-After of at most the 15-minute window, and the right
    code is refused unchecked."""
    package_id = await package(system, token)
    put = await http.put(authentication_path(package_id), json=PROVISIONED, headers=bearer(token))
    secret = put.json()["secret"]
    await shared_and_projected(system, package_id, token)
    totp_path = f"{authentication_path(package_id)}/totp"

    statuses = []
    for round_ in range(4):
        for _ in range(3 if round_ < 3 else 1):
            guess = await http.post(
                totp_path, json={"otp": wrong_code(secret)}, headers=bearer(token)
            )
            statuses.append(guess.status_code)
        if round_ < 3:
            reset = await http.put(
                f"{authentication_path(package_id)}/reset", json={}, headers=bearer(token)
            )
            assert reset.status_code == 200, reset.text
    eleventh = await http.post(totp_path, json={"otp": wrong_code(secret)}, headers=bearer(token))
    right = await http.post(
        totp_path, json={"otp": pyotp.TOTP(secret).now()}, headers=bearer(token)
    )

    assert statuses == [403] * 10
    for refused in (eleventh, right):
        assert refused.status_code == 429, refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 900
        assert "authenticator-app codes" in refused.json()["Message"]


async def test_boldsign_totp_answers_the_secret_in_camel_case_and_its_code_opens(
    system: System, token: str, http: httpx.AsyncClient
) -> None:
    """addAuthentication with authenticationType TOTP (provisioned) answers 200 with the signer's
    otpauthUri and secret in BoldSign's casing, not to be cached; the signer's policy becomes totp;
    the secret's code opens the document over SigningHub's path."""
    user_name = jwt.decode(token, options={"verify_signature": False})["user_name"]
    issued = await send(
        system,
        "signgate.identity.commands",
        idn.IssueApiKey(user_name=user_name, name="BoldSign TOTP", access_token=token),
        answer_on="signgate.identity.replies",
        key=user_name,
    )
    package_id = await package(system, token, "signer@example.com")
    added = await http.patch(
        "/v1/document/addAuthentication",
        params={"documentId": package_id},
        content=json.dumps(
            {
                "authenticationType": "TOTP",
                "emailId": "signer@example.com",
                "totpSource": "provisioned",
            }
        ).encode(),
        headers={"Content-Type": "application/json", "X-API-KEY": issued["api_key"]},
    )
    await shared_and_projected(system, package_id, token)
    opened = await http.post(
        f"{authentication_path(package_id)}/totp",
        json={"otp": pyotp.TOTP(added.json()["secret"]).now()},
        headers=bearer(token),
    )

    assert added.status_code == 200, added.text
    assert added.headers["cache-control"] == "no-store"
    body = added.json()
    assert set(body) == {
        "authenticatorId",
        "otpauthUri",
        "secret",
        "digits",
        "algorithm",
        "periodSeconds",
    }
    assert body["otpauthUri"].startswith("otpauth://totp/") and body["secret"] in body["otpauthUri"]
    assert opened.status_code == 200 and opened.json()["Message"] == ACCESS_GRANTED


def next_code(secret: str) -> str:
    """The app's next step's code (within the drift window): the confirming code spent this one."""
    return str(pyotp.TOTP(secret).at(time.time() + 30))


async def confirmed_app(system: System, user_name: str, user_token: str) -> str:
    """The user enrols an authenticator app and confirms it with its first code; its secret."""
    enrolment = await send(
        system,
        "signgate.identity.commands",
        idn.EnrolAuthenticator(user_name=user_name, access_token=user_token),
        answer_on="signgate.identity.replies",
        key=user_name,
    )
    secret = enrolment["secret"]
    confirmed = await send(
        system,
        "signgate.identity.commands",
        idn.ConfirmAuthenticator(
            user_name=user_name,
            one_time_code=pyotp.TOTP(secret).now(),
            access_token=user_token,
        ),
        answer_on="signgate.identity.replies",
        key=user_name,
    )
    assert confirmed["type"] == "identity.recovery_codes_issued", confirmed
    return str(secret)


async def test_a_signers_own_app_opens_only_packages_of_their_account(
    system: System, http: httpx.AsyncClient
) -> None:
    """Over HTTP, an owner sets TOTP from the signer's own authenticator app (no body back, no
    secret): the app of a member of the owner's account opens the document with its code; the app
    of an API user of another account is 403 (the owner cannot aim recipients at any user's app)."""
    account = idn.AccountMembership(name="Acme", context_identifier=uuid.uuid4(), is_primary=True)
    other = idn.AccountMembership(name="Other", context_identifier=uuid.uuid4(), is_primary=True)
    owner = await owner_token(system, [account])
    admin = admin_token(system)
    member_id, member_name, member_token = await user_with_token(
        system, admin, [account], "+447911123801"
    )
    outsider_id, outsider_name, outsider_token = await user_with_token(
        system, admin, [other], "+447911123802"
    )
    member_secret = await confirmed_app(system, member_name, member_token)
    outsider_secret = await confirmed_app(system, outsider_name, outsider_token)
    body = {
        "apply_to_all": False,
        "authentication": {
            "enabled": True,
            "totp": {"enabled": True, "source": "user_authenticator"},
        },
    }
    packages = []
    for signer in (member_id, outsider_id):
        package_id = f"pkg-{uuid.uuid4().hex[:8]}"
        await workflow(
            system,
            wf.RegisterPackage(
                package_id=package_id,
                name="Lease",
                access_token=owner,
                recipients=[
                    wf.RecipientSpec(
                        order=1, email="s@example.com", name="S", signer_user_id=signer
                    )
                ],
                documents=[wf.DocumentSpec(document_id="doc-1", name="lease.pdf")],
            ),
        )
        put = await http.put(authentication_path(package_id), json=body, headers=bearer(owner))
        assert (put.status_code, put.content) == (200, b""), put.text
        await shared_and_projected(system, package_id, owner)
        packages.append(package_id)
    pool = system.services["authentication"].resources.pool
    await until(
        lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM user_authenticators WHERE user_id = ANY($1)",
            [member_id, outsider_id],
        ),
        what="both apps projected by the authentication service",
    )

    member = await http.post(
        f"{authentication_path(packages[0])}/totp",
        json={"otp": next_code(member_secret)},
        headers=bearer(owner),
    )
    outsider = await http.post(
        f"{authentication_path(packages[1])}/totp",
        json={"otp": next_code(outsider_secret)},
        headers=bearer(owner),
    )

    assert member.status_code == 200 and member.json()["Message"] == ACCESS_GRANTED
    assert answer(outsider) == (403, {"Message": SIGNER_NOT_MEMBER})
