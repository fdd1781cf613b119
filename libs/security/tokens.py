"""Caller tokens: EdDSA (Ed25519) JWTs that identity signs and every service verifies locally.

Only the identity service holds the private key (``SIGNGATE_TOKEN_PRIVATE_KEY``); every
service verifies with the public key (``SIGNGATE_TOKEN_PUBLIC_KEY``), so checking a token
needs no round trip. A signature alone is not enough: the verifier also asks an
``AccountStates`` (the consuming service's projection of identity events, see
``libs.security.accounts``) whether the user is disabled now or the token was issued before a
revocation (a disabling, a password change).

Claims: ``iss``, ``aud``, ``sub`` (user id), ``user_name``, ``accounts`` (context
identifiers), ``primary_account``, ``roles``, ``scope``, ``jti``, ``iat``/``nbf``/``exp``.
``iat`` keeps milliseconds (RFC 7519 allows a non-integer NumericDate), so a token issued
in the same second as, but after, a revocation stays valid.

Refusals map to the seeds' texts: no token is 401 "User authentication required"; a bad,
expired or revoked one is 401 "Request authorization denied"; a disabled user's is 403
"Account is disabled".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.errors import Forbidden, Unauthorized
from signgate_contracts.envelope import Clock, utc_now  # one clock for every module

ALGORITHM = "EdDSA"


class TokenSettings(BaseSettings):
    """Token keys and lifetime; every service reads the public key, identity also the private one."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_TOKEN_", extra="ignore")

    private_key: SecretStr | None = Field(
        None, description="PEM Ed25519 private key (identity only): SIGNGATE_TOKEN_PRIVATE_KEY."
    )
    public_key: str | None = Field(
        None, description="PEM Ed25519 public key (every service): SIGNGATE_TOKEN_PUBLIC_KEY."
    )
    ttl: timedelta = Field(
        timedelta(minutes=30), description="Token lifetime (AssureSign: 30 min)."
    )
    issuer: str = "signgate-identity"
    audience: str = "signgate"
    leeway: timedelta = Field(timedelta(0), description="Clock skew tolerated on exp and nbf.")

    def public_key_pem(self) -> str:
        """The configured public key, or the one derived from the private key."""
        if self.public_key:
            return self.public_key
        if self.private_key:
            return public_key_of(self.private_key.get_secret_value())
        raise TokenKeyMissing("SIGNGATE_TOKEN_PUBLIC_KEY is not set")


class TokenKeyMissing(RuntimeError):
    """Tokens cannot be issued or verified: the key is not configured."""


# -- refusals --


class _DefaultText:
    text: str

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message or self.text, **kwargs)  # type: ignore[call-arg]


class AuthenticationRequired(_DefaultText, Unauthorized):
    """The command needs a token and carries none."""

    code, text = "authentication_required", "User authentication required"


class AuthorizationDenied(_DefaultText, Unauthorized):
    """The token is malformed, forged, expired, not yet valid, or revoked."""

    code, text = "authorization_denied", "Request authorization denied"


class AccountDisabled(_DefaultText, Forbidden):
    """The token is genuine, but its user is disabled."""

    code, text = "account_disabled", "Account is disabled"


# -- keys --


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str


def generate_key_pair() -> KeyPair:
    """A fresh Ed25519 key pair as PEM strings (for a development stack or a test run)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return KeyPair(private, public_key_of(private))


def public_key_of(private_pem: str) -> str:
    key = _private_key(private_pem)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@cache
def _private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the token signing key must be an Ed25519 private key")
    return key


@cache
def _public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the token verification key must be an Ed25519 public key")
    return key


# -- issuing --


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its caller."""

    subject: str
    user_name: str
    accounts: tuple[str, ...]
    primary_account: str | None
    roles: tuple[str, ...]
    scope: str
    token_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Claims


