"""The identity service's rules, without a broker: profiles, memberships, passwords, lockout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from libs.security.tokens import Claims
from services.identity import domain
from signgate_contracts.identity import AccountMembership, RegisterUser, UpdateUserProfile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def account(name: str = "Example, Inc.", primary: bool = False) -> AccountMembership:
    return AccountMembership(name=name, context_identifier=uuid.uuid4(), is_primary=primary)


def claims(subject: str = "u-1", roles: tuple[str, ...] = ()) -> Claims:
    return Claims(subject, "jdoe", (), None, roles, "api", uuid.uuid4(), NOW, NOW)


def test_user_names_are_stripped_and_lower_cased() -> None:
    """ " JDoe@Example.com " and "jdoe@example.com" are one user name."""
    assert domain.normalise_user_name("  JDoe@Example.COM ") == "jdoe@example.com"


def test_an_email_is_normalised() -> None:
    """A valid email is kept, with its domain lower-cased."""
    assert domain.valid_email("Jane.Doe@Example.COM") == "Jane.Doe@example.com"


@pytest.mark.parametrize("email", ["jane", "jane@", "@example.com", "jane doe@example.com"])
def test_an_invalid_email_is_refused_naming_the_field(email: str) -> None:
    """Something that is not an email address is a 400 naming `email`."""
    with pytest.raises(domain.InvalidProfile) as refused:
        domain.valid_email(email)
    assert (refused.value.status, refused.value.field) == (400, "email")


@pytest.mark.parametrize(("given", "e164"), [
    ("+1 415-555-0123", "+14155550123"),
    ("+49 151 12345678", "+4915112345678"),
    ("+33 6 12 34 56 78", "+33612345678"),
])
def test_a_mobile_number_is_stored_as_e164(given: str, e164: str) -> None:
    """A mobile number with its country code, in any common layout, becomes E.164."""
    assert domain.valid_mobile_number(given) == e164


@pytest.mark.parametrize("number", ["4155550123", "+1 415", "+49 30 12345678", "call me", "+999 1234"])
def test_a_number_that_is_not_a_valid_mobile_is_refused(number: str) -> None:
    """No country code, too short, a landline, or not a number: a 400 naming `mobile_number`."""
    with pytest.raises(domain.InvalidProfile) as refused:
        domain.valid_mobile_number(number)
    assert refused.value.field == "mobile_number"


def test_no_profile_contact_is_allowed() -> None:
    """Email and mobile number are optional."""
    assert domain.valid_email(None) is None and domain.valid_mobile_number("  ") is None


def test_memberships_need_exactly_one_primary() -> None:
    """No primary, or two, is refused; one primary is kept first."""
    with pytest.raises(domain.InvalidMemberships):
        domain.valid_memberships([account(), account()])
    with pytest.raises(domain.InvalidMemberships):
        domain.valid_memberships([account(primary=True), account(primary=True)])
    primary = account("Zeta", primary=True)
    assert domain.valid_memberships([account("Alpha"), primary])[0] == primary


def test_an_account_may_be_listed_once() -> None:
    """The same context identifier twice is refused."""
    twice = account(primary=True)
    with pytest.raises(domain.InvalidMemberships, match="more than once"):
        domain.valid_memberships([twice, twice.model_copy(update={"is_primary": False})])


@pytest.mark.parametrize(("password", "reason"), [
    ("short", "at least 8"), ("x" * 1025, "at most 1024"), ("JDoe@Example.com", "user name"),
])
def test_a_weak_new_password_is_refused(password: str, reason: str) -> None:
    """Too short, too long, or the user name itself: refused; no composition rules (NIST)."""
    with pytest.raises(domain.PasswordRejected, match=reason):
        domain.check_new_password(password, "jdoe@example.com", domain.PasswordPolicy())


def test_a_long_plain_passphrase_is_accepted() -> None:
    """NIST SP 800-63B: length, not character classes."""
    domain.check_new_password("correct horse battery staple", "jdoe", domain.PasswordPolicy())


def test_passwords_do_not_expire_by_default() -> None:
    """With no max age (the default), a ten-year-old password has not expired."""
    assert not domain.password_has_expired(
        expired_now=False, changed_at=NOW - timedelta(days=3650), now=NOW, policy=domain.PasswordPolicy()
    )


def test_a_max_age_policy_expires_old_passwords() -> None:
    """With a 90-day policy, a password changed 90 days ago has expired, 89 days ago not."""
    policy = domain.PasswordPolicy(max_age=timedelta(days=90))
    assert domain.password_has_expired(expired_now=False, changed_at=NOW - timedelta(days=90), now=NOW, policy=policy)
    assert not domain.password_has_expired(expired_now=False, changed_at=NOW - timedelta(days=89), now=NOW, policy=policy)


def test_an_administrator_can_expire_a_password_now() -> None:
    """"Expire now" expires a password whatever its age or the policy."""
    assert domain.password_has_expired(expired_now=True, changed_at=NOW, now=NOW, policy=domain.PasswordPolicy())


def test_temporary_lockouts_wait_longer_each_time_up_to_the_maximum() -> None:
    """Each temporary lockout of a run waits twice as long as the one before, never past max_wait."""
    policy = domain.LockoutPolicy(threshold=5, base_wait=timedelta(minutes=5), max_wait=timedelta(hours=1))
    waits = [domain.lock_for(policy, consecutive_failures=5 * (n + 1), lockouts=n, now=NOW).until - NOW
             for n in range(6)]
    assert waits == [timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)]


def test_hard_mode_locks_until_unlocked() -> None:
    """In hard mode the first lockout is hard, with no end."""
    lock = domain.lock_for(domain.LockoutPolicy(mode="hard"), consecutive_failures=5, lockouts=0, now=NOW)
    assert lock == domain.Lock("hard", None)


@pytest.mark.parametrize("threshold", [1, 3, 5, 7, 10, 33, 100])
def test_temporary_lockouts_never_allow_more_than_100_failures_in_a_row(threshold: int) -> None:
    """Cycling through temporary lockouts, the lock turns hard before failures in a row pass 100."""
    policy = domain.LockoutPolicy(threshold=threshold, hard_after=100)
    failures, lockouts = 0, 0
    while True:
        failures += threshold
        lock = domain.lock_for(policy, consecutive_failures=failures, lockouts=lockouts, now=NOW)
        if lock.mode == "hard":
            break
        lockouts += 1
    assert failures <= 100
    assert failures + threshold > 100  # not earlier than the cap needs


def test_a_lock_holds_until_its_time_and_a_hard_lock_for_ever() -> None:
    """A temporary lock holds before its end and not after; a hard lock always holds."""
    assert domain.is_locked("temporary", NOW + timedelta(seconds=1), NOW)
    assert not domain.is_locked("temporary", NOW, NOW)
    assert domain.is_locked("hard", None, NOW + timedelta(days=3650))
    assert not domain.is_locked(None, None, NOW)


def test_the_right_password_learns_every_reason_it_gets_no_token() -> None:
    """Locked, disabled and expired are all reported to a caller who proved the password."""
    standing = domain.AccountStanding(locked=True, disabled=True, password_expired=True, must_change_password=True)
    assert domain.refusal_reasons(standing) == ["account_locked", "account_disabled", "password_expired"]


def test_change_required_is_reported_when_the_password_has_not_expired() -> None:
    """A password that must be changed (but has not expired) answers `change_required`."""
    standing = domain.AccountStanding(locked=False, disabled=False, password_expired=False, must_change_password=True)
    assert domain.refusal_reasons(standing) == ["change_required"]


def test_a_good_standing_gets_a_token() -> None:
    """No reasons when nothing stands in the way."""
    assert domain.refusal_reasons(domain.AccountStanding(False, False, False, False)) == []


def test_urls_are_filled_in_and_quoted() -> None:
    """A URL template gets the user name and id, URL-quoted; no template, no URL."""
    url = domain.render_url("https://x.example/pw?u={user_name}&id={user_id}", user_name="j doe&co", user_id=7)
    assert url == "https://x.example/pw?u=j%20doe%26co&id=7"
    assert domain.render_url(None, user_name="j", user_id=1) is None


def test_administrative_commands_need_the_admin_role() -> None:
    """A token without the admin role is refused with a 403; with it, allowed."""
    with pytest.raises(domain.NotAnAdministrator) as refused:
        domain.require_administrator(claims())
    assert refused.value.status == 403
    domain.require_administrator(claims(roles=("admin",)))


def test_a_user_may_update_their_own_profile_but_not_anothers() -> None:
    """Self-service is allowed for one's own user id; another user's needs the admin role."""
    domain.require_self_or_administrator(claims("u-1"), "u-1")
    with pytest.raises(domain.NotAnAdministrator):
        domain.require_self_or_administrator(claims("u-1"), "u-2")


def test_password_pages_are_built_from_the_portal_url() -> None:
    """Without templates, the expired- and change-password URLs are the portal's pages for the user."""
    links = domain.PasswordLinks("https://portal.example/")

    assert links.expired(user_name="jdoe@example.com", user_id=7) == (
        "https://portal.example/password/expired?user_name=jdoe%40example.com")
    assert links.change(user_name="jdoe@example.com", user_id=7) == (
        "https://portal.example/password/change?user_name=jdoe%40example.com")


