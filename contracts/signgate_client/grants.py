"""Verifying document-access grants where the document is served, without asking signgate.

A viewer (the signing platform's document page) is handed a grant by the recipient's session and
checks it locally::

    keys = await fetch_grant_keys("http://authentication:8000/.well-known/jwks.json")
    revocations = GrantRevocations()
    asyncio.create_task(revocations.follow(bootstrap="kafka:9092"))
    await revocations.caught_up.wait()
    verifier = GrantVerifier(keys, revocations=revocations)
    grant = verifier.verify(token, package_id="pkg-1")   # a VerifiedGrant, or a GrantError

`GrantVerifier.verify` checks: the EdDSA signature with the key the ``kid`` header names (no
other algorithm is accepted, whatever the header says); ``iss``, ``aud``; ``exp``, ``nbf`` and
``iat`` with a small leeway; the claims a grant always has (``sub``, ``pkg``, ``ord``,
``scope`` ``doc:open``, ``jti``); optionally the package and recipient the viewer is opening;
and that the grant's ``jti`` has not been revoked.

`GrantRevocations` is the set of revoked grant ids, fed by ``authentication.document_access_revoked``
events: from `follow` (a consumer of ``signgate.authentication.events`` from its start: the topic
keeps 7 days, far longer than a grant lives), or from any consumer of your own through `feed`.
It forgets a revocation once the grant it names has expired.

Needs ``pip install 'signgate-contracts[verify]'`` (PyJWT, cryptography, httpx), and ``[client]``
(aiokafka) for `GrantRevocations.follow`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pydantic import ValidationError

from signgate_client.jwks import ALGORITHM, GrantKeys, KeySetError
from signgate_contracts.authentication import DocumentAccessRevoked
from signgate_contracts.envelope import Clock, utc_now  # one clock for every module
from signgate_contracts.topics import AUTHENTICATION_EVENTS

ISSUER = "signgate-authentication"
AUDIENCE = "signgate-viewer"
SCOPE = "doc:open"
DEFAULT_LEEWAY = timedelta(seconds=30)
"""Clock skew tolerated between signgate and the viewer by default."""
MAX_LEEWAY = timedelta(minutes=2)
"""The most skew a verifier may tolerate: revocations are kept this long past their grant's exp,
and the service still revokes grants that expired up to 5 minutes ago, so no leeway allowed lets
a revoked grant through."""
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "pkg", "ord", "scope")


class GrantError(Exception):
    """A grant the viewer must refuse. ``reason`` is a stable code."""

    reason = "grant_invalid"


class GrantInvalid(GrantError):
    """Malformed, forged, altered, for another audience or issuer, or missing a claim."""


class UnknownGrantKey(GrantInvalid):
    """Signed with a key the verifier does not hold: fetch the JWKS again (a rotation), then refuse."""

    reason = "unknown_key"

    def __init__(self, key_id: str | None) -> None:
        super().__init__(f"no grant key with id {key_id!r}")
        self.key_id = key_id


class GrantExpired(GrantError):
    reason = "grant_expired"


class GrantNotYetValid(GrantError):
    reason = "grant_not_yet_valid"


class GrantRevoked(GrantError):
    """The grant was revoked: the recipient signed or declined, their authentication changed, or
    the package ended."""

    reason = "grant_revoked"


class GrantNotForThis(GrantError):
    """A genuine grant, but for another package or recipient than the one being opened."""

    reason = "grant_not_for_this_document"


@dataclass(frozen=True)
class VerifiedGrant:
    """What a valid grant lets its holder do: open ``package_id`` as the recipient at ``order``."""

    grant_id: str
    package_id: str
    order: int
    scope: str
    issued_at: datetime
    expires_at: datetime
    key_id: str


class GrantRevocations:
    """Ids of revoked grants, each kept until its grant has expired beyond any verifier's leeway."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._revoked: dict[str, datetime] = {}
        self._clock = clock
        self.caught_up = asyncio.Event()
        """Set by `follow` once it has read every revocation published before it started."""

    def add(self, revocation: DocumentAccessRevoked) -> None:
        self._revoked[revocation.jti] = revocation.expires_at

    def feed(self, value: bytes | str | Mapping[str, Any] | DocumentAccessRevoked) -> bool:
        """Take one record of the authentication events topic (its value, or the decoded message);
        True if it was a revocation. Anything else (other event types, newer ones) is ignored."""
        if isinstance(value, DocumentAccessRevoked):
            self.add(value)
            return True
        try:
            document = json.loads(value) if isinstance(value, (bytes, str)) else value
        except (UnicodeDecodeError, ValueError):
            return False
        if (
            not isinstance(document, Mapping)
            or document.get("type") != "authentication.document_access_revoked"
        ):
            return False
        try:
            self.add(DocumentAccessRevoked.model_validate(document))
        except ValidationError:
            return False
        return True

    def is_revoked(self, grant_id: str) -> bool:
        return grant_id in self._revoked

    __contains__ = is_revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def forget_expired(self) -> int:
        """Drop revocations of grants that no verifier accepts any more anyway; returns how many."""
        horizon = self._clock() - MAX_LEEWAY
        expired = [jti for jti, expires_at in self._revoked.items() if expires_at < horizon]
        for jti in expired:
            del self._revoked[jti]
        return len(expired)

    async def follow(
        self, bootstrap: str, *, topic_prefix: str = "", poll_ms: int = 200, **consumer_options: Any
    ) -> None:
        """Read ``<prefix>signgate.authentication.events`` from its start, feeding every revocation,
        until cancelled. `caught_up` is set once the partitions' end offsets at the start are read.

        No consumer group: every viewer instance reads the whole topic for itself. On a secured
        cluster, pass aiokafka's security options (``security_protocol``, ``ssl_context``,
        ``sasl_mechanism``, ``sasl_plain_username``, ...; `signgate_client.kafka_security` builds
        them): they reach the admin client as well as the consumer.
        """
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        from signgate_client.security import start_checked
        from signgate_client.stream import assign, partitions_of

        topic = f"{topic_prefix}{AUTHENTICATION_EVENTS.name}"
        security = {
            name: value
            for name, value in consumer_options.items()
            if name == "security_protocol" or name.startswith(("ssl_", "sasl_"))
        }
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
        await start_checked(admin, bootstrap, security)
        try:
            partitions = await partitions_of(admin, [topic])
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **consumer_options
        )
        await consumer.start()
        try:
            await assign(consumer, partitions, from_beginning=True)
            ends = await consumer.end_offsets(partitions) if partitions else {}
            pending = {p: end for p, end in ends.items() if end > await consumer.position(p)}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=poll_ms)
                for partition, records in batches.items():
                    for record in records:
                        self.feed(record.value or b"")
                    if (
                        partition in pending
                        and records
                        and records[-1].offset + 1 >= pending[partition]
                    ):
                        del pending[partition]
                if not pending:
                    self.caught_up.set()
                self.forget_expired()
        finally:
            await consumer.stop()


