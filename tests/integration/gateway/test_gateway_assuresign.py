"""AssureSign's SOAP AuthenticateUser over real HTTP: seed 004's XML, verbatim, to a gateway on the real stack."""

from __future__ import annotations

import time
import uuid

import defusedxml.ElementTree as SafeTree
import httpx
import pyotp
import pytest
from pydantic import SecretStr

from libs.security.tokens import TokenSettings, TokenVerifier
from libs.tools.operator_token import operator_token
from services.gateway.assuresign import NAMESPACE, PATH, SOAP_ENVELOPE
from signgate_contracts import Command
from signgate_contracts import identity as idn
from tests.e2e.steps import send
from tests.support.assuresign_seed import SEED_ACTION, SEED_REQUEST
from tests.support.gateway import RunningGateway
from tests.support.system import System

PASSWORD = "Soap-pass-8812"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SEED_ACTION}
ACCOUNT = uuid.UUID("821ae27f-027c-4f21-a2e5-1667fc9b650a")


def ns(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


async def admin(system: System, command: Command) -> dict:
    """An administrative identity command, with the bootstrap operator's token; its outcome."""
    secrets = system.secrets
    token = operator_token(TokenSettings(
        private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"], public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]
    )).token
    command = command.model_copy(update={"access_token": SecretStr(token)})
    return await send(system, "signgate.identity.commands", command, key=command.user_name)


async def api_user(system: System, **fields: object) -> str:
    """A new API user, John Doe of "Example, Inc.", with `PASSWORD`; their user name."""
    user_name = f"jdoe-{uuid.uuid4().hex[:6]}@example.com"
    registered = await admin(system, idn.RegisterUser(
        user_name=user_name, first_name="John", last_name="Doe", password=PASSWORD,
        accounts=[idn.AccountMembership(name="Example, Inc.", context_identifier=ACCOUNT, is_primary=True)],
        **fields,
    ))
    assert registered["type"] == "identity.user_registered_v2", registered
    return user_name


def seed_request(user_name: str, password: str) -> bytes:
    """Seed 004's sample request, verbatim but for the credentials."""
    return SEED_REQUEST.replace(b"jdoe@example.com", user_name.encode()).replace(
        b'Password="Password"', f'Password="{password}"'.encode()
    )


def result_of(response: httpx.Response) -> SafeTree.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    document = SafeTree.fromstring(response.content)
    assert document.tag == ns("AuthenticateUserResponse")
    result = document.find(ns("AuthenticateUserResult"))
    assert result is not None
    return result


def fault_of(response: httpx.Response, status: int = 400) -> str:
    """The faultstring of a SOAP Fault answered with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/xml")
    fault = SafeTree.fromstring(response.content).find(f"{{{SOAP_ENVELOPE}}}Body/{{{SOAP_ENVELOPE}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultstring") or ""


@pytest.fixture
async def http(gateway: RunningGateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client


async def test_seed_request_authenticates_and_answers_the_seed_response(
    system: System, http: httpx.AsyncClient
) -> None:
    """Seed 004's request with a registered user's credentials gets Success="true", a token that
    identity's verifier accepts as that user's, the profile and the account list, and names its
    command's correlation id."""
    user_name = await api_user(system)

    response = await http.post(PATH, content=seed_request(user_name, PASSWORD), headers=HEADERS)

    result = result_of(response)
    uuid.UUID(response.headers["X-Correlation-Id"])  # the command it became, for the logs
    token = result.attrib.pop("AuthenticationToken")
    result.attrib.pop("ChangePasswordUrl", None)
    assert result.attrib == {"Success": "true", "UserName": user_name, "FirstName": "John", "LastName": "Doe"}
    assert [a.attrib for a in result.findall(f"{ns('Accounts')}/{ns('UserAccount')}")] == [
        {"Name": "Example, Inc.", "ContextIdentifier": str(ACCOUNT), "IsPrimary": "true"}
    ]
    verifier = TokenVerifier.from_settings(TokenSettings(public_key=system.secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))
    assert verifier.decode(token).user_name == user_name


async def test_an_enveloped_request_gets_an_enveloped_answer(system: System, http: httpx.AsyncClient) -> None:
    """The request inside a SOAP 1.1 envelope (quoted SOAPAction) is answered inside one."""
    user_name = await api_user(system)
    inner = seed_request(user_name, PASSWORD).split(b"?>", 1)[1]
    body = f'<s:Envelope xmlns:s="{SOAP_ENVELOPE}"><s:Body>'.encode() + inner + b"</s:Body></s:Envelope>"

    response = await http.post(PATH, content=body, headers={**HEADERS, "SOAPAction": f'"{SEED_ACTION}"'})

    assert response.status_code == 200, response.text
    result = SafeTree.fromstring(response.content).find(
        f"{{{SOAP_ENVELOPE}}}Body/{ns('AuthenticateUserResponse')}/{ns('AuthenticateUserResult')}"
    )
    assert result is not None and result.attrib["Success"] == "true"


async def test_a_wrong_password_is_success_false_with_its_exception(system: System, http: httpx.AsyncClient) -> None:
    """A wrong password is answered 200 with Success="false" and the invalid-credentials exception,
    and no URL; an unknown user name gets the same bytes."""
    user_name = await api_user(system)

    wrong = await http.post(PATH, content=seed_request(user_name, "not-the-password"), headers=HEADERS)
    unknown = await http.post(PATH, content=seed_request(f"x{user_name}", "not-the-password"), headers=HEADERS)

    result = result_of(wrong)
    assert result.attrib == {"Success": "false"}
    assert [e.attrib for e in result.iter(ns("Exception"))] == [
        {"Code": "invalid_credentials", "Message": "Invalid credentials"}
    ]
    assert unknown.content == wrong.content


async def test_a_locked_user_is_told_so_once_the_password_is_right(system: System, http: httpx.AsyncClient) -> None:
    """After five wrong passwords the right one is answered Success="false" with account_locked."""
    user_name = await api_user(system)
    for _ in range(5):
        result_of(await http.post(PATH, content=seed_request(user_name, "wrong-password"), headers=HEADERS))

    result = result_of(await http.post(PATH, content=seed_request(user_name, PASSWORD), headers=HEADERS))

    assert result.attrib["Success"] == "false"
    assert [e.attrib["Code"] for e in result.iter(ns("Exception"))] == ["account_locked"]


async def test_an_expired_password_answers_the_expired_password_url(system: System, http: httpx.AsyncClient) -> None:
    """An expired password is Success="false" with password_expired and the ExpiredPasswordUrl."""
    user_name = await api_user(system)
    expired = await admin(system, idn.ExpirePassword(user_name=user_name))
    assert expired["type"] == "identity.password_expired_v2", expired

    result = result_of(await http.post(PATH, content=seed_request(user_name, PASSWORD), headers=HEADERS))

    assert result.attrib["Success"] == "false"
    assert [e.attrib["Code"] for e in result.iter(ns("Exception"))] == ["password_expired"]
    assert "/password/expired?user_name=" in result.attrib["ExpiredPasswordUrl"]


async def test_a_required_change_answers_the_change_password_url(system: System, http: httpx.AsyncClient) -> None:
    """A password that must be changed is Success="false" with change_required and the ChangePasswordUrl."""
    user_name = await api_user(system, require_password_change=True)

    result = result_of(await http.post(PATH, content=seed_request(user_name, PASSWORD), headers=HEADERS))

    assert result.attrib["Success"] == "false"
    assert [e.attrib["Code"] for e in result.iter(ns("Exception"))] == ["change_required"]
    assert "/password/change?user_name=" in result.attrib["ChangePasswordUrl"]


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<AuthenticateUser xmlns="' + NAMESPACE.encode() + b'"><AuthenticateUserRequest UserName="&c;" Password="x"/>'
    b"</AuthenticateUser>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
    b'<AuthenticateUser xmlns="' + NAMESPACE.encode() + b'"><AuthenticateUserRequest UserName="&s;" Password="x"/>'
    b"</AuthenticateUser>"
)


