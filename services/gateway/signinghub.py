"""SigningHub v3 over HTTP (``Authorization: Bearer <token>``): the seeds' paths, bodies and texts.

Each route turns its request into one command with the caller's token (`*_command`), awaits the
outcome (`outcome_of`) and answers with the seed's body (`*_view`); a refusal is the
rejection's status and text as ``{"Message": "..."}``. The translations are pure functions.

Authenticator apps (TOTP, signgate's addition): setting ``authentication.totp`` with a provisioned
secret (or an unlock with ``totp_source: provisioned``) answers the secret in the body, to this
caller only, not to be cached; ``POST .../authentication/totp`` opens with the app's code. It is a
path of its own rather than ``.../otp`` with a body, because a bodiless ``.../otp`` generates an
SMS or email code and the gateway does not know a recipient's method without asking for it: a
separate path keeps SigningHub's OTP calls exactly as they were and says which code is meant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from libs.security.totp import GUESSES_EXHAUSTED
from services.gateway.dependencies import GatewayDependencies, dependencies
from services.gateway.errors import (
    BODY_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_JSON,
    OUTCOME_TIMEOUT,
    RATE_LIMITED,
    GatewayError,
)
from services.gateway.outcomes import NO_STORE, TotpProvisioning, outcome_of, provisioned_totp
from signgate_client import Outcome
from signgate_contracts import authentication as auth
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret

router = APIRouter(prefix="/v3", tags=["SigningHub v3"])

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SigningHubBearer",
    description="An API user's access token (identity's AuthenticateUser).",
)

SEED_000_BODY: dict[str, Any] = {
    "apply_to_all": True,
    "authentication": {
        "enabled": True,
        "password": {"enabled": True, "user_password": ""},
        "sms_otp": {"enabled": False, "mobile_number": "00445566778899"},
    },
    "access_duration": {
        "enabled": True,
        "duration_by_date": {
            "enabled": True,
            "duration": {
                "start_date_time": "2015-02-13T12:10:000Z",
                "end_date_time": "2015-02-28T12:10:000Z",
            },
        },
        "duration_by_days": {"enabled": False, "duration": {"total_days": 4}},
    },
}
"""Seed 000's request body, verbatim (its three-digit seconds included)."""

TOTP_PROVISIONED_BODY: dict[str, Any] = {
    "apply_to_all": True,
    "authentication": {"enabled": True, "totp": {"enabled": True, "source": "provisioned"}},
}
TOTP_SIGNER_APP_BODY: dict[str, Any] = {
    "apply_to_all": True,
    "authentication": {"enabled": True, "totp": {"enabled": True, "source": "user_authenticator"}},
}


class SigningHubError(BaseModel):
    """SigningHub's error body."""

    Message: str


_COMMON_ERRORS: dict[int, list[str]] = {
    400: [MALFORMED_JSON],
    401: ["Request authorization denied", "User authentication required"],
    413: [BODY_TOO_LARGE],
    429: [RATE_LIMITED],
    500: [INTERNAL_ERROR],
    504: [OUTCOME_TIMEOUT],
}


