"""The reference the crash run checks real recipients' answers against (tests.support.recipient_traffic)."""

from __future__ import annotations

from signgate_contracts import authentication as auth
from tests.support.recipient_traffic import (
    LOCKED,
    SENT,
    UNDELIVERED,
    Attempt,
    Recipient,
    expected_outcomes,
)

FAILED = "authentication.recipient_authentication_failed"
LOCKED_OUT = "authentication.recipient_locked_out"
AUTHENTICATED = "authentication.recipient_authenticated"


def _secret(retries: int, *steps: str) -> Recipient:
    recipient = Recipient("p", 1, 1, retries, list(steps))
    recipient.attempts = [Attempt(s, auth.OpenDocumentWithPassword(package_id="p", order=1, password=s))
                          for s in steps]
    return recipient


def _otp(retries: int, *attempts: tuple[str, str | None]) -> Recipient:
    recipient = Recipient("p", 2, 1, retries, [s for s, _ in attempts])
    recipient.attempts = [
        Attempt(s, auth.RequestDocumentOtp(package_id="p", order=2) if s == "request"
                else auth.VerifyDocumentOtp(package_id="p", order=2, code=code or "0"), code)
        for s, code in attempts]
    return recipient


def test_the_retry_counts_wrong_secret_locks_and_everything_after_is_refused() -> None:
    """The retry count's wrong access code locks; the right code after it is refused as locked."""
    recipient = _secret(2, "wrong", "wrong", "right", "wrong")
    assert expected_outcomes(recipient, [None] * 4) == [
        (FAILED, "wrong_secret", 1), (LOCKED_OUT, None, 2), LOCKED, LOCKED]


def test_the_right_secret_starts_the_count_again() -> None:
    """A right access code between wrong ones forgets the failures before it."""
    recipient = _secret(2, "wrong", "right", "wrong", "right")
    assert expected_outcomes(recipient, [None] * 4) == [
        (FAILED, "wrong_secret", 1), (AUTHENTICATED, "access_code", None), (FAILED, "wrong_secret", 1),
        (AUTHENTICATED, "access_code", None)]


def test_a_delivered_code_opens_once_and_an_undelivered_one_never() -> None:
    """The delivered code opens once (again: no code pending, not counted); after an undelivered
    request nothing is pending; wrong codes count across codes up to the lock."""
    recipient = _otp(2, ("request", "111111"), ("right", "111111"), ("again", "111111"),
                     ("request", None), ("right", "111111"), ("wrong", "222222"), ("request", "333333"),
                     ("wrong", "444444"), ("wrong", "555555"), ("right", "333333"))
    observed = [SENT, None, None, UNDELIVERED, None, None, SENT, None, None, None]
    assert expected_outcomes(recipient, observed) == [
        SENT, (AUTHENTICATED, "sms_otp", None), (FAILED, "no_pending_code", 0), UNDELIVERED,
        (FAILED, "no_pending_code", 0), (FAILED, "no_pending_code", 0), SENT, (FAILED, "wrong_secret", 1), (LOCKED_OUT, None, 2), LOCKED]
