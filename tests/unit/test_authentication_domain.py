"""Rules of recipient authentication: windows, method, lock, the shared retry count and grant lifetimes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from libs.runtime.errors import NotFound
from services.authentication.domain import (
    ACCESS_PERIOD_ENDED,
    GRANT_LIFETIME,
    OTP_METHODS,
    SECRET_METHODS,
    AccessPeriodClosed,
    AccessWindow,
    AuthenticationNotEnabled,
    Failure,
    RecipientAttempts,
    RecipientLocked,
    RecipientPolicy,
    WrongMethod,
    check_attempt,
    grant_expiry,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = RecipientPolicy(package_id="p1", order=2, email="b@example.com", methods=("sms_otp",),
                         destination="+447700900123")


def test_unknown_recipient_is_not_found_with_the_seed_text() -> None:
    """No recipient at the order gives 404 "No user found at given order"."""
    with pytest.raises(NotFound, match="No user found at given order"):
        check_attempt(None, NOW, OTP_METHODS)


def test_recipient_without_authentication_cannot_attempt() -> None:
    """A recipient with no method set is told authentication is not enabled."""
    with pytest.raises(AuthenticationNotEnabled):
        check_attempt(replace(POLICY, methods=()), NOW, OTP_METHODS)


def test_method_mismatch_is_refused() -> None:
    """An OTP recipient cannot open with a password, and the reverse."""
    with pytest.raises(WrongMethod):
        check_attempt(POLICY, NOW, SECRET_METHODS)


def test_locked_recipient_is_refused_before_anything_else_is_checked() -> None:
    """A locked recipient is refused even inside the window."""
    with pytest.raises(RecipientLocked):
        check_attempt(replace(POLICY, locked_at=NOW), NOW, OTP_METHODS)


def test_before_the_window_opens_the_answer_is_403_with_a_clear_message() -> None:
    """Before the start date the recipient gets 403 saying the period has not started."""
    policy = replace(POLICY, window=AccessWindow(start=NOW + timedelta(seconds=1)))
    with pytest.raises(AccessPeriodClosed, match="before the access period starts") as refusal:
        check_attempt(policy, NOW, OTP_METHODS)
    assert refusal.value.status == 403


def test_after_the_end_date_the_seed_text_is_given() -> None:
    """After the end date the recipient gets 403 with the seed's text."""
    policy = replace(POLICY, window=AccessWindow(end=NOW - timedelta(seconds=1)))
    with pytest.raises(AccessPeriodClosed) as refusal:
        check_attempt(policy, NOW, OTP_METHODS)
    assert (refusal.value.status, refusal.value.message) == (403, ACCESS_PERIOD_ENDED)


def test_access_by_days_counts_from_receipt() -> None:
    """By-days access ends that many days after the recipient received the package."""
    received = NOW - timedelta(days=4)
    inside = replace(POLICY, window=AccessWindow(days=5), received_at=received)
    outside = replace(POLICY, window=AccessWindow(days=3), received_at=received)
    assert check_attempt(inside, NOW, OTP_METHODS) is inside
    with pytest.raises(AccessPeriodClosed, match="after the access period ends"):
        check_attempt(outside, NOW, OTP_METHODS)


def test_closed_packages_refuse_authentication() -> None:
    """A completed, declined or terminated package cannot be opened."""
    with pytest.raises(Exception, match="terminated"):
        check_attempt(replace(POLICY, package_state="terminated"), NOW, OTP_METHODS)


@pytest.mark.parametrize(("used", "remaining", "locks"), [(1, 2, False), (2, 1, False), (3, 0, True), (4, 0, True)])
def test_failure_count_locks_at_the_retry_count(used: int, remaining: int, locks: bool) -> None:
    """The retry count's worth of failures locks; remaining attempts never go below zero."""
    failure = RecipientAttempts(retry_count=3).wrong_attempt("secret", used)
    assert (failure.attempts_remaining, failure.locks) == (remaining, locks)


def test_the_third_wrong_attempt_of_either_kind_locks_a_recipient_with_two_methods() -> None:
    """A recipient who must pass a password and an OTP has one retry count for both: each counter
    may count what the other has left, and the attempt that brings the sum to it locks."""
    attempts = RecipientAttempts(retry_count=3, secret_failures=1, otp_failures=1)
    assert (attempts.ceiling("secret"), attempts.ceiling("otp")) == (2, 2)
    assert attempts.wrong_attempt("otp", 2) == Failure(3, 0, locks=True)
    assert RecipientAttempts(retry_count=3, otp_failures=1).wrong_attempt("secret", 1) == Failure(2, 1, locks=False)


