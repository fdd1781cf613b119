"""The one handler of OTP dispatch: issue a code within the send limits, deliver it, say what happened.

Idempotent by the request's ``event_id``: the OTP store claims the request in the same
atomic step that stores the code, so a redelivered request neither sends again nor stores
a second code; it gets the outcome recorded the first time.
"""

from __future__ import annotations

from libs.runtime.logging import get_logger
from libs.runtime.messaging.outgoing import Outgoing
from libs.security.otp_store import OtpRecipient, SeenBefore, SendRefused
from services.otp_dispatch.dependencies import OtpDispatchDependencies, OtpDispatchScope
from services.otp_dispatch.domain import (
    Settlement,
    delivery_of,
    delivery_outcome,
    generate_code,
    interrupted_outcome,
    refusal,
)
from services.otp_dispatch.providers import DeliveryFailed, Receipt, deliver_with_retries
from signgate_contracts import Message, decode, encode
from signgate_contracts.otp import OtpDeliveryRequested, OtpSent
from signgate_contracts.topics import OTP_EVENTS

log = get_logger(__name__)


async def handle_otp_delivery_requested(
    request: OtpDeliveryRequested, scope: OtpDispatchScope
) -> list[Outgoing]:
    """Exactly one outcome per request: OtpSent, OtpDeliveryFailed, or a 429 for a spent limit."""
    dependencies = scope.dependencies
    recipient = OtpRecipient.of(request)
    code = generate_code(dependencies.code_length)  # never the request's: a code's strength is ours
    issued = await dependencies.store.issue(
        request.event_id,
        recipient,
        challenge_id=request.challenge_id,
        code=code,
        channel=request.channel,
        destination=request.destination,
        ttl=dependencies.code_ttl,
        limits=dependencies.limits,
        now=dependencies.clock(),
    )
    if isinstance(issued, SendRefused):
        return [_refused(request, issued)]
    if isinstance(issued, SeenBefore):
        return [await _seen_before(dependencies, request, recipient, issued)]
    provider = dependencies.providers[request.channel]
    result: Receipt | DeliveryFailed
    try:
        result = await deliver_with_retries(
            provider,
            delivery_of(request, code, dependencies.code_ttl, issued, dependencies.templates),
            attempts=dependencies.delivery.attempts,
            first_delay=dependencies.delivery.first_delay,
            timeout=dependencies.delivery.timeout,
        )
    except DeliveryFailed as failure:
        result = failure
    settlement = delivery_outcome(request, provider.name, issued, result)
    _log_delivery(settlement, result)
    return [await _settle(dependencies, request, recipient, settlement)]


async def _seen_before(
    dependencies: OtpDispatchDependencies,
    request: OtpDeliveryRequested,
    recipient: OtpRecipient,
    seen: SeenBefore,
) -> Outgoing:
    """A redelivered request: the same outcome again, and nothing sent or stored."""
    log.info(
        "delivery request seen before", state=seen.state, challenge_id=str(request.challenge_id)
    )
    if seen.refusal is not None:
        return _refused(request, seen.refusal)
    if seen.outcome is None:  # issued, never settled: the earlier attempt stopped midway
        provider = dependencies.providers[request.channel].name
        return await _settle(
            dependencies,
            request,
            recipient,
            interrupted_outcome(request, provider, pending=seen.challenge_id),
        )
    return _published(request, decode(OTP_EVENTS, seen.outcome.encode()))


async def _settle(
    dependencies: OtpDispatchDependencies,
    request: OtpDeliveryRequested,
    recipient: OtpRecipient,
    settlement: Settlement,
) -> Outgoing:
    """Record the outcome (withdrawing an undelivered code) and publish the one that stands: a
    concurrent or earlier attempt's, if it recorded one first."""
    stored = await dependencies.store.settle(
        request.event_id,
        recipient,
        encode(settlement.outcome).decode(),
        withdraw=settlement.withdraw,
    )
    return _published(request, decode(OTP_EVENTS, stored.encode()))


def _refused(request: OtpDeliveryRequested, refused: SendRefused) -> Outgoing:
    log.info(
        "code not sent: send limit",
        limit=refused.limit,
        retry_after_seconds=refused.retry_after_seconds,
    )
    return _published(request, refusal(request, refused))


def _log_delivery(settlement: Settlement, result: Receipt | DeliveryFailed) -> None:
    outcome = settlement.outcome
    if isinstance(result, DeliveryFailed):
        log.warning(
            "code not delivered; withdrawn",
            challenge_id=str(outcome.challenge_id),
            provider=outcome.provider,
            reason=result.reason,
        )
    elif isinstance(outcome, OtpSent):
        log.info(
            "code delivered",
            challenge_id=str(outcome.challenge_id),
            provider=result.provider,
            channel=outcome.channel,
            destination=outcome.destination,
        )


def _published(request: OtpDeliveryRequested, message: Message) -> Outgoing:
    """On the OTP events topic, keyed by the challenge, as every OTP record is."""
    return Outgoing(OTP_EVENTS.name, str(request.challenge_id), message)