def error_responses(**texts: list[str]) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: the common ones and ``texts`` by status
    (``_403=[...]``), each text an example of ``{"Message": ...}``."""
    by_status = {**_COMMON_ERRORS, **{int(k.lstrip("_")): v for k, v in texts.items()}}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        examples = {
            f"example {n}": {"value": {"Message": text}}
            for n, text in enumerate(by_status[status], 1)
        }
        responses[status] = {
            "model": SigningHubError,
            "description": by_status[status][0],
            "content": {"application/json": {"examples": examples}},
        }
    if 429 in responses:
        responses[429]["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return responses


def token_of(credentials: HTTPAuthorizationCredentials | None) -> Secret | None:
    """The bearer token as a command carries it (None: the service answers 401)."""
    return Secret(credentials.credentials) if credentials and credentials.credentials else None


def invitation_of(header: str | None) -> Secret | None:
    return Secret(header) if header else None


Token = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Invitation = Annotated[
    str | None,
    Header(
        alias="X-Recipient-Invitation",
        description="The recipient's invitation (from their signing link), for a recipient "
        "acting for themself; the owner's bearer token is enough otherwise.",
    ),
]
Deps = Annotated[GatewayDependencies, Depends(dependencies)]
PackagePath = Annotated[str, Path(min_length=1, max_length=100, description="The package id.")]
OrderPath = Annotated[
    int, Path(ge=1, le=50, description="The recipient's order in the workflow, 1-50.")
]
Channel = Annotated[
    Literal["sms", "voice", "email"] | None,
    Query(
        description="signgate's addition, for generating a code: how it is sent, among the channels "
        "the recipient's policy allows (a mobile number: `sms` or `voice`, a call that reads it "
        "out); the policy's own channel if left out."
    ),
]


def recipient_named(
    package_id: str,
    order: int,
    token: HTTPAuthorizationCredentials | None,
    invitation: str | None,
) -> dict[str, Any]:
    """A recipient command's naming and credentials: the recipient by package and order, with the
    owner's token or the recipient's invitation (whichever came)."""
    return {
        "package_id": package_id,
        "order": order,
        "access_token": token_of(token),
        "invitation": invitation_of(invitation),
    }


# -- Update / Get Workflow User Authentication (Document Opening) --


def update_authentication_command(
    package_id: str, order: int, body: wf.SigningHubAuthenticationBody, token: Secret | None
) -> wf.UpdateRecipientAuthentication:
    return wf.UpdateRecipientAuthentication(
        package_id=package_id, order=order, body=body, access_token=token
    )


@router.put(
    "/packages/{package_id}/workflow/{order}/authentication",
    summary="Update Workflow User Authentication (Document Opening)",
    description="Seed 000's body answers 200 with no body. With `authentication.totp` enabled and "
    "`source: provisioned`, a new authenticator-app secret is made for the recipient and answered "
    "in the body, to this caller only (`Cache-Control: no-store`); `user_authenticator` uses the "
    "app the recipient's signer (an API user) confirmed, and answers no body.",
    response_class=Response,
    responses={
        200: {
            "description": "OK: no body, or the provisioned TOTP secret",
            "headers": {"Cache-Control": {"description": "no-store, with a secret"}},
            "content": {
                "application/json": {
                    "schema": TotpProvisioning.model_json_schema(),
                    "example": {
                        "authenticator_id": "6f1c2a9e4b7d4e0f",
                        "otpauth_uri": "otpauth://totp/signgate:signer%40example.com"
                        "?secret=JBSWY3DPEHPK3PXP&issuer=signgate",
                        "secret": "JBSWY3DPEHPK3PXP",
                        "digits": 6,
                        "algorithm": "SHA1",
                        "period_seconds": 30,
                    },
                }
            },
        },
        **error_responses(
            _403=[
                "Document is no longer in draft state",
                "Document does not belong to user",
                "You are not allowed to perform this action on locked workflow",
                "Account is disabled",
            ],
            _404=["Document not found", "No user found at given order"],
        ),
    },
)
async def update_workflow_user_authentication(
    package_id: PackagePath,
    order: OrderPath,
    body: Annotated[
        wf.SigningHubAuthenticationBody,
        Body(
            openapi_examples={
                "seed 000": {"summary": "Seed 000", "value": SEED_000_BODY},
                "TOTP, provisioned": {
                    "summary": "Authenticator app: a new secret, answered in the body",
                    "value": TOTP_PROVISIONED_BODY,
                },
                "TOTP, the signer's app": {
                    "summary": "Authenticator app of the API user named as the signer",
                    "value": TOTP_SIGNER_APP_BODY,
                },
            }
        ),
    ],
    token: Token,
    deps: Deps,
) -> Response:
    command = update_authentication_command(package_id, order, body, token_of(token))
    provisioned = provisioned_totp(await outcome_of(deps, command))
    if provisioned is None:
        return Response(status_code=200)
    return JSONResponse(provisioned.model_dump(), headers=NO_STORE)


class PasswordView(BaseModel):
    enabled: bool


class SmsOtpView(BaseModel):
    enabled: bool
    mobile_number: str = Field(description="Masked.")


class TotpView(BaseModel):
    enabled: bool
    source: wf.TotpSource | None = Field(
        default=None,
        description="provisioned (a secret made for the recipient) or user_authenticator (the "
        "signer's app); never the secret.",
    )


class AuthenticationView(BaseModel):
    enabled: bool
    password: PasswordView
    sms_otp: SmsOtpView
    totp: TotpView = Field(description="Codes from an authenticator app (not in SigningHub's).")


class DateRangeView(BaseModel):
    start_date_time: str | None
    end_date_time: str | None


class DurationByDateView(BaseModel):
    enabled: bool
    duration: DateRangeView


class DayCountView(BaseModel):
    total_days: int


class DurationByDaysView(BaseModel):
    enabled: bool
    duration: DayCountView


class AccessDurationView(BaseModel):
    enabled: bool
    duration_by_date: DurationByDateView
    duration_by_days: DurationByDaysView


class WorkflowUserAuthentication(BaseModel):
    """What Get Workflow User Authentication answers: the PUT's body as it stands, no secrets."""

    model_config = ConfigDict(frozen=True)

    authentication: AuthenticationView
    access_duration: AccessDurationView