@pytest.mark.parametrize(
    ("body", "headers", "text"),
    [
        (BILLION_LAUGHS, HEADERS, "DTDs, entities and external references are not accepted"),
        (XXE, HEADERS, "DTDs, entities and external references are not accepted"),
        (b"<AuthenticateUser><oops", HEADERS, "The request is not well-formed XML"),
        (SEED_REQUEST, {**HEADERS, "SOAPAction": f"{NAMESPACE}/IUserService/Other"}, "The SOAPAction header must be"),
        (SEED_REQUEST, {"Content-Type": "text/xml"}, "The SOAPAction header must be"),
    ],
    ids=["billion laughs", "xxe", "malformed", "other action", "no action"],
)
async def test_hostile_or_broken_requests_get_a_soap_fault_400(
    http: httpx.AsyncClient, body: bytes, headers: dict[str, str], text: str
) -> None:
    """Entity bombs, external entities, malformed XML and a wrong or missing SOAPAction are each a
    soap:Client Fault with 400, never a trace."""
    assert fault_of(await http.post(PATH, content=body, headers=headers)).startswith(text)


async def test_a_body_over_the_limit_is_a_soap_fault_413(gateway: RunningGateway, http: httpx.AsyncClient) -> None:
    """A body over the gateway's limit is refused with 413 in SOAP's shape, before it is parsed."""
    body = SEED_REQUEST + b" " * (gateway.settings.body_limit_bytes + 1)
    fault_of(await http.post(PATH, content=body, headers=HEADERS), status=413)


