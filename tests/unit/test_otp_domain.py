"""OTP dispatch rules without I/O: codes, message texts, refusals, outcomes, and the provider retry policy."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from libs.security.otp_store import Issued, OtpRecipient, SendRefused
from services.otp_dispatch.domain import (
    INTERRUPTED,
    delivery_of,
    delivery_outcome,
    generate_code,
    interrupted_outcome,
    refusal,
    send_refusal,
)
from services.otp_dispatch.message_templates import load_message_templates
from services.otp_dispatch.providers import Delivery, DeliveryFailed, Receipt, deliver_with_retries
from signgate_contracts.otp import OtpDeliveryFailed, OtpDeliveryRequested, OtpSent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_code_has_six_digits_by_default() -> None:
    """Without a length a code is six decimal digits."""
    code = generate_code()
    assert len(code) == 6 and code.isdigit()


@pytest.mark.parametrize("length", [6, 7, 8, 9])
def test_a_code_has_the_requested_length(length: int) -> None:
    """Lengths from six to nine digits are honoured."""
    assert len(generate_code(length)) == length


@pytest.mark.parametrize("length", [5, 10])
def test_lengths_outside_six_to_nine_are_refused(length: int) -> None:
    """A code shorter than six or longer than nine digits is not generated."""
    with pytest.raises(ValueError, match="6 to 9"):
        generate_code(length)


def test_codes_come_from_the_os_csprng_and_keep_leading_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code is `secrets.randbelow(10**n)`, zero-padded, so every code of n digits is possible."""
    calls = []

    def randbelow(bound: int) -> int:
        calls.append(bound)
        return 42

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    assert generate_code(6) == "000042" and calls == [10**6]


def test_codes_vary() -> None:
    """Two hundred codes are not all alike (a smoke test of the randomness source)."""
    assert len({generate_code() for _ in range(200)}) > 150


@pytest.mark.parametrize(
    ("limit", "code"),
    [("cooldown", "otp_resend_cooldown"), ("recipient", "otp_recipient_send_limit"),
     ("destination", "otp_destination_send_limit")],
)
def test_each_spent_limit_has_its_own_code_and_says_when_to_retry(limit: str, code: str) -> None:
    """A refusal names the limit in a stable code and the seconds to wait in its message."""
    assert send_refusal(limit, 27) == (code, send_refusal(limit, 27)[1])  # type: ignore[arg-type]
    assert "27 seconds" in send_refusal(limit, 27)[1]  # type: ignore[arg-type]


def request(**fields: object) -> OtpDeliveryRequested:
    values: dict[str, object] = {"package_id": "pkg-1", "order": 2, "channel": "sms", "destination": "+447700908899"}
    return OtpDeliveryRequested(**(values | fields))  # type: ignore[arg-type]


def issued(challenge_id: UUID) -> Issued:
    return Issued(challenge_id, T0, T0 + timedelta(minutes=5), T0 + timedelta(seconds=30), 2, 3)


def test_a_spent_limit_is_a_429_answering_the_request() -> None:
    """A refused request is answered 429 with the limit's code, the seconds to wait, and the request named."""
    asked = request()
    rejection = refusal(asked, SendRefused("destination", T0 + timedelta(seconds=99.5), T0))
    assert (rejection.status, rejection.code, rejection.retry_after_seconds) == (429, "otp_destination_send_limit", 100)
    assert (rejection.command_type, rejection.command_event_id) == ("otp.delivery_requested", asked.event_id)
    assert "in 100 seconds" in rejection.message


def test_the_provider_is_handed_the_code_its_text_and_when_it_expires() -> None:
    """What a provider delivers holds the code in the text only, with the subject of its purpose."""
    asked = request(purpose="signing", order=None, user_id="u-1", document_id="d-1", field_name="f")
    templates = load_message_templates("en", "Acme Leasing")
    delivery = delivery_of(asked, "482913", timedelta(minutes=5), issued(asked.challenge_id), templates)
    assert (delivery.code, delivery.destination, delivery.expires_at) == ("482913", "+447700908899", T0 + timedelta(minutes=5))
    assert delivery.text == ("Your Acme Leasing code to sign your document is 482913. It expires in 5 minutes. "
                             "Do not share it with anyone.")
    assert delivery.subject == "Your Acme Leasing code to sign" and delivery.html is None


def test_the_provider_is_handed_the_message_in_the_recipients_locale_with_the_senders_brand() -> None:
    """A request's locale and brand choose the text: a French email with its HTML body, under the sender's brand."""
    asked = request(channel="email", destination="bob@example.com", locale="fr-CA", brand_name="Baux Dupont")
    delivery = delivery_of(asked, "482913", timedelta(minutes=5), issued(asked.challenge_id),
                           load_message_templates("en", "signgate"))
    assert delivery.subject == "Votre code Baux Dupont"
    assert "Votre code Baux Dupont pour ouvrir votre document est" in delivery.text and "482913" in delivery.text
    assert delivery.html is not None and "482913" in delivery.html


