"""Redaction follows the contracts: every credential field is removed from logs and dead letters."""

from __future__ import annotations

import json
import re

import pytest
from aiokafka.structs import ConsumerRecord

from libs.runtime.logging import REDACTED, redact
from libs.runtime.messaging.dead_letters import dead_letter_record
from signgate_contracts.credentials import _is_secret, _nested_models, credential_fields
from signgate_contracts.topics import TOPICS

CANARY = "canary-7f3c9e"

LOOKS_LIKE_A_CREDENTIAL = re.compile(r"(password|token|code|secret|grant|key|pin|otp|hash)", re.IGNORECASE)
NOT_CREDENTIALS = {
    ("AuthenticationFailed", "change_password_url"), ("AuthenticationFailed", "expired_password_url"),
    ("AuthenticationSucceeded", "change_password_url"), ("AuthenticationSucceeded", "token_type"),
    ("AuthenticationFailure", "code"), ("CommandRejected", "code"),  # reason codes
    ("AuthenticationSetting", "password"), ("AuthenticationSetting", "sms_otp"),  # which methods apply
    ("OtpDeliveryRequested", "code_length"), ("RecipientAuthenticationStatus", "otp_expires_at"),
    ("PasswordChanged", "must_change_password"), ("UserRegistered", "must_change_password"),
    ("UserRegistered", "password_set"), ("RegisterUser", "require_password_change"),
    ("PhoneNumber", "country_code"), ("PublicAuthenticationPolicy", "secret_set"),
    ("SealedAuthenticationPolicy", "secret_set"),
    ("UserAuthenticated", "token_id"),  # names a token, is not one
    ("DocumentAccessGranted", "grant_id"),  # the grant's jti, as its revocation names it; not the grant
    ("PasswordChangedV2", "must_change_password"), ("UserRegisteredV2", "must_change_password"),
    ("UserRegisteredV2", "password_set"), ("UserAuthenticatedV2", "token_id"),
    ("AuthenticationPolicy", "secret_hash"),  # a peppered argon2id hash; redacted by name all the same
    # an API key's public id (the key's first 32 hex digits after `sgk_`), not its secret
    ("RevokeApiKey", "key_id"), ("ApiKeySummary", "key_id"), ("ApiKeyRevoked", "key_id"),
    ("IssuedApiKey", "key_id"), ("ApiKeyIssued", "key_id"), ("ApiKeyExchanged", "key_id"),
    ("ApiKeyToken", "key_id"),
    ("ApiKeysListed", "keys"),  # summaries of keys: ids, names, times
    ("ApiKeyExchanged", "token_id"), ("ApiKeyToken", "token_type"),
    ("AuthenticatorConfirmed", "secret_sealed"),  # a sealed box only authentication opens, as mobile_sealed
    # a recipient's TOTP: which method applies, where its secret comes from, the provisioning's id;
    # the provisioned secret itself only sealed to authentication (`RecipientTotpProvisioned` types it)
    ("AuthenticationSetting", "totp"), ("AddAuthenticationBody", "totp_source"),
    ("ResetRecipientAuthentication", "totp_source"), ("SealedAuthenticationPolicy", "totp_source"),
    ("SealedAuthenticationPolicy", "totp_authenticator_id"), ("SealedAuthenticationPolicy", "totp_sealed"),
    ("PublicAuthenticationPolicy", "totp_source"), ("PublicAuthenticationPolicy", "totp_authenticator_id"),
}
"""Fields whose names sound like credentials and are not: each one looked at, and why."""


def every_model():
    seen, pending = set(), [m for t in TOPICS for m in t.messages]
    while pending:
        model = pending.pop()
        if model not in seen:
            seen.add(model)
            pending += [n for f in model.model_fields.values() for n in _nested_models(f.annotation)]
    return seen


def test_the_credential_fields_are_read_from_the_models() -> None:
    assert {"password", "new_password", "current_password", "access_token", "grant", "code", "access_code",
            "accessCode", "user_password"} <= credential_fields()


@pytest.mark.parametrize("name", sorted(credential_fields()))
def test_every_credential_field_is_redacted_in_logs_and_dead_letters_at_any_depth(name: str) -> None:
    document = {"type": "x.y", name: CANARY, "body": {name: CANARY, "items": [{name: CANARY}]}}
    record = ConsumerRecord("t", 0, 7, 0, 0, b"k", json.dumps(document).encode(), None, 0, 0, ())

    assert CANARY not in json.dumps(redact(document))
    assert redact(document)[name] == REDACTED
    assert CANARY not in dead_letter_record(record, service="s", reason="r").decode()


def test_a_field_that_sounds_like_a_credential_is_typed_as_one_or_was_looked_at() -> None:
    """A new credential field typed as plain text fails here: type it `Secret`, or say why it is none."""
    untyped = {(model.__name__, name) for model in every_model() for name, field in model.model_fields.items()
               if LOOKS_LIKE_A_CREDENTIAL.search(name) and not _is_secret(field.annotation)}
    assert untyped - NOT_CREDENTIALS == set()