async def test_a_user_with_an_authenticator_needs_the_one_time_code_element(
        system: System, http: httpx.AsyncClient) -> None:
    """For a user with a confirmed authenticator app, seed 004's request as it is answers the exception
    second_factor_required (the right and a wrong password alike); with our OneTimeCode attribute it
    gets the token; the same code again is totp_code_used."""
    user_name = await api_user(system)
    replies = "signgate.identity.replies"
    login = await send(system, "signgate.identity.commands", idn.AuthenticateUser(user_name=user_name, password=PASSWORD),
                       answer_on=replies, key=user_name)
    token = SecretStr(login["access_token"])
    enrolment = await send(system, "signgate.identity.commands", idn.EnrolAuthenticator(
        user_name=user_name, access_token=token), answer_on=replies, key=user_name)
    totp = pyotp.TOTP(enrolment["secret"])
    confirmed = await send(system, "signgate.identity.commands", idn.ConfirmAuthenticator(
        user_name=user_name, one_time_code=totp.now(), access_token=token), answer_on=replies, key=user_name)
    assert confirmed["type"] == "identity.recovery_codes_issued", confirmed
    code = totp.at(time.time() + 30)  # the next step's code: in the drift window, after the one confirming spent

    right = await http.post(PATH, content=seed_request(user_name, PASSWORD), headers=HEADERS)
    wrong = await http.post(PATH, content=seed_request(user_name, "not-the-password"), headers=HEADERS)
    with_code = seed_request(user_name, PASSWORD).replace(b"/>", f'OneTimeCode="{code}" />'.encode())
    granted = await http.post(PATH, content=with_code, headers=HEADERS)
    replayed = await http.post(PATH, content=with_code, headers=HEADERS)

    for answer in (right, wrong):
        result = result_of(answer)
        assert result.attrib == {"Success": "false"}
        assert [e.attrib["Code"] for e in result.iter(ns("Exception"))] == ["second_factor_required"]
    assert right.content == wrong.content
    assert result_of(granted).attrib["Success"] == "true"
    assert [e.attrib["Code"] for e in result_of(replayed).iter(ns("Exception"))] == ["totp_code_used"]
