"""AssureSign's AuthenticateUser over SOAP: seed 004's request parsed, its response rendered, faults."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import defusedxml.ElementTree as SafeTree
import pytest

from services.gateway.assuresign import (
    NAMESPACE,
    SOAP_ACTION,
    SOAP_ENVELOPE,
    SoapFault,
    answer,
    check_action,
    parse_request,
    render_result,
)
from services.gateway.errors import render_fault
from signgate_client import Outcome
from signgate_contracts.identity import (
    AccountMembership,
    AuthenticationFailed,
    AuthenticationFailure,
    AuthenticationSucceeded,
)
from signgate_contracts.rejection import CommandRejected
from tests.support.assuresign_seed import SEED_ACTION, SEED_REQUEST, SEED_RESPONSE

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<AuthenticateUser xmlns="https://www.assuresign.net/Services/DocumentNOW/Users">
  <AuthenticateUserRequest UserName="&lol3;" Password="x" />
</AuthenticateUser>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<AuthenticateUser xmlns="https://www.assuresign.net/Services/DocumentNOW/Users">
  <AuthenticateUserRequest UserName="&secret;" Password="x" />
</AuthenticateUser>"""


def enveloped(inner: bytes) -> bytes:
    return (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        + inner
        + b"</soap:Body></soap:Envelope>"
    )


def success(**changes: object) -> AuthenticationSucceeded:
    fields: dict[str, object] = {
        "access_token": "[authentication token]",
        "expires_at": datetime(2026, 1, 1, tzinfo=UTC),
        "user_name": "jdoe@example.com",
        "first_name": "John",
        "last_name": "Doe",
        "accounts": [
            AccountMembership(
                name="Example, Inc.",
                context_identifier=UUID("821ae27f-027c-4f21-a2e5-1667fc9b650a"),
                is_primary=True,
            )
        ],
    }
    return AuthenticationSucceeded.model_validate({**fields, **changes})


def shape(document: bytes) -> list[tuple[str, dict[str, str]]]:
    """Every element of a document in order, with its attributes: what a SOAP client reads."""
    return [(e.tag, dict(e.attrib)) for e in SafeTree.fromstring(document).iter()]


def test_the_seed_request_becomes_authenticate_user() -> None:
    """Seed 004's sample XML with its SOAPAction header is identity's AuthenticateUser."""
    request = parse_request(SEED_REQUEST, SEED_ACTION)
    assert request.command.user_name == "jdoe@example.com"
    assert request.command.password.get_secret_value() == "Password"
    assert not request.enveloped


def test_an_enveloped_request_is_read_the_same() -> None:
    """The same element inside a SOAP 1.1 envelope, with the quoted SOAPAction, parses alike."""
    request = parse_request(enveloped(SEED_REQUEST.split(b"?>", 1)[1]), f'"{SEED_ACTION}"')
    assert request.command.user_name == "jdoe@example.com"
    assert request.enveloped


def test_a_success_renders_the_seed_response() -> None:
    """identity's success reply renders as seed 004's sample response, element for element."""
    assert shape(render_result(success())) == shape(SEED_RESPONSE)


def test_an_enveloped_request_gets_an_enveloped_response() -> None:
    """The response to an enveloped request is the seed's response inside a SOAP Body."""
    document = SafeTree.fromstring(render_result(success(), enveloped=True))
    assert document.tag == f"{{{SOAP_ENVELOPE}}}Envelope"
    body = document.find(f"{{{SOAP_ENVELOPE}}}Body")
    assert body is not None
    assert [e.tag for e in body] == [f"{{{NAMESPACE}}}AuthenticateUserResponse"]


def test_a_failure_renders_its_exceptions_and_password_urls() -> None:
    """A failed authentication is Success="false" with one Exception per reason and both URLs."""
    reply = AuthenticationFailed(
        reasons=[
            AuthenticationFailure(code="password_expired", message="The password has expired.")
        ],
        expired_password_url="https://portal.example/password/expired?user_name=a%26b",
        change_password_url="https://portal.example/password/change?user_name=a%26b",
    )
    document = SafeTree.fromstring(render_result(reply))
    result = document.find(f"{{{NAMESPACE}}}AuthenticateUserResult")
    assert result is not None
    assert result.attrib == {
        "Success": "false",
        "ExpiredPasswordUrl": "https://portal.example/password/expired?user_name=a%26b",
        "ChangePasswordUrl": "https://portal.example/password/change?user_name=a%26b",
    }
    exceptions = result.findall(f"{{{NAMESPACE}}}Exceptions/{{{NAMESPACE}}}Exception")
    assert [e.attrib for e in exceptions] == [
        {"Code": "password_expired", "Message": "The password has expired."}
    ]


def test_attribute_values_are_escaped() -> None:
    """Names with quotes, ampersands, angle brackets and newlines come back exactly as given."""
    awkward = 'O"Brien & <Sons>\nLtd'
    document = SafeTree.fromstring(render_result(success(last_name=awkward)))
    result = document.find(f"{{{NAMESPACE}}}AuthenticateUserResult")
    assert result is not None and result.attrib["LastName"] == awkward


@pytest.mark.parametrize(
    "action", [None, "", "AuthenticateUser", f"{NAMESPACE}/IUserService/Other"]
)
def test_a_wrong_soap_action_is_a_client_fault(action: str | None) -> None:
    """A missing or other SOAPAction is refused with a soap:Client fault and 400."""
    with pytest.raises(SoapFault) as refused:
        check_action(action)
    assert (refused.value.code, refused.value.status) == ("Client", 400)


