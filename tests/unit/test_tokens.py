"""Tokens are EdDSA JWTs: signed by identity, verified by anyone with the public key and the
user's current state."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from libs.security.tokens import (
    AccountDisabled,
    AccountState,
    AuthenticationRequired,
    AuthorizationDenied,
    TokenIssuer,
    TokenSettings,
    TokenVerifier,
    generate_key_pair,
)
from tests.support.clock import MovableClock

KEYS = generate_key_pair()
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USER = str(uuid.uuid4())


class States:
    """An in-memory AccountStates."""

    def __init__(self) -> None:
        self.states: dict[str, AccountState] = {}

    async def get(self, subject: str) -> AccountState | None:
        return self.states.get(subject)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


def issue(clock: MovableClock, **kwargs) -> str:
    return TokenIssuer(KEYS.private_key, clock=clock).issue(
        USER, "jdoe@example.com", accounts=["acc-1", "acc-2"], primary_account="acc-1",
        roles=["admin"], **kwargs,
    ).token


async def test_a_token_carries_user_accounts_roles_and_a_30_minute_expiry(clock: MovableClock) -> None:
    """A verified token says who the user is, their accounts, roles, and expires 30 minutes after issue."""
    claims = await TokenVerifier(KEYS.public_key, clock=clock).verify(issue(clock))
    assert (claims.subject, claims.user_name) == (USER, "jdoe@example.com")
    assert claims.accounts == ("acc-1", "acc-2") and claims.primary_account == "acc-1"
    assert claims.has_role("admin") and claims.scope == "api"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=30)


async def test_the_token_expires_after_30_minutes(clock: MovableClock) -> None:
    """One second before 30 minutes the token is accepted; at 30 minutes it is denied."""
    token = issue(clock)
    verifier = TokenVerifier(KEYS.public_key, clock=clock)
    clock.advance(timedelta(minutes=29, seconds=59))
    await verifier.verify(token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthorizationDenied) as denied:
        await verifier.verify(token)
    assert (denied.value.status, denied.value.message) == (401, "Request authorization denied")


async def test_a_token_from_the_future_is_not_yet_valid(clock: MovableClock) -> None:
    """A token whose nbf lies ahead of the verifier's clock is denied."""
    token = issue(clock)
    verifier = TokenVerifier(KEYS.public_key, clock=MovableClock(START - timedelta(minutes=1)))
    with pytest.raises(AuthorizationDenied):
        await verifier.verify(token)


@pytest.mark.parametrize("token", [None, ""])
async def test_no_token_requires_authentication(token: str | None) -> None:
    """A missing token is a 401 "User authentication required"."""
    with pytest.raises(AuthenticationRequired) as refused:
        await TokenVerifier(KEYS.public_key).verify(token)
    assert (refused.value.status, refused.value.message) == (401, "User authentication required")


async def test_a_token_signed_by_another_key_is_denied(clock: MovableClock) -> None:
    """A token signed with a key that is not identity's is denied."""
    forged = TokenIssuer(generate_key_pair().private_key, clock=clock).issue(USER, "x").token
    with pytest.raises(AuthorizationDenied):
        await TokenVerifier(KEYS.public_key, clock=clock).verify(forged)


async def test_a_tampered_token_is_denied(clock: MovableClock) -> None:
    """Changing the payload of a signed token (a role added) breaks its signature."""
    header, _payload, signature = issue(clock).split(".")
    claims = jwt.decode(issue(clock), options={"verify_signature": False})
    claims["roles"] = ["admin", "superuser"]
    payload = jwt.encode(claims, "k" * 32, algorithm="HS256").split(".")[1]
    with pytest.raises(AuthorizationDenied):
        await TokenVerifier(KEYS.public_key, clock=clock).verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
async def test_other_algorithms_are_refused(clock: MovableClock, algorithm: str) -> None:
    """A token in another algorithm (an HMAC keyed with the public key, or none) is denied."""
    now = clock().timestamp()
    claims = {"sub": USER, "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 60,
              "iss": "signgate-identity", "aud": "signgate", "roles": ["admin"]}
    with pytest.raises(AuthorizationDenied):
        await TokenVerifier(KEYS.public_key, clock=clock).verify(forge(claims, algorithm, KEYS.public_key))


def forge(claims: dict, algorithm: str, key: str) -> str:
    """A JWT made by hand, as an attacker would, in an algorithm the verifier must not accept."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': algorithm, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    if algorithm == "none":
        return f"{signing_input}."
    return f"{signing_input}.{b64(hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())}"


async def test_garbage_is_denied() -> None:
    """A string that is not a JWT is denied, not an error."""
    with pytest.raises(AuthorizationDenied):
        await TokenVerifier(KEYS.public_key).verify("not.a.token")


async def test_a_disabled_users_token_is_forbidden(clock: MovableClock) -> None:
    """A genuine token of a user the states say is disabled is a 403 "Account is disabled"."""
    states = States()
    states.states[USER] = AccountState(disabled=True)
    with pytest.raises(AccountDisabled) as refused:
        await TokenVerifier(KEYS.public_key, states=states, clock=clock).verify(issue(clock))
    assert (refused.value.status, refused.value.message) == (403, "Account is disabled")


async def test_tokens_issued_before_a_revocation_are_denied(clock: MovableClock) -> None:
    """A token issued before the user's tokens_valid_after is denied; one issued after is accepted."""
    states = States()
    verifier = TokenVerifier(KEYS.public_key, states=states, clock=clock)
    old = issue(clock)
    clock.advance(timedelta(milliseconds=5))
    states.states[USER] = AccountState(tokens_valid_after=clock())
    clock.advance(timedelta(milliseconds=5))
    new = issue(clock)
    with pytest.raises(AuthorizationDenied):
        await verifier.verify(old)
    await verifier.verify(new)


async def test_a_user_unknown_to_the_states_is_trusted_on_the_signature(clock: MovableClock) -> None:
    """A user the projection has heard nothing of (never disabled) is accepted on a valid token."""
    assert (await TokenVerifier(KEYS.public_key, states=States(), clock=clock).verify(issue(clock))).subject == USER


def test_the_public_key_is_derived_from_the_private_key_when_not_set() -> None:
    """Settings with only the private key still verify (identity needs one setting, not two)."""
    settings = TokenSettings(private_key=KEYS.private_key, public_key=None)
    assert settings.public_key_pem() == KEYS.public_key