def signinghub_time(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as SigningHub writes times."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def authentication_view(
    described: wf.RecipientAuthenticationDescribed,
) -> WorkflowUserAuthentication:
    """A recipient's settings in SigningHub's shape (the destination masked, no password)."""
    policy = described.authentication
    methods = set(policy.methods) if policy else set()
    mobile = (
        policy.destination_masked
        if policy and "sms_otp" in methods and policy.destination_masked
        else described.recipient.mobile_masked
    )
    window = described.access_window
    by_date = bool(window and (window.starts_at or window.ends_at))
    days = window.days_after_receipt if window else None
    return WorkflowUserAuthentication(
        authentication=AuthenticationView(
            enabled=bool(methods & {"password", "sms_otp", "totp"}),
            password=PasswordView(enabled="password" in methods),
            sms_otp=SmsOtpView(enabled="sms_otp" in methods, mobile_number=mobile or ""),
            totp=TotpView(
                enabled="totp" in methods,
                source=policy.totp_source if policy and "totp" in methods else None,
            ),
        ),
        access_duration=AccessDurationView(
            enabled=window is not None,
            duration_by_date=DurationByDateView(
                enabled=by_date,
                duration=DateRangeView(
                    start_date_time=signinghub_time(window.starts_at if window else None),
                    end_date_time=signinghub_time(window.ends_at if window else None),
                ),
            ),
            duration_by_days=DurationByDaysView(
                enabled=days is not None, duration=DayCountView(total_days=days or 0)
            ),
        ),
    )


@router.get(
    "/packages/{package_id}/workflow/{order}/authentication",
    summary="Get Workflow User Authentication (Document Opening)",
    responses=error_responses(
        _403=["Document does not belong to user", "Account is disabled"],
        _404=["Document not found", "No user found at given order"],
    ),
)
async def get_workflow_user_authentication(
    package_id: PackagePath, order: OrderPath, token: Token, deps: Deps
) -> WorkflowUserAuthentication:
    command = wf.GetRecipientAuthentication(
        package_id=package_id, order=order, access_token=token_of(token)
    )
    outcome = await outcome_of(deps, command)
    assert isinstance(outcome.reply, wf.RecipientAuthenticationDescribed), outcome.reply
    return authentication_view(outcome.reply)


# -- Open Document via Password / via OTP (Generate, and verify) --