@pytest.mark.parametrize(
    "body",
    [
        b"<AuthenticateUser",
        b"not xml at all",
        b"",
        SEED_REQUEST.replace(b"</AuthenticateUser>", b""),
    ],
)
def test_malformed_xml_is_a_client_fault(body: bytes) -> None:
    """A body that is not well-formed XML is a soap:Client fault with 400."""
    with pytest.raises(SoapFault, match="not well-formed") as refused:
        parse_request(body, SOAP_ACTION)
    assert refused.value.status == 400


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion laughs", "xxe"])
def test_dtds_and_entities_are_refused_before_expansion(body: bytes) -> None:
    """A body with a DTD (entity bombs, external entities) is refused with a soap:Client fault."""
    with pytest.raises(SoapFault, match="DTDs") as refused:
        parse_request(body, SOAP_ACTION)
    assert (refused.value.code, refused.value.status) == ("Client", 400)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (SEED_REQUEST.replace(b' Password="Password"', b""), "needs Password"),
        (SEED_REQUEST.replace(b'UserName="jdoe@example.com"', b'UserName=""'), "needs UserName"),
        (SEED_REQUEST.replace(NAMESPACE.encode(), b"urn:other"), "AuthenticateUser element"),
        (b'<AuthenticateUser xmlns="' + NAMESPACE.encode() + b'"/>', "AuthenticateUserRequest"),
        (SEED_REQUEST.replace(b"jdoe@example.com", b"x" * 300), "Invalid UserName"),
    ],
)
def test_an_incomplete_request_is_a_client_fault(body: bytes, text: str) -> None:
    """A request without a credential, in another namespace or with an invalid name is refused."""
    with pytest.raises(SoapFault, match=text):
        parse_request(body, SOAP_ACTION)


def test_a_soap_12_envelope_is_a_version_mismatch() -> None:
    """A SOAP 1.2 envelope is answered with SOAP 1.1's VersionMismatch fault."""
    body = SEED_REQUEST.split(b"?>", 1)[1]
    soap12 = (
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        + body
        + b"</e:Body></e:Envelope>"
    )
    with pytest.raises(SoapFault) as refused:
        parse_request(soap12, SOAP_ACTION)
    assert refused.value.code == "VersionMismatch"


def test_a_fault_is_an_enveloped_soap_11_fault() -> None:
    """A fault renders as soap:Envelope/soap:Body/soap:Fault with faultcode and escaped faultstring."""
    document = SafeTree.fromstring(render_fault(SoapFault("bad <input> & more")))
    fault = document.find(f"{{{SOAP_ENVELOPE}}}Body/{{{SOAP_ENVELOPE}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Client"
    assert fault.findtext("faultstring") == "bad <input> & more"


def outcome(**parts: object) -> Outcome:
    command = parse_request(SEED_REQUEST, SEED_ACTION).command
    return Outcome(command, **parts)  # type: ignore[arg-type]


def test_the_reply_is_answered_whether_or_not_a_rejection_came() -> None:
    """identity's reply is what answers: rendered as the seed's response, enveloped on request."""
    assert shape(answer(outcome(event=None, reply=success()), enveloped=False)) == shape(SEED_RESPONSE)
    assert b"soap:Envelope" in answer(outcome(event=None, reply=success()), enveloped=True)


@pytest.mark.parametrize(("status", "code"), [(400, "Client"), (429, "Client"), (500, "Server")])
def test_a_rejection_without_a_reply_is_a_fault_with_its_status(status: int, code: str) -> None:
    """A command.rejected (no reply) is a Fault with the rejection's status and text; a 429 says when to retry."""
    rejection = CommandRejected(
        command_type="identity.authenticate_user", status=status, code="refused", message="Refused here",
        retry_after_seconds=7 if status == 429 else None,
    )
    with pytest.raises(SoapFault, match="Refused here") as refused:
        answer(outcome(event=rejection), enveloped=False)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.headers == ({"Retry-After": "7"} if status == 429 else {})


def test_no_answer_at_all_is_a_server_fault_504() -> None:
    """An outcome with neither reply nor rejection is a soap:Server Fault with 504."""
    with pytest.raises(SoapFault) as refused:
        answer(outcome(event=None), enveloped=False)
    assert (refused.value.status, refused.value.code) == (504, "Server")


@pytest.mark.parametrize("request_element", [
    '<AuthenticateUserRequest UserName="jdoe@example.com" Password="pw" OneTimeCode="123456" />',
    '<AuthenticateUserRequest UserName="jdoe@example.com" Password="pw"><OneTimeCode>123456</OneTimeCode>'
    "</AuthenticateUserRequest>",
])
def test_a_one_time_code_attribute_or_element_reaches_authenticate_user(request_element: str) -> None:
    """Our OneTimeCode extension, as an attribute or a child element, is the command's one_time_code."""
    body = f'<AuthenticateUser xmlns="{NAMESPACE}">{request_element}</AuthenticateUser>'.encode()

    parsed = parse_request(body, SOAP_ACTION)

    assert parsed.command.one_time_code is not None
    assert parsed.command.one_time_code.get_secret_value() == "123456"


def test_a_request_without_a_one_time_code_sends_none() -> None:
    """Seed 004's request as it is carries no one-time code."""
    assert parse_request(SEED_REQUEST, SEED_ACTION).command.one_time_code is None


def test_second_factor_required_is_an_assuresign_style_exception() -> None:
    """A reply asking for the second factor is Success="false" with the exception second_factor_required."""
    reply = AuthenticationFailed(reasons=[AuthenticationFailure(
        code="second_factor_required", message="A one-time code from the authenticator app is required")])

    result = SafeTree.fromstring(render_result(reply)).find(f"{{{NAMESPACE}}}AuthenticateUserResult")

    assert result is not None and result.get("Success") == "false"
    [exception] = result.iter(f"{{{NAMESPACE}}}Exception")
    assert exception.get("Code") == "second_factor_required"