def test_a_template_replaces_a_portal_page() -> None:
    """A configured template wins over the portal's page, for that URL only."""
    links = domain.PasswordLinks("https://portal.example", change_template="https://sso.example/pw/{user_id}")

    assert links.change(user_name="j", user_id=7) == "https://sso.example/pw/7"
    assert links.expired(user_name="j", user_id=7) == "https://portal.example/password/expired?user_name=j"


def test_a_refusal_carries_the_url_of_its_reason_only() -> None:
    """An expired password gets the expired-password URL, a required change the change-password URL,
    anything else (an unknown name or a wrong password among them) no URL."""
    links = domain.PasswordLinks("https://portal.example")

    assert domain.links_for(["password_expired"], links, user_name="j", user_id=1) == {
        "expired_password_url": "https://portal.example/password/expired?user_name=j"}
    assert domain.links_for(["change_required"], links, user_name="j", user_id=1) == {
        "change_password_url": "https://portal.example/password/change?user_name=j"}
    assert domain.links_for(["invalid_credentials"], links, user_name="j", user_id=1) == {}
    assert domain.links_for(["account_locked", "account_disabled"], links, user_name="j", user_id=1) == {}


def test_setting_replacing_or_removing_the_mobile_number_is_a_change() -> None:
    """A number set, replaced or removed is a change (recorded and announced); the same number is not."""
    assert domain.mobile_number_changed(None, "+14155550123")
    assert domain.mobile_number_changed("+14155550123", "+14155550124")
    assert domain.mobile_number_changed("+14155550123", None)
    assert not domain.mobile_number_changed("+14155550123", "+14155550123")
    assert not domain.mobile_number_changed(None, None)