ACCESS_GRANTED = "access to the document is granted"
"""SigningHub's 200 text for an opened document."""
METHOD_PASSED = "Authentication succeeded; another method is still required to open the document"
FAILED_TEXTS = {
    "wrong_secret": "The {what} is incorrect",
    "expired_code": "The OTP has expired: generate a new one",
    "no_pending_code": "No OTP is pending: generate one first",
}
"""The texts of a failed attempt (403), by the failure's reason."""
LOCKED_OUT = "Too many failed attempts: the recipient is locked until the sender resets it"

OPENING_ERRORS = error_responses(
    _400=[MALFORMED_JSON, "Authentication is not enabled for this recipient"],
    _403=[
        "Document does not belong to user",
        "Account is disabled",
        "You cannot access this document after the access period ends",
        "The password is incorrect",
        LOCKED_OUT,
    ],
    _404=["Document not found", "No user found at given order"],
)


class PasswordBody(BaseModel):
    """Open Document via Password's body."""

    password: Secret = Field(description="The password the sender set.", max_length=200)


class DocumentOtpBody(BaseModel):
    """Open Document via OTP: no body generates a code; ``otp`` verifies the one received."""

    otp: Secret = Field(description="The code the recipient received.", max_length=20)


class AccessGranted(BaseModel):
    """A document opened: SigningHub's text; the grant that opens it, once every method passed."""

    Message: str = Field(examples=[ACCESS_GRANTED])
    access_grant: str | None = Field(
        default=None,
        description="The signed document-access grant (verify with the published keys).",
    )
    expires_at: str | None = None


def opened_view(outcome: Outcome, what: str) -> AccessGranted:
    """A password or OTP attempt's outcome: the document opened, one method passed, or 403."""
    event = outcome.event
    if isinstance(event, auth.RecipientAuthenticationFailed):
        raise GatewayError(403, FAILED_TEXTS[event.reason].format(what=what))
    if isinstance(event, auth.RecipientLockedOut):
        raise GatewayError(403, LOCKED_OUT)
    reply = outcome.reply
    if isinstance(reply, auth.DocumentAccessGranted):
        return AccessGranted(
            Message=ACCESS_GRANTED,
            access_grant=reply.grant.get_secret_value(),
            expires_at=signinghub_time(reply.expires_at),
        )
    return AccessGranted(Message=METHOD_PASSED)


@router.post(
    "/packages/{package_id}/workflow/{order}/authentication/password",
    summary="Open Document via Password",
    responses=OPENING_ERRORS,
)
async def open_document_via_password(
    package_id: PackagePath,
    order: OrderPath,
    body: Annotated[
        PasswordBody,
        Body(openapi_examples={"seed": {"value": {"password": "12345678"}}}),
    ],
    token: Token,
    deps: Deps,
    invitation: Invitation = None,
) -> AccessGranted:
    command = auth.OpenDocumentWithPassword(
        **recipient_named(package_id, order, token, invitation), password=body.password
    )
    return opened_view(await outcome_of(deps, command), "password")


@router.post(
    "/packages/{package_id}/workflow/{order}/authentication/otp",
    summary="Open Document via OTP (Generate, or verify with a body)",
    responses={
        200: {"description": "OK: generated (no body), or the document opened"},
        **OPENING_ERRORS,
    },
    response_model=AccessGranted | None,
)
async def open_document_via_otp(
    package_id: PackagePath,
    order: OrderPath,
    token: Token,
    deps: Deps,
    invitation: Invitation = None,
    channel: Channel = None,
    body: Annotated[
        DocumentOtpBody | None,
        Body(openapi_examples={"verify": {"value": {"otp": "123456"}}}),
    ] = None,
) -> Any:
    named = recipient_named(package_id, order, token, invitation)
    if body is None:
        await outcome_of(deps, auth.RequestDocumentOtp(**named, channel=channel))
        return Response(status_code=200)
    outcome = await outcome_of(deps, auth.VerifyDocumentOtp(**named, code=body.otp))
    return opened_view(outcome, "OTP")