def test_wrong_totp_codes_share_the_one_retry_count_with_secrets_and_otps() -> None:
    """A recipient with a password, an OTP and an authenticator app has one retry count for all
    three: each counter may count what the other two have left, and the status counts all."""
    attempts = RecipientAttempts(retry_count=5, secret_failures=1, otp_failures=1, totp_failures=2)
    assert (attempts.ceiling("secret"), attempts.ceiling("otp"), attempts.ceiling("totp")) == (2, 2, 3)
    assert attempts.wrong_attempt("totp", 3) == Failure(5, 0, locks=True)
    assert (attempts.used, attempts.remaining) == (4, 1)


def test_a_totp_code_is_spent_for_the_user_or_for_the_provisioned_secret() -> None:
    """An API user's authenticator spends the user's steps (as their login does); a provisioned
    secret spends its own, per recipient and provisioning."""
    by_user = replace(POLICY, totp_source="user_authenticator", signer_user_id="u-1")
    provisioned = replace(POLICY, totp_source="provisioned", totp_authenticator_id="a-1")
    assert by_user.totp_subject == "user:u-1"
    assert provisioned.totp_subject == f"recipient:{POLICY.package_id}/{POLICY.order}/a-1"


def test_an_attempt_after_the_count_was_spent_takes_the_lock_with_the_retry_count() -> None:
    """A counter that held its ceiling already (spent, but not locked yet) counts nothing: that
    attempt is the one that locks, at the retry count."""
    attempts = RecipientAttempts(retry_count=4, secret_failures=4)
    assert attempts.ceiling("otp") == 0
    assert attempts.wrong_attempt("otp", None) == Failure(4, 0, locks=True, counted=False)


def test_the_status_reports_both_counters_or_the_failures_the_lock_was_taken_at() -> None:
    """Unlocked, the status counts wrong secrets and codes together; locked, it reports what the
    lock was taken at (which a Redis loss does not forget) and nothing remaining."""
    unlocked = RecipientAttempts(retry_count=5, secret_failures=1, otp_failures=2)
    assert (unlocked.used, unlocked.remaining) == (3, 2)
    locked = RecipientAttempts(retry_count=5, locked=True, locked_failures=5)
    assert (locked.used, locked.remaining) == (5, 0)


def test_every_access_grants_this_opening_only() -> None:
    """EveryAccess gives a short grant, never past the access window."""
    assert grant_expiry(replace(POLICY, frequency="EveryAccess"), NOW) == NOW + timedelta(minutes=15)
    closing = replace(POLICY, frequency="EveryAccess", window=AccessWindow(end=NOW + timedelta(minutes=5)))
    assert grant_expiry(closing, NOW) == NOW + timedelta(minutes=5)


@pytest.mark.parametrize("frequency", ["OncePerDocument", "UntilSignCompleted"])
def test_a_grant_without_an_access_window_still_expires_after_the_lifetime(frequency: str) -> None:
    """OncePerDocument and UntilSignCompleted without a window expire after the grant lifetime (30
    minutes by default, or the setting's), not never."""
    assert grant_expiry(replace(POLICY, frequency=frequency), NOW) == NOW + GRANT_LIFETIME
    assert grant_expiry(replace(POLICY, frequency=frequency), NOW, timedelta(minutes=10)) == NOW + timedelta(minutes=10)


def test_a_grant_ends_with_the_access_window_when_it_closes_first() -> None:
    """A window closing before the lifetime ends bounds the grant: by date, or by days after receipt."""
    by_date = replace(POLICY, window=AccessWindow(end=NOW + timedelta(minutes=7)))
    assert grant_expiry(by_date, NOW) == NOW + timedelta(minutes=7)
    by_days = replace(POLICY, window=AccessWindow(days=2), received_at=NOW - timedelta(days=2, minutes=-3))
    assert grant_expiry(by_days, NOW) == NOW + timedelta(minutes=3)
    long_window = replace(POLICY, window=AccessWindow(days=2), received_at=NOW)
    assert grant_expiry(long_window, NOW) == NOW + GRANT_LIFETIME
