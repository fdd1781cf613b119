"""BoldSign v1 over HTTP (``X-API-KEY``): add, remove and change a signer's authentication.

``PATCH /v1/document/addAuthentication?documentId=…`` takes seed 001's bodies verbatim (AccessCode,
EmailOTP, SMSOTP; ``emailId``, ``order``, ``onBehalfOf``, ``phoneNumber``,
``authenticationRetryCount`` 1-10, ``identityVerificationSettings`` stored), and its siblings
``removeAuthentication`` and ``changeAccessCode`` take theirs; each is one workflow command
(`workflow.AddAuthentication`, `RemoveAuthentication`, `ChangeAccessCode`) with the token the key is
exchanged for (`services.gateway.api_keys`). BoldSign answers success with 200 and no body, and
failure with its ``ErrorResult``, ``{"error": "<text>"}``; a document that is not there or not the
caller's is BoldSign's 403 "Invalid Document ID" (it tells neither apart). ``IdVerification`` is
refused with a 400 that says so and names the types offered: signgate checks no identity
documents, and accepting the type would leave a document its sender believes ID-checked open to
anyone holding the link; ``identityVerificationSettings`` on the other types are stored as sent
(their ``type`` is the re-authentication frequency). BoldSign's paths are
case-insensitive (its pages write ``RemoveAuthentication`` too): both spellings are routed.
signgate's ``TOTP`` type with ``totpSource: provisioned`` answers 200 with the signer's new
authenticator-app secret in the body (``otpauthUri``, ``secret``; ``Cache-Control: no-store``), the
only place it is ever shown: workflow answers it to this gateway's own reply topic alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from services.gateway.dependencies import GatewayDependencies, dependencies
from services.gateway.errors import (
    BODY_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_JSON,
    OUTCOME_TIMEOUT,
    RATE_LIMITED,
    GatewayError,
)
from services.gateway.outcomes import (
    NO_STORE,
    TotpProvisioning,
    outcome_of,
    provisioned_totp,
    rejection_error,
)
from signgate_client import Outcome
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Command
from signgate_contracts.rejection import CommandRejected

router = APIRouter(prefix="/v1/document", tags=["BoldSign v1"])

api_key_header = APIKeyHeader(
    name="X-API-KEY",
    auto_error=False,
    scheme_name="BoldSignApiKey",
    description="An API key of an API user (identity's IssueApiKey).",
)

SEED_001_BODIES: dict[str, dict[str, Any]] = {
    "EmailOTP": {"authenticationType": "EmailOTP", "emailId": "alexgayle@cubeflakes.com"},
    "AccessCode": {
        "accessCode": "123456",
        "authenticationType": "AccessCode",
        "emailId": "alexgayle@cubeflakes.com",
    },
    "SMSOTP": {
        "authenticationType": "SMSOTP",
        "emailId": "alexgayle@cubeflakes.com",
        "phoneNumber": {"countryCode": "+1", "number": "2015666802"},
    },
    "EmailOTP, order 2": {
        "authenticationType": "EmailOTP",
        "emailId": "alexgayle@cubeflakes.com",
        "order": 2,
    },
}
"""Seed 001's request bodies, verbatim (its curl samples)."""

TOTP_BODIES: dict[str, dict[str, Any]] = {
    "TOTP, provisioned": {
        "authenticationType": "TOTP",
        "emailId": "alexgayle@cubeflakes.com",
        "totpSource": "provisioned",
    },
    "TOTP, the signer's app": {
        "authenticationType": "TOTP",
        "emailId": "alexgayle@cubeflakes.com",
        "totpSource": "user_authenticator",
    },
}
"""signgate's addition: an authenticator app (a secret made for the signer, or their own app)."""

REMOVE_BODY: dict[str, Any] = {"emailId": "alexgayle@cubeflakes.com"}
CHANGE_ACCESS_CODE_BODY: dict[str, Any] = {
    "emailId": "alexgayle@cubeflakes.com",
    "accessCode": "654321",
}

INVALID_DOCUMENT = "Invalid Document ID"
"""BoldSign's text for a document id that names no document of the caller's."""


class BoldSignError(BaseModel):
    """BoldSign's ``ErrorResult``."""

    error: str


class BoldSignTotpProvisioning(TotpProvisioning):
    """The signer's new authenticator-app secret (``TOTP`` with ``totpSource: provisioned``), in
    BoldSign's casing."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# -- translation (pure) --


def add_authentication_command(
    document_id: str, body: wf.AddAuthenticationBody, token: str
) -> wf.AddAuthentication:
    return wf.AddAuthentication(package_id=document_id, body=body, access_token=SecretStr(token))


def remove_authentication_command(
    document_id: str, body: wf.SignerReference, token: str
) -> wf.RemoveAuthentication:
    return wf.RemoveAuthentication(package_id=document_id, body=body, access_token=SecretStr(token))


def change_access_code_command(
    document_id: str, body: wf.ChangeAccessCodeBody, token: str
) -> wf.ChangeAccessCode:
    return wf.ChangeAccessCode(package_id=document_id, body=body, access_token=SecretStr(token))


def boldsign_refusal(rejection: CommandRejected) -> GatewayError:
    """A workflow's refusal as BoldSign answers it: no document of the caller's is 403 "Invalid
    Document ID"; anything else keeps the refusal's status and text (Retry-After on a 429)."""
    if rejection.code in ("document_not_found", "document_not_owned"):
        return GatewayError(403, INVALID_DOCUMENT)
    return rejection_error(rejection)


# -- sending --


async def _outcome(deps: GatewayDependencies, command: Command) -> Outcome:
    return await outcome_of(deps, command, refusal=boldsign_refusal)