class TotpCodeBody(BaseModel):
    """Open Document via Authenticator App's body."""

    otp: Secret = Field(
        description="The code the recipient's authenticator app shows now.", max_length=20
    )


@router.post(
    "/packages/{package_id}/workflow/{order}/authentication/totp",
    summary="Open Document via Authenticator App (TOTP)",
    description="For a recipient whose method is `totp`: the code their authenticator app shows. "
    "A code opens once (409 when its time step was used, which spends no attempt); a wrong "
    "code spends one of the recipient's attempts, as a wrong password or OTP does, and one "
    "of the ceiling of wrong codes of the secret's owner (429 past it, with Retry-After, and "
    "the code is not checked).",
    responses=error_responses(
        _400=[
            MALFORMED_JSON,
            "Authentication is not enabled for this recipient",
            "No authenticator app is set up for this recipient: the API user named as their "
            "signer has none confirmed",
        ],
        _403=[
            "Document does not belong to user",
            "Account is disabled",
            "You cannot access this document after the access period ends",
            "The authenticator code is incorrect",
            LOCKED_OUT,
        ],
        _404=["Document not found", "No user found at given order"],
        _409=[auth.TOTP_CODE_USED],
        _429=[RATE_LIMITED, GUESSES_EXHAUSTED.format(seconds=840)],
    ),
)
async def open_document_via_totp(
    package_id: PackagePath,
    order: OrderPath,
    body: Annotated[TotpCodeBody, Body(openapi_examples={"code": {"value": {"otp": "287082"}}})],
    token: Token,
    deps: Deps,
    invitation: Invitation = None,
) -> AccessGranted:
    command = auth.VerifyDocumentTotp(
        **recipient_named(package_id, order, token, invitation), code=body.otp
    )
    return opened_view(await outcome_of(deps, command), "authenticator code")


# -- Signer Authentication via OTP (seed 002) --


class SigningOtpBody(BaseModel):
    """Seed 002's body; with ``otp``, the code received is verified instead of a new one sent."""

    field_name: str = Field(
        min_length=1, max_length=200, description="Unique identifier of the field in the document."
    )
    otp: Secret | None = Field(
        default=None,
        max_length=20,
        description="The code received, to verify; leave out to generate.",
    )


SIGNER_FAILED = {
    "wrong_secret": "The OTP is incorrect",
    "expired_code": "The OTP has expired: generate a new one",
    "no_pending_code": "No OTP is pending: generate one first",
}


def signing_otp_command(
    package_id: str,
    document_id: str,
    body: SigningOtpBody,
    token: Secret | None,
    channel: Literal["sms", "voice"] | None = None,
) -> auth.RequestSigningOtp | auth.VerifySigningOtp:
    """Seed 002's request as its command: generate (by text, or by a call), or verify when the body
    carries the code."""
    named: dict[str, Any] = {
        "package_id": package_id,
        "document_id": document_id,
        "field_name": body.field_name,
        "access_token": token,
    }
    if body.otp is None:
        return auth.RequestSigningOtp(**named, channel=channel or "sms")
    return auth.VerifySigningOtp(**named, code=body.otp)


def signer_verified(outcome: Outcome) -> None:
    """A signer's code checked: nothing to say on success, 403 with why otherwise."""
    if isinstance(outcome.event, auth.SignerAuthenticationFailed):
        raise GatewayError(403, SIGNER_FAILED[outcome.event.reason])


