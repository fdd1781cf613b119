"""A command sent and its outcome awaited, as a route needs it: the outcome, or `GatewayError`."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextvars import ContextVar

from pydantic import BaseModel, Field

from services.gateway.dependencies import GatewayDependencies
from services.gateway.errors import OUTCOME_TIMEOUT, GatewayError
from signgate_client import Outcome, OutcomeTimeout
from signgate_contracts.envelope import Command
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.workflow import RecipientTotpProvisioned

CORRELATION_HEADER = "X-Correlation-Id"
"""Names, on the answer, the command a request became (its events and logs carry the same id)."""

NO_STORE = {"Cache-Control": "no-store"}
"""On an answer that carries a secret (a provisioned TOTP secret): no cache keeps it."""

SENT: ContextVar[list[str] | None] = ContextVar("gateway_sent", default=None)
"""The correlation ids of the commands the request in hand sent (set per request by `CorrelationMiddleware`)."""


async def outcome_of(
    deps: GatewayDependencies,
    command: Command,
    *,
    reply: bool | None = None,
    effects: Collection[str] = (),
    refusal: Callable[[CommandRejected], GatewayError] | None = None,
) -> Outcome:
    """Publish ``command`` on this instance's client and await its outcome: a refusal is raised
    as the rejection's status and text (or as ``refusal`` says, for a vendor whose texts differ),
    no outcome within the timeout as 504."""
    sent = SENT.get()
    if sent is not None:
        sent.append(str(command.correlation_id))
    try:
        outcome = await deps.client.send(
            command,
            timeout=deps.settings.outcome_timeout_seconds,
            reply=reply,
            effects=effects,
        )
    except OutcomeTimeout:
        raise GatewayError(504, OUTCOME_TIMEOUT) from None
    if outcome.rejection is not None:
        raise (refusal or rejection_error)(outcome.rejection)
    return outcome


def rejection_error(rejection: CommandRejected) -> GatewayError:
    """A `command.rejected` as the HTTP answer: its status and text (the seed's), Retry-After on a 429."""
    headers = {}
    if rejection.status == 429:
        headers["Retry-After"] = str(max(rejection.retry_after_seconds or 1, 1))
    return GatewayError(rejection.status, rejection.message, headers)


class TotpProvisioning(BaseModel):
    """A new authenticator-app secret for the recipient, answered only to the caller who set it
    (``Cache-Control: no-store``) and never again: show ``otpauth_uri`` to the recipient as a QR
    code, or ``secret`` to type in."""

    authenticator_id: str = Field(description="This provisioning; a new one has a new id.")
    otpauth_uri: str = Field(description="otpauth://totp/... with the secret: for a QR code.")
    secret: str = Field(description="The base32 secret, to type in.")
    digits: int = 6
    algorithm: str = "SHA1"
    period_seconds: int = 30


def provisioned_totp(outcome: Outcome) -> TotpProvisioning | None:
    """The TOTP secret a command provisioned for its recipient (the reply to this caller only),
    as the HTTP answer gives it; None when the command provisioned none."""
    reply = outcome.reply
    if not isinstance(reply, RecipientTotpProvisioned):
        return None
    return TotpProvisioning(
        authenticator_id=reply.authenticator_id,
        otpauth_uri=reply.otpauth_uri.get_secret_value(),
        secret=reply.secret.get_secret_value(),
        digits=reply.digits,
        algorithm=reply.algorithm,
        period_seconds=reply.period_seconds,
    )