async def _token(deps: GatewayDependencies, api_key: str | None) -> str:
    """The bearer token the request's API key is exchanged for (401 without a live key)."""
    if deps.api_keys is None:
        raise GatewayError(503, "API keys cannot be checked now")
    token = await deps.api_keys(api_key or "")
    if token is None:
        raise GatewayError(401, "Invalid API key")
    return token


ApiKey = Annotated[str | None, Depends(api_key_header)]
Deps = Annotated[GatewayDependencies, Depends(dependencies)]
DocumentId = Annotated[
    str, Query(alias="documentId", min_length=1, max_length=100, description="ID of the document.")
]

_COMMON_ERRORS: dict[int, list[str]] = {
    400: [MALFORMED_JSON],
    401: ["Invalid API key"],
    403: [INVALID_DOCUMENT, "Account is disabled"],
    413: [BODY_TOO_LARGE],
    429: [RATE_LIMITED],
    500: [INTERNAL_ERROR],
    504: [OUTCOME_TIMEOUT],
}


def error_responses(
    success: dict[str, Any] | None = None, **texts: list[str]
) -> dict[int | str, dict[str, Any]]:
    """A route's documented errors, each text an example of ``{"error": ...}``; ``success`` the
    200 answer when it has a body."""
    by_status = {**_COMMON_ERRORS, **{int(k.lstrip("_")): v for k, v in texts.items()}}
    responses: dict[int | str, dict[str, Any]] = {
        200: success or {"description": "Success (no body)"},
    }
    for status in sorted(by_status):
        examples = {
            f"example {n}": {"value": {"error": text}}
            for n, text in enumerate(by_status[status], 1)
        }
        responses[status] = {
            "model": BoldSignError,
            "description": by_status[status][0],
            "content": {"application/json": {"examples": examples}},
        }
    responses[429]["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
    }
    return responses


def _both_spellings(path: str) -> list[str]:
    return [path, path[0].upper() + path[1:]]


# -- routes --


async def add_authentication(
    document_id: DocumentId,
    body: Annotated[
        wf.AddAuthenticationBody,
        Body(
            openapi_examples={
                **{
                    f"seed 001: {name}": {"summary": f"Seed 001, {name}", "value": value}
                    for name, value in SEED_001_BODIES.items()
                },
                **{name: {"summary": name, "value": value} for name, value in TOTP_BODIES.items()},
            }
        ),
    ],
    api_key: ApiKey,
    deps: Deps,
) -> Response:
    token = await _token(deps, api_key)
    provisioned = provisioned_totp(
        await _outcome(deps, add_authentication_command(document_id, body, token))
    )
    if provisioned is None:
        return Response(status_code=200)
    answer = BoldSignTotpProvisioning.model_validate(provisioned.model_dump())
    return JSONResponse(answer.model_dump(by_alias=True), headers=NO_STORE)


async def remove_authentication(
    document_id: DocumentId,
    body: Annotated[
        wf.SignerReference,
        Body(openapi_examples={"BoldSign": {"summary": "By email", "value": REMOVE_BODY}}),
    ],
    api_key: ApiKey,
    deps: Deps,
) -> Response:
    token = await _token(deps, api_key)
    await _outcome(deps, remove_authentication_command(document_id, body, token))
    return Response(status_code=200)


async def change_access_code(
    document_id: DocumentId,
    body: Annotated[
        wf.ChangeAccessCodeBody,
        Body(
            openapi_examples={"BoldSign": {"summary": "New code", "value": CHANGE_ACCESS_CODE_BODY}}
        ),
    ],
    api_key: ApiKey,
    deps: Deps,
) -> Response:
    token = await _token(deps, api_key)
    await _outcome(deps, change_access_code_command(document_id, body, token))
    return Response(status_code=200)


_ROUTES = (
    (
        "addAuthentication",
        add_authentication,
        "Add authentication to the document",
        error_responses(
            {
                "description": "Success: no body, or (TOTP, provisioned) the signer's new secret",
                "headers": {"Cache-Control": {"description": "no-store, with a secret"}},
                "content": {
                    "application/json": {
                        "schema": BoldSignTotpProvisioning.model_json_schema(by_alias=True),
                        "example": {
                            "authenticatorId": "6f1c2a9e4b7d4e0f",
                            "otpauthUri": "otpauth://totp/signgate:alexgayle%40cubeflakes.com"
                            "?secret=JBSWY3DPEHPK3PXP&issuer=signgate",
                            "secret": "JBSWY3DPEHPK3PXP",
                            "digits": 6,
                            "algorithm": "SHA1",
                            "periodSeconds": 30,
                        },
                    }
                },
            },
            _400=[
                MALFORMED_JSON,
                "an access code is required for AccessCode authentication",
                f"body.authenticationType: {wf.ID_VERIFICATION_NOT_OFFERED}",
            ],
        ),
    ),
    (
        "removeAuthentication",
        remove_authentication,
        "Remove authentication from the document",
        error_responses(),
    ),
    (
        "changeAccessCode",
        change_access_code,
        "Change the access code of a signer",
        error_responses(_409=["The signer does not authenticate with an access code"]),
    ),
)
for _path, _endpoint, _summary, _responses in _ROUTES:
    for _n, _spelling in enumerate(_both_spellings(_path)):
        router.add_api_route(
            f"/{_spelling}",
            _endpoint,
            methods=["PATCH"],
            summary=_summary,
            response_class=Response,
            responses=_responses,
            include_in_schema=_n == 0,
            operation_id=f"boldsign_{_path}" if _n == 0 else None,
        )