@router.post(
    "/packages/{package_id}/documents/{document_id}/otp",
    summary="Signer Authentication via OTP (Users, In-persons, E-Signers)",
    response_class=Response,
    responses={
        200: {"description": "OK (no body)"},
        **error_responses(
            _400=[
                MALFORMED_JSON,
                "No mobile number is set in the user's profile: add one to receive the one-time password",
            ],
            _403=[
                "Document does not belong to user",
                "You cannot access this document after the access period ends",
                "Account is disabled",
                "The OTP is incorrect",
            ],
            _404=["Document not found"],
        ),
    },
)
async def signer_authentication_via_otp(
    package_id: PackagePath,
    document_id: Annotated[str, Path(min_length=1, max_length=100, description="The document id.")],
    body: Annotated[
        SigningOtpBody,
        Body(
            openapi_examples={
                "seed 002": {"summary": "Seed 002: generate", "value": {"field_name": "12345678"}},
                "verify": {"value": {"field_name": "12345678", "otp": "123456"}},
            }
        ),
    ],
    token: Token,
    deps: Deps,
    channel: Annotated[
        Literal["sms", "voice"] | None,
        Query(
            description="signgate's addition, for generating a code: `voice` calls the profile's "
            "mobile number and reads the code out; `sms` if left out."
        ),
    ] = None,
) -> Response:
    command = signing_otp_command(package_id, document_id, body, token_of(token), channel)
    signer_verified(await outcome_of(deps, command))
    return Response(status_code=200)


# -- Reset Workflow User Authentication: unlock one recipient (seed 003) --

UNLOCKED = "The recipient's authentication is reset"
"""The text of an unlock's 200."""


class ResetAuthenticationBody(BaseModel):
    """Seed 003 resends with ``{}``: the recipient's settings stay as they are. Or switch method,
    set a new password / access code, or another mobile number for SMS OTP, in the same step."""

    model_config = ConfigDict(extra="forbid")

    method: wf.Method | None = Field(
        default=None, description="Switch to this method; the current one if left out."
    )
    access_code: Secret | None = Field(
        default=None,
        max_length=200,
        description="A new password or access code (for those methods).",
    )
    mobile_number: wf.InternationalNumber | None = Field(
        default=None,
        max_length=40,
        description="For SMS OTP: another number (international); the one on record if left out.",
    )
    totp_source: wf.TotpSource | None = Field(
        default=None,
        description="For TOTP: provisioned makes a new secret (a lost phone), answered as `totp`.",
    )


class RecipientReset(BaseModel):
    """An unlocked recipient: whether they were locked, and (``resend_envelope``) the new
    invitation their signing link must carry, since the reset made the old one stale."""

    Message: str = Field(examples=[UNLOCKED])
    order: int
    was_locked: bool
    invitation: str | None = Field(
        default=None,
        description="The recipient's new invitation (put it in their signing link); none when "
        "the package is not out or the recipient has signed or declined.",
    )
    invitation_expires_at: str | None = None
    totp: TotpProvisioning | None = Field(
        default=None,
        description="With totp_source provisioned: the recipient's new secret, to this caller only.",
    )


def reset_command(
    package_id: str, order: int, body: ResetAuthenticationBody | None, token: Secret | None
) -> wf.ResetRecipientAuthentication:
    """The unlock as its command; the contract checks the number and the code."""
    settings = body.model_dump(exclude_none=True) if body else {}
    return wf.ResetRecipientAuthentication(
        package_id=package_id, order=order, access_token=token, **settings
    )


CLEARED = "authentication.recipient_authentication_cleared"
"""The authentication service's word that the recipient may try again: the unlock answers after it."""


