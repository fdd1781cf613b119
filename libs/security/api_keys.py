"""API keys: made from a CSPRNG, stored only as an HMAC-SHA256 under the deployment's pepper.

A key is ``sgk_`` + its id (32 hex digits: public, names the key in lists, events and record keys)
+ 43 URL-safe characters of secret (256 bits). Such a key cannot be guessed, so a keyed digest is
the right store: argon2's cost protects low-entropy secrets (passwords) and would only slow every
exchange here. The digest is keyed with the pepper (``SIGNGATE_SECRET_PEPPER``), which never
lives in the database, and separated from the pepper's other uses by its purpose label; a stolen
table holds nothing that opens an account. Comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from libs.security.secrets import PepperedDigests
from signgate_contracts.identity import API_KEY_PREFIX, api_key_id

_PURPOSE = b"signgate-api-key\x00"


@dataclass(frozen=True)
class NewApiKey:
    key_id: uuid.UUID
    api_key: str
    digest: str


class ApiKeyDigests(PepperedDigests):
    """Makes API keys and digests and checks them under the pepper."""

    def new_key(self) -> NewApiKey:
        """A fresh key, its id and its digest (the only part to store)."""
        key_id = uuid.uuid4()
        api_key = f"{API_KEY_PREFIX}{key_id.hex}{secrets.token_urlsafe(32)}"
        return NewApiKey(key_id, api_key, self.digest(api_key))

    def digest(self, api_key: str) -> str:
        return self.keyed(_PURPOSE + api_key.encode())

    def matches(self, stored_digest: str | None, api_key: str) -> bool:
        """Whether ``api_key`` is the key ``stored_digest`` was made from (constant-time); a missing
        digest costs the same and fails."""
        computed = self.digest(api_key)
        return hmac.compare_digest(stored_digest or "0" * len(computed), computed) and (
            stored_digest is not None
        )


__all__ = ["ApiKeyDigests", "NewApiKey", "api_key_id"]
