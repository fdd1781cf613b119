"""AssureSign's SOAP 1.1 ``AuthenticateUser``: seed 004's XML in, identity's AuthenticateUser, its XML out.

The request is seed 004's ``AuthenticateUser`` element, bare as the seed shows it or inside a SOAP
1.1 envelope; the answer comes the same way (bare or enveloped). It is parsed by defusedxml with
DTDs, entities and external references forbidden, so a billion-laughs or XXE body is refused
before anything is expanded. Every refusal is a SOAP Fault: ``soap:Client`` with 400 for what the
caller sent (malformed XML, a DTD, a wrong ``SOAPAction``, a missing credential), ``soap:Server``
with the outcome's status (503, 504) when no answer came. A wrong user name or password is no
fault: it is ``Success="false"`` with its exceptions, as AssureSign answers it.

Our extension: ``OneTimeCode`` (an attribute of ``AuthenticateUserRequest`` beside ``UserName`` and
``Password``, or a child element) carries the code of a user's authenticator app, or one of their
recovery codes. A user with an authenticator who sends none is answered ``Success="false"`` with
the exception ``second_factor_required``, whether or not the password was right; a right code
already used is ``totp_code_used``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Annotated, Any
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as SafeTree
from defusedxml import DefusedXmlException
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from services.gateway.dependencies import GatewayDependencies, dependencies
from services.gateway.errors import (
    CONTENT_TYPE_XML,
    SOAP_ENVELOPE,
    SoapFault,
    document,
    enveloped_in_soap,
    fault_response,
)
from services.gateway.outcomes import SENT, rejection_error
from signgate_client import Outcome, OutcomeTimeout
from signgate_contracts.identity import (
    AuthenticateUser,
    AuthenticationFailed,
    AuthenticationSucceeded,
)

NAMESPACE = "https://www.assuresign.net/Services/DocumentNOW/Users"
SOAP_ACTION = f"{NAMESPACE}/IUserService/AuthenticateUser"
SOAP_12_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
PATH = "/Services/DocumentNOW/Users"
"""Where the endpoint answers: the path of the operation's namespace."""

# Attribute values keep their whitespace characters only as references (XML normalises them).
_ATTRIBUTE_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


@dataclass(frozen=True)
class AuthenticateRequest:
    """A parsed AuthenticateUser request: the command, and whether it came in a SOAP envelope."""

    command: AuthenticateUser
    enveloped: bool


def check_action(soap_action: str | None) -> None:
    """Refuse a request whose ``SOAPAction`` header is missing or names another operation."""
    action = (soap_action or "").strip()
    if len(action) >= 2 and action[0] == action[-1] == '"':  # SOAP 1.1 quotes it
        action = action[1:-1]
    if action != SOAP_ACTION:
        raise SoapFault(f"The SOAPAction header must be {SOAP_ACTION}")


