"""The API-key exchange of the BoldSign routes: ``X-API-KEY`` -> the short-lived token of its user.

A key is exchanged with identity (``identity.exchange_api_key``, its token coming back only on this
replica's reply topic) and the token kept in this replica's memory, under the SHA-256 of the key
(never the key), until shortly before it expires; concurrent first requests with one key share one
exchange. A refused key is not remembered: each request with it asks identity again (the rate
limits bound how often). Revoking a key stops new exchanges at once, and every replica drops the
token it holds for the key when identity's ``identity.api_key_revoked`` reaches it (`forget_key`,
watched on the replica's client); a token already in flight lives out its short lifetime
(identity's ``SIGNGATE_IDENTITY_API_KEY_TOKEN_TTL``).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr, ValidationError

from services.gateway.errors import GatewayError
from signgate_client import Outcome
from signgate_contracts import Message
from signgate_contracts.envelope import Clock, utc_now
from signgate_contracts.identity import ApiKeyRevoked, ApiKeyToken, ExchangeApiKey, api_key_id

MISSING_API_KEY = "API key is required in the X-API-KEY header"
INVALID_API_KEY = "Invalid API key"
"""Identity's text for a key that is unknown, wrong or revoked; the gateway's for one of no key's shape."""
API_KEY_LENGTH = 79

REFRESH_MARGIN = timedelta(seconds=60)
"""How long before its expiry a held token is exchanged again: no request carries a token that
expires on its way through the services."""
MAX_HELD = 10_000
"""Tokens held at most; past it the ones expiring soonest are dropped first."""


@dataclass(frozen=True)
class HeldToken:
    token: str
    refresh_at: datetime


def key_digest(api_key: str) -> str:
    """What a held token is filed under: a digest, so the table holds no key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def refresh_time(expires_at: datetime, issued_at: datetime) -> datetime:
    """When to exchange again: ``REFRESH_MARGIN`` before expiry, or half-way for a short token."""
    margin = min(REFRESH_MARGIN, (expires_at - issued_at) / 2)
    return expires_at - margin


def exchange_command(api_key: str) -> ExchangeApiKey:
    """The exchange of ``api_key``; 401 for text no command may carry (a NUL, say)."""
    try:
        return ExchangeApiKey(api_key=SecretStr(api_key))
    except ValidationError:
        raise GatewayError(401, INVALID_API_KEY) from None


def token_of(outcome: Outcome) -> ApiKeyToken:
    """The token an accepted exchange answered with (its rejection is raised by the sender)."""
    if not isinstance(outcome.reply, ApiKeyToken):
        raise GatewayError(502, "The API key could not be exchanged")
    return outcome.reply


Send = Callable[[ExchangeApiKey], Awaitable[Outcome]]
"""Publishes the exchange and awaits its outcome, raising its rejection as a `GatewayError`."""


class ApiKeyExchanger:
    """``await exchanger(api_key)`` -> a bearer token of the key's user, from memory or identity."""

    def __init__(self, send: Send, clock: Clock = utc_now) -> None:
        self._send = send
        self._clock = clock
        self._held: dict[str, HeldToken] = {}
        self._by_key_id: dict[uuid.UUID, str] = {}
        self._pending: dict[str, asyncio.Future[str]] = {}

    async def __call__(self, api_key: str) -> str:
        if not api_key:
            raise GatewayError(401, MISSING_API_KEY)
        if len(api_key) != API_KEY_LENGTH or api_key_id(api_key) is None:
            raise GatewayError(401, INVALID_API_KEY)  # no key of ours: identity is not asked
        digest = key_digest(api_key)
        held = self._held.get(digest)
        if held is not None and self._clock() < held.refresh_at:
            return held.token
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            token = await self._exchange(digest, api_key)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody shared it
            raise
        else:
            future.set_result(token)
            return token
        finally:
            del self._pending[digest]

    async def _exchange(self, digest: str, api_key: str) -> str:
        self._held.pop(digest, None)
        answer = token_of(await self._send(exchange_command(api_key)))
        self._hold(
            digest,
            HeldToken(
                answer.access_token.get_secret_value(),
                refresh_time(answer.expires_at, answer.occurred_at),
            ),
        )
        self._by_key_id[answer.key_id] = digest
        return answer.access_token.get_secret_value()

    def _hold(self, digest: str, held: HeldToken) -> None:
        if len(self._held) >= MAX_HELD:
            now = self._clock()
            for stale in [d for d, h in self._held.items() if h.refresh_at <= now]:
                del self._held[stale]
            while len(self._held) >= MAX_HELD:
                del self._held[min(self._held, key=lambda d: self._held[d].refresh_at)]
            live = set(self._held)
            self._by_key_id = {k: d for k, d in self._by_key_id.items() if d in live}
        self._held[digest] = held

    def forget_key(self, key_id: uuid.UUID) -> None:
        """Drop the token held for one key (it was revoked): its next request is exchanged again."""
        digest = self._by_key_id.pop(key_id, None)
        if digest is not None:
            self._held.pop(digest, None)

    def on_revoked(self, event: Message) -> None:
        """Identity's ``identity.api_key_revoked``, as the client hands it over."""
        if isinstance(event, ApiKeyRevoked):
            self.forget_key(event.key_id)

    def forget(self) -> None:
        """Drop every held token (tests; an operator's restart does the same)."""
        self._held.clear()
        self._by_key_id.clear()
