"""The handler of OTP dispatch: issue a code within the send limits, deliver it, say what happened;
and the fallbacks: a failed delivery's next channel, now (the provider refused) or when the fallback
schedule says its receipt is overdue (`run_due_fallbacks`, each replica's sweep).

Idempotent by the request's ``event_id``: the OTP store claims the request in the same
atomic step that stores the code, so a redelivered request neither sends again nor stores
a second code; it gets the outcome recorded the first time. A fallback is a request of its own,
its ids derived from the failed one's (`domain.fallback_request`), so it is idempotent alike,
and the schedule's lease lets one process at a time run it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from libs.runtime.logging import get_logger
from libs.runtime.messaging.outgoing import Outgoing, caused_by
from libs.security.otp_store import OtpRecipient, SeenBefore, SendRefused
from services.otp_dispatch.dependencies import OtpDispatchDependencies, OtpDispatchScope
from services.otp_dispatch.domain import (
    FallbackOf,
    Settlement,
    awaits_receipt,
    delivery_of,
    delivery_outcome,
    fallback_after,
    fallback_limits,
    fallback_refused,
    fallback_request,
    fallback_started,
    generate_code,
    interrupted_outcome,
    refusal,
)
from services.otp_dispatch.fallbacks import ClaimedFallback
from services.otp_dispatch.providers import DeliveryFailed, Receipt, deliver_with_retries
from signgate_contracts import Message, decode, encode
from signgate_contracts.otp import OtpDeliveryRequested, OtpFallbackStarted, OtpSent
from signgate_contracts.topics import OTP_EVENTS

log = get_logger(__name__)


async def handle_otp_delivery_requested(
    request: OtpDeliveryRequested, scope: OtpDispatchScope
) -> list[Outgoing]:
    """Exactly one outcome per request: OtpSent, OtpDeliveryFailed, or a 429 for a spent limit;
    or OtpFallbackStarted, then the fallback's own outcome."""
    return await deliver(scope.dependencies, request)


async def deliver(
    dependencies: OtpDispatchDependencies,
    request: OtpDeliveryRequested,
    *,
    fallback: FallbackOf | None = None,
) -> list[Outgoing]:
    """Issue a code for ``request`` within the send limits, deliver it, and fall back if it failed
    (``fallback``: the request is itself a fallback's, sent under `fallback_limits`, its outcome
    marked so)."""
    limits = fallback_limits(dependencies.limits) if fallback else dependencies.limits
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
        limits=limits,
        now=dependencies.clock(),
    )
    if isinstance(issued, SendRefused):
        return [_refused(request, issued, fallback)]
    if isinstance(issued, SeenBefore):
        return await _seen_before(dependencies, request, recipient, issued, fallback)
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
    after = fallback_request(request)
    fallback_provider = dependencies.providers[after.channel].name if after else None
    settlement = delivery_outcome(
        request, provider.name, issued, result, fallback_provider, of=fallback
    )
    _log_delivery(settlement, result, provider.name)
    if awaits_receipt(request, result):  # before the outcome stands: a redelivery finds it done
        await dependencies.fallbacks.watch(
            request,
            reason="no_receipt",
            due=dependencies.clock() + dependencies.receipt_timeout(provider.name),
        )
    outcome = await _settle(dependencies, request, recipient, settlement)
    return [outcome, *await _fall_back_now(dependencies, request, outcome.message, fallback)]


async def _fall_back_now(
    dependencies: OtpDispatchDependencies,
    failed: OtpDeliveryRequested,
    stood: Message,
    of: FallbackOf | None,
) -> list[Outgoing]:
    """When the outcome that stands for ``failed`` (itself a fallback's when ``of``) is a fallback:
    schedule it due now (so that a crash leaves it to the sweep) and run it here, unless another
    process holds it. Nothing answered the request yet, unless ``of`` says so."""
    if not isinstance(stood, OtpFallbackStarted):
        return []
    fallbacks, now = dependencies.fallbacks, dependencies.clock()
    after = fallback_request(failed)
    assert after is not None, "a fallback outcome stands only for a request that names one"
    mark = fallback_after(failed.challenge_id, stood.reason, of, answered=False)
    if await fallbacks.watch(failed, reason=stood.reason, due=now) == "done":
        return await deliver(dependencies, after, fallback=mark)  # its outcome again; none sent
    claimed = await fallbacks.claim(failed.challenge_id, now=now, lease=dependencies.lease)
    if claimed is None:  # another process runs it (a run beside it would withdraw its code)
        return []
    outgoing = await deliver(dependencies, after, fallback=mark)
    await fallbacks.done(failed.challenge_id)
    return outgoing