@router.put(
    "/packages/{package_id}/workflow/{order}/authentication/reset",
    summary="Reset Workflow User Authentication (unlock one recipient)",
    description="Seed 003: a recipient locked out by wrong passwords, access codes or OTPs may "
    "try again, without voiding the package; every other recipient, their progress and their "
    "signatures stay as they were. With `resend_envelope` (the default) a new invitation for "
    "the recipient's signing link comes back: the reset makes their old link stale.",
    responses=error_responses(
        _400=[MALFORMED_JSON, "access_code applies only to password or access_code authentication"],
        _403=[
            "Document does not belong to user",
            "You are not allowed to perform this action on locked workflow",
            "Account is disabled",
        ],
        _404=["Document not found", "No user found at given order"],
        _409=["The workflow is terminated"],
    ),
)
async def reset_workflow_user_authentication(
    package_id: PackagePath,
    order: OrderPath,
    token: Token,
    deps: Deps,
    response: Response,
    resend_envelope: Annotated[
        bool,
        Query(description="Issue a new invitation for the recipient (seed 003's resend)."),
    ] = True,
    body: Annotated[
        ResetAuthenticationBody | None,
        Body(
            openapi_examples={
                "seed 003": {"summary": "Seed 003: unlock as is", "value": {}},
                "new access code": {"value": {"access_code": "Sesame-2"}},
                "switch to SMS OTP": {
                    "value": {"method": "sms_otp", "mobile_number": "+447700900123"}
                },
                "new authenticator-app secret": {
                    "value": {"method": "totp", "totp_source": "provisioned"}
                },
            }
        ),
    ] = None,
) -> RecipientReset:
    command = reset_command(package_id, order, body, token_of(token))
    outcome = await outcome_of(deps, command, effects={CLEARED})
    cleared = outcome.effects[CLEARED]
    assert isinstance(cleared, auth.RecipientAuthenticationCleared), cleared
    provisioned = provisioned_totp(outcome)
    answer = RecipientReset(
        Message=UNLOCKED,
        order=order,
        was_locked=cleared.was_locked,
        totp=provisioned,
    )
    if provisioned:
        response.headers.update(NO_STORE)
    if not resend_envelope:
        return answer
    invite = wf.IssueRecipientInvitation(
        package_id=package_id, order=order, access_token=command.access_token
    )
    try:
        issued = (await outcome_of(deps, invite)).reply
    except GatewayError as refused:
        if refused.status == 409:  # not out yet, or signed or declined: no link to resend
            return answer
        raise
    assert isinstance(issued, wf.RecipientInvitationIssued), issued
    return answer.model_copy(
        update={
            "invitation": issued.invitation.get_secret_value(),
            "invitation_expires_at": signinghub_time(issued.expires_at),
        }
    )


# -- Get Workflow History --

HISTORY_PAGE = 500
HISTORY_MOST = 10_000
"""Entries a history answer holds at most (the oldest first)."""


class HistoryAction(BaseModel):
    log_id: int
    date_time: str
    action_type: str = Field(description="The action, upper-case: PACKAGE_REGISTERED, ...")
    actor: str = Field(description="Who did it: a user id, or the service that recorded it.")
    order: int | None = Field(default=None, description="The recipient it concerned.")
    details: dict[str, Any] = Field(default_factory=dict)


class WorkflowHistory(BaseModel):
    package_id: str
    actions: list[HistoryAction]


def history_view(package_id: str, entries: list[wf.HistoryEntry]) -> WorkflowHistory:
    return WorkflowHistory(
        package_id=package_id,
        actions=[
            HistoryAction(
                log_id=entry.sequence,
                date_time=signinghub_time(entry.occurred_at) or "",
                action_type=entry.action.upper(),
                actor=entry.actor,
                order=entry.order,
                details=entry.details,
            )
            for entry in entries
        ],
    )


@router.get(
    "/packages/{package_id}/log",
    summary="Get Workflow History",
    responses=error_responses(
        _403=["Document does not belong to user", "Account is disabled"],
        _404=["Document not found"],
    ),
)
async def get_workflow_history(
    package_id: PackagePath, token: Token, deps: Deps
) -> WorkflowHistory:
    entries: list[wf.HistoryEntry] = []
    after = 0
    while len(entries) < HISTORY_MOST:
        command = wf.GetWorkflowHistory(
            package_id=package_id,
            after_sequence=after,
            limit=HISTORY_PAGE,
            access_token=token_of(token),
        )
        outcome = await outcome_of(deps, command)
        page = outcome.reply
        assert isinstance(page, wf.WorkflowHistoryListed), page
        entries += page.entries
        if page.next_after is None:
            break
        after = page.next_after
    return history_view(package_id, entries[:HISTORY_MOST])