class GrantVerifier:
    """Checks grants locally with the published public keys, and refuses revoked ones."""

    def __init__(
        self,
        keys: GrantKeys,
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        leeway: timedelta = DEFAULT_LEEWAY,
        revocations: GrantRevocations | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if not keys:
            raise KeySetError("a grant verifier needs at least one public key")
        if not timedelta(0) <= leeway <= MAX_LEEWAY:
            raise ValueError(
                f"the leeway is between 0 and {MAX_LEEWAY}: longer would outlast revocations"
            )
        self.keys = keys
        """Replace after fetching the JWKS again (a rotation); `UnknownGrantKey` says when."""
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.revocations = revocations
        self._clock = clock

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes, **options: Any) -> GrantVerifier:
        return cls(GrantKeys.from_jwks(document), **options)

    @classmethod
    def from_pem(cls, *pems: str, **options: Any) -> GrantVerifier:
        return cls(GrantKeys.from_pem(*pems), **options)

    def verify(
        self, grant: str, *, package_id: str | None = None, order: int | None = None
    ) -> VerifiedGrant:
        """The grant's content if it is genuine, current, unrevoked and (when given) for
        ``package_id`` and ``order``; raises a `GrantError` saying why not otherwise."""
        if not isinstance(grant, str) or not grant:
            raise GrantInvalid("no grant")
        try:
            header = jwt.get_unverified_header(grant)
        except jwt.PyJWTError as error:
            raise GrantInvalid("not a JWT") from error
        if header.get("alg") != ALGORITHM:
            raise GrantInvalid(f"grants are signed with {ALGORITHM}, not {header.get('alg')!r}")
        key_id = header.get("kid")
        if not isinstance(key_id, str):
            raise UnknownGrantKey(None)
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownGrantKey(key_id)
        try:
            claims = jwt.decode(
                grant,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            verified = VerifiedGrant(
                grant_id=_text(claims["jti"]),
                package_id=_text(claims["pkg"]),
                order=_order(claims["ord"]),
                scope=_text(claims["scope"]),
                issued_at=_moment(claims["iat"]),
                expires_at=_moment(claims["exp"]),
                key_id=key_id,
            )
            not_before = _moment(claims.get("nbf", claims["iat"]))
        except jwt.PyJWTError as error:
            raise GrantInvalid(str(error)) from error
        except (TypeError, ValueError, OverflowError) as error:
            raise GrantInvalid(f"a malformed claim: {error}") from error
        if verified.scope != SCOPE:
            raise GrantInvalid(f"a grant's scope is {SCOPE!r}")
        now = (
            self._clock()
        )  # checked against the verifier's clock, which tests (and callers) may move
        if verified.expires_at <= now - self.leeway:
            raise GrantExpired(f"the grant expired at {verified.expires_at.isoformat()}")
        if max(not_before, verified.issued_at) > now + self.leeway:
            raise GrantNotYetValid("the grant is not valid yet")
        if (package_id is not None and verified.package_id != package_id) or (
            order is not None and verified.order != order
        ):
            raise GrantNotForThis("the grant is for another package or recipient")
        if self.revocations is not None and self.revocations.is_revoked(verified.grant_id):
            raise GrantRevoked("the grant was revoked")
        return verified


async def fetch_grant_keys(url: str, *, client: Any = None, timeout: float = 5.0) -> GrantKeys:
    """The keys of the JWKS document at ``url`` (the service's ``/.well-known/jwks.json``), with
    ``client`` (an ``httpx.AsyncClient``) or a client of its own."""
    import httpx

    if client is None:
        async with httpx.AsyncClient(timeout=timeout) as own:
            return await fetch_grant_keys(url, client=own)
    response = await client.get(url)
    response.raise_for_status()
    return GrantKeys.from_jwks(response.content)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _order(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50:
        raise ValueError("ord is a recipient's place, 1-50")
    return value


def _moment(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a NumericDate")
    return datetime.fromtimestamp(value, UTC)