async def run_due_fallbacks(
    dependencies: OtpDispatchDependencies,
    publish: Callable[[list[Outgoing]], Awaitable[None]],
) -> int:
    """Run every fallback the schedule says is due (a receipt overdue or reported undelivered),
    each claimed first so no other replica runs it too; each one's events are published before
    it is marked done, so a crash between the two repeats the same events (same ids). Returns
    how many ran."""
    now = dependencies.clock()
    ran = 0
    for challenge_id in await dependencies.fallbacks.due(now):
        claimed = await dependencies.fallbacks.claim(
            challenge_id, now=now, lease=dependencies.lease
        )
        if claimed is None:
            continue
        await publish(await _scheduled_fallback(dependencies, claimed))
        await dependencies.fallbacks.done(challenge_id)
        ran += 1
    return ran


async def _scheduled_fallback(
    dependencies: OtpDispatchDependencies, claimed: ClaimedFallback
) -> list[Outgoing]:
    """The events of one scheduled fallback, each caused by the request it answers: the step
    (caused by the failed request), then the new code's outcome (by the fallback's request), marked
    answered before: the failed code was sent, and its `OtpSent` answered the request."""
    failed = claimed.failed
    after = fallback_request(failed)
    if after is None:  # scheduled only for requests that name a fallback
        return []
    provider = dependencies.providers[after.channel].name
    started = fallback_started(failed, after, provider, claimed.reason)
    log.info(
        "delivery falls back",
        challenge_id=str(failed.challenge_id),
        from_channel=failed.channel,
        to_channel=after.channel,
        reason=claimed.reason,
    )
    mark = fallback_after(failed.challenge_id, claimed.reason, None, answered=True)
    outcomes = await deliver(dependencies, after, fallback=mark)
    return [
        _published(failed, caused_by(failed, started, index=1)),
        *(
            Outgoing(o.topic, o.key, caused_by(after, o.message, index=i))
            for i, o in enumerate(outcomes)
        ),
    ]


async def _seen_before(
    dependencies: OtpDispatchDependencies,
    request: OtpDeliveryRequested,
    recipient: OtpRecipient,
    seen: SeenBefore,
    fallback: FallbackOf | None,
) -> list[Outgoing]:
    """A redelivered request: the same outcome again, and nothing sent or stored (but a fallback
    that stands as its outcome is seen through: it may be what stopped midway)."""
    if seen.refusal is not None:
        return [_refused(request, seen.refusal, fallback)]
    outcome = await _seen_outcome(dependencies, request, recipient, seen, fallback)
    return [outcome, *await _fall_back_now(dependencies, request, outcome.message, fallback)]


async def _seen_outcome(
    dependencies: OtpDispatchDependencies,
    request: OtpDeliveryRequested,
    recipient: OtpRecipient,
    seen: SeenBefore,
    fallback: FallbackOf | None,
) -> Outgoing:
    log.info(
        "delivery request seen before", state=seen.state, challenge_id=str(request.challenge_id)
    )
    if seen.outcome is None:  # issued, never settled: the earlier attempt stopped midway
        provider = dependencies.providers[request.channel].name
        return await _settle(
            dependencies,
            request,
            recipient,
            interrupted_outcome(request, provider, pending=seen.challenge_id, of=fallback),
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


def _refused(
    request: OtpDeliveryRequested, refused: SendRefused, fallback: FallbackOf | None
) -> Outgoing:
    """The 429 for a spent limit; for a fallback, which nobody asked for (so no caller awaits a
    429 for it), the failure of its delivery."""
    log.info(
        "code not sent: send limit",
        limit=refused.limit,
        retry_after_seconds=refused.retry_after_seconds,
        fallback=fallback is not None,
    )
    if fallback is not None:
        return _published(request, fallback_refused(request, refused, fallback))
    return _published(request, refusal(request, refused))


def _log_delivery(settlement: Settlement, result: Receipt | DeliveryFailed, provider: str) -> None:
    outcome = settlement.outcome
    if isinstance(result, DeliveryFailed):
        log.warning(
            "code not delivered; withdrawn",
            challenge_id=str(settlement.withdraw),
            provider=provider,
            reason=result.reason,
            falls_back_to=settlement.fallback.channel if settlement.fallback else None,
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