class TokenIssuer:
    """Signs tokens with the private key; ``clock`` is injectable for tests."""

    def __init__(
        self,
        private_key_pem: str,
        *,
        ttl: timedelta = timedelta(minutes=30),
        issuer: str = "signgate-identity",
        audience: str = "signgate",
        clock: Clock = utc_now,
    ) -> None:
        self._key = _private_key(private_key_pem)
        self.ttl = ttl
        self.issuer = issuer
        self.audience = audience
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: TokenSettings, clock: Clock = utc_now) -> TokenIssuer:
        if settings.private_key is None:
            raise TokenKeyMissing("SIGNGATE_TOKEN_PRIVATE_KEY is not set")
        return cls(
            settings.private_key.get_secret_value(),
            ttl=settings.ttl,
            issuer=settings.issuer,
            audience=settings.audience,
            clock=clock,
        )

    def issue(
        self,
        subject: str,
        user_name: str,
        *,
        accounts: Sequence[str] = (),
        primary_account: str | None = None,
        roles: Sequence[str] = (),
        scope: str = "api",
        ttl: timedelta | None = None,
    ) -> IssuedToken:
        """A signed token; ``ttl`` shortens (or sets) its lifetime, the issuer's by default."""
        issued_at = _millis(self.clock())
        claims = Claims(
            subject=subject,
            user_name=user_name,
            accounts=tuple(accounts),
            primary_account=primary_account,
            roles=tuple(roles),
            scope=scope,
            token_id=uuid.uuid4(),
            issued_at=issued_at,
            expires_at=issued_at + (ttl if ttl is not None else self.ttl),
        )
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": claims.subject,
            "user_name": claims.user_name,
            "accounts": list(claims.accounts),
            "primary_account": claims.primary_account,
            "roles": list(claims.roles),
            "scope": claims.scope,
            "jti": str(claims.token_id),
            "iat": issued_at.timestamp(),
            "nbf": issued_at.timestamp(),
            "exp": claims.expires_at.timestamp(),
        }
        return IssuedToken(jwt.encode(payload, self._key, algorithm=ALGORITHM), claims)


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# -- verifying --


@dataclass(frozen=True)
class AccountState:
    """What a service knows now about a user, from identity's events."""

    disabled: bool = False
    tokens_valid_after: datetime | None = None
    """Tokens issued before this moment are revoked (a disabling, a password change)."""


def check_account_state(claims: Claims, state: AccountState | None) -> None:
    """Refuse the claims of a disabled user (403), or of a token issued before a revocation (401);
    None: nothing is known of the subject (an operator token), nothing to refuse."""
    if state is None:
        return
    if state.disabled:
        raise AccountDisabled()
    if state.tokens_valid_after and claims.issued_at < state.tokens_valid_after:
        raise AuthorizationDenied()


class AccountStates(Protocol):
    """Where a verifier learns a user's current state; None for a user it has heard nothing of."""

    async def get(self, subject: str) -> AccountState | None: ...


class TokenVerifier:
    """Checks signature, issuer, audience, ``exp``/``nbf`` and the user's current state."""

    def __init__(
        self,
        public_key_pem: str,
        *,
        states: AccountStates | None = None,
        issuer: str = "signgate-identity",
        audience: str = "signgate",
        leeway: timedelta = timedelta(0),
        clock: Clock = utc_now,
    ) -> None:
        self._key = _public_key(public_key_pem)
        self.states = states
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: TokenSettings, states: AccountStates | None = None, clock: Clock = utc_now
    ) -> TokenVerifier:
        return cls(
            settings.public_key_pem(),
            states=states,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.leeway,
            clock=clock,
        )

    async def verify(
        self, token: str | SecretStr | None, *, states: AccountStates | None = None
    ) -> Claims:
        """The claims of a valid token of an enabled user; raises a refusal otherwise. ``states``,
        when given, is read instead of the verifier's own (a transaction's view of the accounts)."""
        if isinstance(token, SecretStr):
            token = token.get_secret_value()
        if not token:
            raise AuthenticationRequired()
        claims = self.decode(token)
        states = states if states is not None else self.states
        if states is not None:
            check_account_state(claims, await states.get(claims.subject))
        return claims

    def decode(self, token: str) -> Claims:
        """Signature and times only (no account state): a refusal if the token is not valid now."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # Times are checked below against the injectable clock.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "nbf", "iat", "sub", "jti", "iss", "aud"],
                },
            )
            claims = Claims(
                subject=str(payload["sub"]),
                user_name=str(payload.get("user_name", "")),
                accounts=tuple(str(a) for a in payload.get("accounts") or ()),
                primary_account=payload.get("primary_account"),
                roles=tuple(str(r) for r in payload.get("roles") or ()),
                scope=str(payload.get("scope", "")),
                token_id=uuid.UUID(str(payload["jti"])),
                issued_at=datetime.fromtimestamp(float(payload["iat"]), UTC),
                expires_at=datetime.fromtimestamp(float(payload["exp"]), UTC),
            )
            not_before = datetime.fromtimestamp(float(payload["nbf"]), UTC)
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            raise AuthorizationDenied() from None
        now = self.clock()
        if now >= claims.expires_at + self.leeway or now < not_before - self.leeway:
            raise AuthorizationDenied()
        return claims
