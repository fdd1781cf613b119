"""SigningHub v3 over HTTP (``Authorization: Bearer <token>``): the seeds' paths, bodies and texts.

Each route turns its request into one command with the caller's token (`*_command`), awaits the
outcome (`outcome_of`) and answers with the seed's body (`*_view`); a refusal is the
rejection's status and text as ``{"Message": "..."}``. The translations are pure functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from services.gateway.dependencies import GatewayDependencies, dependencies
from services.gateway.errors import (
    BODY_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_JSON,
    OUTCOME_TIMEOUT,
    RATE_LIMITED,
)
from services.gateway.outcomes import outcome_of
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


Token = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Deps = Annotated[GatewayDependencies, Depends(dependencies)]
PackagePath = Annotated[str, Path(min_length=1, max_length=100, description="The package id.")]
OrderPath = Annotated[
    int, Path(ge=1, le=50, description="The recipient's order in the workflow, 1-50.")
]


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
    response_class=Response,
    responses={
        200: {"description": "OK (no body)"},
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
        Body(openapi_examples={"seed 000": {"summary": "Seed 000", "value": SEED_000_BODY}}),
    ],
    token: Token,
    deps: Deps,
) -> Response:
    await outcome_of(deps, update_authentication_command(package_id, order, body, token_of(token)))
    return Response(status_code=200)


class PasswordView(BaseModel):
    enabled: bool


class SmsOtpView(BaseModel):
    enabled: bool
    mobile_number: str = Field(description="Masked.")


class AuthenticationView(BaseModel):
    enabled: bool
    password: PasswordView
    sms_otp: SmsOtpView


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
            enabled=bool(methods & {"password", "sms_otp"}),
            password=PasswordView(enabled="password" in methods),
            sms_otp=SmsOtpView(enabled="sms_otp" in methods, mobile_number=mobile or ""),
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