def parse_request(body: bytes, soap_action: str | None) -> AuthenticateRequest:
    """Seed 004's request (bare or in a SOAP 1.1 envelope) as identity's `AuthenticateUser`."""
    check_action(soap_action)
    try:
        root = SafeTree.fromstring(
            body.lstrip(), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise SoapFault("DTDs, entities and external references are not accepted") from None
    except (ElementTree.ParseError, ValueError):
        raise SoapFault("The request is not well-formed XML") from None
    enveloped = root.tag == f"{{{SOAP_ENVELOPE}}}Envelope"
    if enveloped:
        body_element = root.find(f"{{{SOAP_ENVELOPE}}}Body")
        operation = None if body_element is None else next(iter(body_element), None)
    elif root.tag == f"{{{SOAP_12_ENVELOPE}}}Envelope":
        raise SoapFault("Only SOAP 1.1 envelopes are accepted", code="VersionMismatch")
    else:
        operation = root
    if operation is None or operation.tag != f"{{{NAMESPACE}}}AuthenticateUser":
        raise SoapFault(f"The body must be an AuthenticateUser element in {NAMESPACE}")
    request = operation.find(f"{{{NAMESPACE}}}AuthenticateUserRequest")
    if request is None:
        raise SoapFault("AuthenticateUser must contain an AuthenticateUserRequest")
    fields = {name: _value(request, name) for name in ("UserName", "Password")}
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise SoapFault(f"AuthenticateUserRequest needs {' and '.join(missing)}")
    one_time_code = _value(request, "OneTimeCode")  # our extension: a second factor's code
    if one_time_code:
        fields["OneTimeCode"] = one_time_code
    try:
        command = AuthenticateUser.model_validate(fields)
    except ValidationError as error:
        names = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
        raise SoapFault(f"Invalid {', '.join(names) or 'request'}") from None
    return AuthenticateRequest(command, enveloped)


def _value(request: ElementTree.Element, name: str) -> str | None:
    """An attribute of the request (as seed 004 sends it), or a child element of that name."""
    if name in request.attrib:
        return request.attrib[name]
    child = request.find(f"{{{NAMESPACE}}}{name}")
    return None if child is None else (child.text or "")


def render_result(
    reply: AuthenticationSucceeded | AuthenticationFailed, *, enveloped: bool = False
) -> bytes:
    """Seed 004's AuthenticateUserResponse for identity's reply (a success or the reasons)."""
    if isinstance(reply, AuthenticationSucceeded):
        attributes = _attributes(
            Success="true",
            AuthenticationToken=reply.access_token.get_secret_value(),
            UserName=reply.user_name,
            FirstName=reply.first_name,
            LastName=reply.last_name,
            ChangePasswordUrl=reply.change_password_url,
        )
        accounts = "".join(
            f"\n            <UserAccount{_attributes(Name=a.name, ContextIdentifier=str(a.context_identifier), IsPrimary=_flag(a.is_primary))} />"
            for a in reply.accounts
        )
        inner = f"\n        <Accounts>{accounts}\n        </Accounts>"
    else:
        attributes = _attributes(
            Success="false",
            ExpiredPasswordUrl=reply.expired_password_url,
            ChangePasswordUrl=reply.change_password_url,
        )
        exceptions = "".join(
            f"\n            <Exception{_attributes(Code=r.code, Message=r.message)} />"
            for r in reply.reasons
        )
        inner = f"\n        <Exceptions>{exceptions}\n        </Exceptions>"
    response = (
        f"<AuthenticateUserResponse xmlns={quoteattr(NAMESPACE)}>\n"
        f"    <AuthenticateUserResult{attributes}>{inner}\n    </AuthenticateUserResult>\n"
        "</AuthenticateUserResponse>"
    )
    return document(response if not enveloped else enveloped_in_soap(response))


def _attributes(**values: str | None) -> str:
    """`` Name="value"`` for each value given, escaped; None leaves the attribute out."""
    return "".join(
        f" {name}={quoteattr(value, _ATTRIBUTE_ENTITIES)}"
        for name, value in values.items()
        if value is not None
    )


def _flag(value: bool) -> str:
    return "true" if value else "false"


NO_ANSWER = "No answer came from the identity service in time; try again"


def answer(
    outcome: Outcome[AuthenticationSucceeded | AuthenticationFailed], *, enveloped: bool
) -> bytes:
    """The response to an AuthenticateUser's outcome: identity's reply rendered, else a fault
    (a rejection's status and text: `soap:Client` for a 4xx, `soap:Server` otherwise)."""
    reply = outcome.reply
    if isinstance(reply, (AuthenticationSucceeded, AuthenticationFailed)):
        return render_result(reply, enveloped=enveloped)
    rejection = outcome.rejection
    if rejection is None:
        raise SoapFault(NO_ANSWER, code="Server", status=504)
    error = rejection_error(rejection)
    raise SoapFault(
        error.message,
        code="Client" if error.status < 500 else "Server",
        status=error.status,
        headers=error.headers,
    )


# -- the route --

router = APIRouter(tags=["AssureSign"])

_XML = {"schema": {"type": "string"}}
_FAULT = {"description": "A SOAP 1.1 Fault", "content": {"text/xml": _XML}}
_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "SOAPAction",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "enum": [SOAP_ACTION, f'"{SOAP_ACTION}"']},
            "description": "The operation (SOAP 1.1); quoted or not.",
        }
    ],
    "requestBody": {
        "required": True,
        "description": "Seed 004's AuthenticateUserRequest; signgate's extension: an optional "
        "OneTimeCode attribute (or child element), the code of the user's authenticator app or "
        "a recovery code. Without it, a user with an authenticator is answered the exception "
        "second_factor_required.",
        "content": {
            "text/xml": {
                **_XML,
                "example": (
                    '<?xml version="1.0" encoding="utf-8"?>\n'
                    f'<AuthenticateUser xmlns="{NAMESPACE}">\n'
                    '    <AuthenticateUserRequest UserName="jdoe@example.com" Password="Password" />\n'
                    "</AuthenticateUser>"
                ),
            }
        },
    },
    "responses": {
        "200": {
            "description": "AuthenticateUserResponse: Success, the token and accounts, or the exceptions",
            "content": {"text/xml": _XML},
        },
        **{status: _FAULT for status in ("400", "413", "429", "503", "504")},
    },
}


@router.post(
    PATH,
    summary="AssureSign AuthenticateUser (SOAP 1.1)",
    response_class=Response,
    openapi_extra=_OPENAPI,
)
async def authenticate_user(
    request: Request, deps: Annotated[GatewayDependencies, Depends(dependencies)]
) -> Response:
    """Seed 004: authenticate an API user by name and password; a token and their accounts."""
    try:
        parsed = parse_request(await request.body(), request.headers.get("SOAPAction"))
        sent = SENT.get()
        if sent is not None:  # names the command on the answer (X-Correlation-Id)
            sent.append(str(parsed.command.correlation_id))
        try:
            outcome = await deps.client.send(
                parsed.command, timeout=deps.settings.outcome_timeout_seconds
            )
        except OutcomeTimeout:
            raise SoapFault(NO_ANSWER, code="Server", status=504) from None
        body = answer(outcome, enveloped=parsed.enveloped)
    except SoapFault as fault:
        return fault_response(fault)
    return Response(body, media_type=CONTENT_TYPE_XML)