def test_a_change_is_made_by_the_user_or_by_an_administrator() -> None:
    """A change with the user's own token is the user's; with anyone else's, an administrator's."""
    assert domain.changed_by(claims("u-1"), "u-1") == "user"
    assert domain.changed_by(claims("op", roles=("admin",)), "u-1") == "administrator"


def user(**fields: object) -> domain.User:
    stored: dict[str, object] = {
        "id": uuid.uuid4(), "user_name": "jdoe@example.com", "first_name": "Jane", "last_name": "Doe",
        "email": None, "mobile_number": None, "roles": (), "disabled": False, "password_hash": "h",
        "password_changed_at": NOW, "password_expired": False, "must_change_password": False,
        "failed_attempts": 0, "lockouts": 0, "lock_mode": None, "locked_until": None,
        "tokens_valid_after": None,
    }
    return domain.User(**{**stored, **fields})  # type: ignore[arg-type]


def test_a_failure_that_does_not_reach_the_threshold_locks_nobody() -> None:
    """Below the threshold a counted failure imposes no lock."""
    assert domain.lock_after_failure(
        domain.LockoutPolicy(), user(), locks=False, consecutive_failures=4, now=NOW) is None


def test_a_failure_that_locks_a_hard_locked_user_keeps_the_lock_hard() -> None:
    """A hard lock is never softened by a later temporary one."""
    lock = domain.lock_after_failure(
        domain.LockoutPolicy(), user(lock_mode="hard"), locks=True, consecutive_failures=10, now=NOW)
    assert lock == domain.Lock("hard", None)


def test_a_failure_that_locks_waits_longer_with_each_lockout_of_the_run() -> None:
    """The second temporary lockout of a run waits twice the base wait."""
    lock = domain.lock_after_failure(
        domain.LockoutPolicy(), user(lockouts=1), locks=True, consecutive_failures=10, now=NOW)
    assert lock == domain.Lock("temporary", NOW + timedelta(minutes=10))


def test_a_wrong_password_and_an_unknown_name_are_answered_alike() -> None:
    """Both are `invalid_credentials` and carry no URL, whatever the user's standing."""
    links = domain.PasswordLinks("https://portal.example")
    expired = user(password_expired=True, lock_mode="hard")
    wrong = domain.wrong_password(expired, locks=False, consecutive_failures=1,
                                  policy=domain.LockoutPolicy(), now=NOW)
    unknown = domain.wrong_password(None, locks=True, consecutive_failures=5,
                                    policy=domain.LockoutPolicy(), now=NOW)

    assert wrong.reasons == unknown.reasons == ["invalid_credentials"]
    assert unknown.lock is None  # nobody to lock
    answers = [domain.login_refusal(a, links, NOW).model_dump(exclude={"event_id", "correlation_id"})
               for a in (wrong, unknown)]
    assert answers[0] == answers[1]
    assert answers[0]["expired_password_url"] is None and answers[0]["change_password_url"] is None