def test_a_delivered_code_is_sent_with_its_times_and_a_masked_destination() -> None:
    """A receipt makes OtpSent (expiry, resend time, sends left, the provider's message id); nothing is withdrawn."""
    asked = request()
    settlement = delivery_outcome(asked, "sandbox", issued(asked.challenge_id), Receipt("sandbox", "m-7"))
    sent = settlement.outcome
    assert isinstance(sent, OtpSent) and settlement.withdraw is None
    assert (sent.destination, sent.provider, sent.provider_message_id) == ("+44******8899", "sandbox", "m-7")
    assert (sent.expires_at, sent.resend_available_at, sent.sends_remaining) == (
        T0 + timedelta(minutes=5), T0 + timedelta(seconds=30), 3)


def test_an_undelivered_code_fails_with_the_reason_and_is_withdrawn() -> None:
    """A provider's failure makes OtpDeliveryFailed with its reason, and withdraws the request's code."""
    asked = request(channel="email", destination="erin@example.com")
    settlement = delivery_outcome(asked, "smtp", issued(asked.challenge_id), DeliveryFailed("smtp 550", transient=False))
    failed = settlement.outcome
    assert isinstance(failed, OtpDeliveryFailed) and settlement.withdraw == asked.challenge_id
    assert (failed.reason, failed.destination, failed.resend_available_at) == (
        "smtp 550", "e***@example.com", T0 + timedelta(seconds=30))


def test_an_interrupted_delivery_fails_closed_and_withdraws_the_pending_code() -> None:
    """A request issued but never settled is answered failed ("outcome unknown") and its pending code withdrawn."""
    asked, pending = request(), uuid4()
    settlement = interrupted_outcome(asked, "http_sms", pending=pending)
    assert isinstance(settlement.outcome, OtpDeliveryFailed) and settlement.outcome.reason == INTERRUPTED
    assert settlement.withdraw == pending
    assert interrupted_outcome(asked, "http_sms", pending=None).withdraw == asked.challenge_id


def test_retry_after_rounds_up_to_a_whole_second() -> None:
    """A refusal 20.2 s before the limit frees tells the caller 21 s, and never less than 1 s."""
    assert SendRefused("cooldown", T0 + timedelta(seconds=20.2), T0).retry_after_seconds == 21
    assert SendRefused("cooldown", T0, T0).retry_after_seconds == 1


def test_a_recipient_id_is_fixed_length_whatever_its_ids_hold() -> None:
    """Package ids with separators or unicode still give a 32-character key-safe id, distinct per recipient."""
    odd = OtpRecipient.document_opening("pkg:with/odd*chars é", 2)
    assert len(odd.id) == 32 and odd.id.isalnum()
    assert odd.id != OtpRecipient.document_opening("pkg:with/odd*chars é", 3).id


class FlakyProvider:
    name = "flaky"

    def __init__(self, failures: list[DeliveryFailed | Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def deliver(self, delivery: Delivery) -> Receipt:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Receipt(self.name, "m-1")


def delivery() -> Delivery:
    return Delivery(uuid4(), "sms", "+447700908899", "482913", "text 482913", "subject", "signing", T0)


async def test_transient_failures_are_retried_until_delivery() -> None:
    """Two transient failures then a success make three calls and a receipt."""
    provider = FlakyProvider([DeliveryFailed("http 503", transient=True), ConnectionResetError("x")])
    receipt = await deliver_with_retries(provider, delivery(), attempts=3, first_delay=0, timeout=5)
    assert (receipt.message_id, provider.calls) == ("m-1", 3)


async def test_retries_are_bounded() -> None:
    """A provider that keeps failing is called `attempts` times, then the last failure is raised."""
    provider = FlakyProvider([DeliveryFailed("http 503", transient=True)] * 5)
    with pytest.raises(DeliveryFailed, match="http 503"):
        await deliver_with_retries(provider, delivery(), attempts=3, first_delay=0, timeout=5)
    assert provider.calls == 3


async def test_a_permanent_failure_is_not_retried() -> None:
    """A refusal such as a bad number is raised after one call."""
    provider = FlakyProvider([DeliveryFailed("http 400", transient=False)])
    with pytest.raises(DeliveryFailed):
        await deliver_with_retries(provider, delivery(), attempts=3, first_delay=0, timeout=5)
    assert provider.calls == 1


async def test_an_unexpected_error_is_reduced_to_its_type_name() -> None:
    """A provider bug whose message holds the code surfaces as its type name only."""
    provider = FlakyProvider([RuntimeError("failed to send 482913")])
    with pytest.raises(DeliveryFailed) as raised:
        await deliver_with_retries(provider, delivery(), attempts=1, first_delay=0, timeout=5)
    assert raised.value.reason == "RuntimeError" and "482913" not in str(raised.value)


def test_a_delivery_repr_hides_the_code_and_destination() -> None:
    """Logging a Delivery by accident shows neither the code nor the phone number."""
    shown = repr(delivery())
    assert "482913" not in shown and "7700908899" not in shown
