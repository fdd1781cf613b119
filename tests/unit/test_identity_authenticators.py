"""Authenticator secrets at rest (AES-256-GCM, rotatable keys) and recovery codes (keyed digests)."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from pydantic import SecretStr

from services.identity.authenticators import (
    AuthenticatorSecrets,
    RecoveryCodeDigests,
    TotpKeyError,
    generate_totp_key,
    looks_like_recovery_code,
)
from services.identity.domain import login_proof

AUTHENTICATOR, USER = uuid.uuid4(), uuid.uuid4()


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_a_sealed_secret_opens_for_its_row_only() -> None:
    """A secret opens for the authenticator and user it was sealed for, and not when moved to another row."""
    box = AuthenticatorSecrets.from_setting(SecretStr(generate_totp_key()))
    sealed = box.seal("JBSWY3DPEHPK3PXP", authenticator_id=AUTHENTICATOR, user_id=USER)

    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, authenticator_id=AUTHENTICATOR, user_id=USER) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(TotpKeyError):
        box.open(sealed, authenticator_id=AUTHENTICATOR, user_id=uuid.uuid4())


def test_after_rotation_old_secrets_open_and_are_marked_for_resealing() -> None:
    """With a new key put first, a secret sealed under the old one still opens and needs resealing;
    one sealed now does not, and the old key alone cannot open it."""
    old, new = key(), key()
    before = AuthenticatorSecrets.from_setting(SecretStr(json.dumps([old])))
    after = AuthenticatorSecrets.from_setting(SecretStr(json.dumps([new, old])))
    sealed_before = before.seal("SECRET", authenticator_id=AUTHENTICATOR, user_id=USER)
    sealed_after = after.seal("SECRET", authenticator_id=AUTHENTICATOR, user_id=USER)

    assert after.open(sealed_before, authenticator_id=AUTHENTICATOR, user_id=USER) == "SECRET"
    assert after.needs_resealing(sealed_before) and not after.needs_resealing(sealed_after)
    with pytest.raises(TotpKeyError):
        before.open(sealed_after, authenticator_id=AUTHENTICATOR, user_id=USER)


@pytest.mark.parametrize("setting", [None, "not json", '["c2hvcnQ="]', "[]"])
def test_a_missing_or_malformed_key_setting_is_refused(setting: str | None) -> None:
    """No key, not JSON, a key of the wrong length or an empty list: the service does not start."""
    with pytest.raises(TotpKeyError):
        AuthenticatorSecrets.from_setting(SecretStr(setting) if setting is not None else None)


def test_recovery_codes_are_distinct_and_their_digest_ignores_case_and_hyphens() -> None:
    """Ten distinct codes; a code typed upper-case without its hyphen has the stored digest; the
    digest differs for another authenticator."""
    digests = RecoveryCodeDigests(b"p" * 32)
    made = digests.new_codes(AUTHENTICATOR, 10)

    assert len(set(made.codes)) == 10 and all(looks_like_recovery_code(c) for c in made.codes)
    typed = made.codes[0].replace("-", "").upper()
    assert digests.digest(AUTHENTICATOR, typed) == made.digests[0]
    assert digests.digest(uuid.uuid4(), made.codes[0]) != made.digests[0]


@pytest.mark.parametrize(("password", "enrolled", "check", "proven", "counts", "refusal"), [
    (True, False, None, True, False, None),
    (False, False, None, False, True, None),
    (True, True, None, False, False, "second_factor_required"),
    (False, True, None, False, True, "second_factor_required"),
    (True, True, "accepted", True, False, None),
    (True, True, "wrong", False, True, None),
    (False, True, "wrong", False, True, None),
    (True, True, "used", False, False, "totp_code_used"),
    (False, True, "used", False, True, "totp_code_used"),
])
def test_the_login_rule_with_a_second_factor(password: bool, enrolled: bool, check: str | None, proven: bool,
                                             counts: bool, refusal: str | None) -> None:
    """Each combination of password, authenticator and code: proven, counted, and the reason told."""
    proof = login_proof(password_matches=password, has_authenticator=enrolled, code_check=check)  # type: ignore[arg-type]

    assert (proof.proven, proof.counts_failure, proof.refusal) == (proven, counts, refusal)