def test_the_right_password_of_a_locked_user_is_told_locked_and_the_run_goes_on() -> None:
    """While locked, the right password answers `account_locked` and does not end the run of failures."""
    attempt = domain.right_password(user(lock_mode="temporary", locked_until=NOW + timedelta(minutes=1)),
                                    NOW, domain.PasswordPolicy())
    assert attempt.reasons == ["account_locked"] and not attempt.ends_failure_run


def test_the_right_password_of_an_unlocked_user_ends_the_run() -> None:
    """After the lock's time, the right password gets a token and ends the run of failures."""
    attempt = domain.right_password(user(lock_mode="temporary", locked_until=NOW, failed_attempts=5),
                                    NOW, domain.PasswordPolicy())
    assert attempt.reasons == [] and attempt.ends_failure_run


def test_an_expired_password_is_answered_with_the_expired_password_page() -> None:
    """A caller whose right password has expired learns it, with where to renew it."""
    links = domain.PasswordLinks("https://portal.example")
    attempt = domain.right_password(user(password_expired=True), NOW, domain.PasswordPolicy())
    answer = domain.login_refusal(attempt, links, NOW)

    assert [r.code for r in answer.reasons] == ["password_expired"]
    assert answer.expired_password_url == "https://portal.example/password/expired?user_name=jdoe%40example.com"


def test_a_password_change_needs_the_current_password_and_an_open_account() -> None:
    """A wrong current password is 401; a locked or disabled account 403; an expired password, or
    one that must be changed, may be replaced."""
    policy = domain.PasswordPolicy()
    wrong = domain.wrong_password(user(), locks=False, consecutive_failures=1,
                                  policy=domain.LockoutPolicy(), now=NOW)
    locked = domain.right_password(user(lock_mode="hard"), NOW, policy)
    disabled = domain.right_password(user(disabled=True), NOW, policy)
    expired = domain.right_password(user(password_expired=True, must_change_password=True), NOW, policy)

    assert isinstance(domain.password_change_refusal(wrong), domain.InvalidCredentials)
    assert isinstance(domain.password_change_refusal(locked), domain.AccountLocked)
    assert isinstance(domain.password_change_refusal(disabled), domain.AccountDisabled)
    assert domain.password_change_refusal(expired) is None


def test_a_profile_update_of_nobody_is_told_only_to_an_administrator() -> None:
    """For a name that is nobody's, a user's token is 403 and an administrator's 404."""
    command = UpdateUserProfile(user_name="nobody@example.com", first_name="N", last_name="B")
    with pytest.raises(domain.NotAnAdministrator):
        domain.profile_update(claims("u-1"), None, command)
    with pytest.raises(domain.UserNotFound):
        domain.profile_update(claims("op", roles=("admin",)), None, command)


def test_a_registration_is_normalised_and_checked() -> None:
    """The name is normalised, the primary account first, the roles once each, and the password
    checked against the policy."""
    primary = account("Zeta", primary=True)
    command = RegisterUser(user_name=" JDoe@Example.com ", first_name="Jane", last_name="Doe",
                           accounts=[account("Alpha"), primary], roles=["admin", "admin"],
                           password="correct horse battery staple")
    new = domain.registration(command, domain.PasswordPolicy())

    assert (new.user_name, new.access.accounts[0], new.access.roles) == ("jdoe@example.com", primary, ["admin"])
    with pytest.raises(domain.PasswordRejected):
        domain.registration(command.model_copy(update={"password": SecretStr("short")}), domain.PasswordPolicy())


def test_a_locked_or_disabled_account_refuses_whatever_it_proves() -> None:
    """A hard lock, a temporary lock not yet over, or a disabled account refuses (so a recovery
    code shown to it is not spent); a temporary lock that has passed does not."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.account_refuses(user(lock_mode="hard"), now)
    assert domain.account_refuses(
        user(lock_mode="temporary", locked_until=now + timedelta(minutes=1)), now
    )
    assert domain.account_refuses(user(disabled=True), now)
    assert not domain.account_refuses(
        user(lock_mode="temporary", locked_until=now - timedelta(minutes=1)), now
    )
    assert not domain.account_refuses(user(), now)
