"""Document-access grants without a stack: their claims, key ids, JWKS, the verifier and revocations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from libs.runtime.errors import Forbidden, NotFound
from libs.security.tokens import generate_key_pair
from services.authentication.domain import (
    AuthenticationChanged,
    RecipientPolicy,
    Revocation,
    grant_still_current,
    revocation_for,
)
from services.authentication.grants import GrantKeyError, GrantSettings, GrantSigner
from services.authentication.jwks import development_settings, jwks_text
from signgate_client import (
    GrantExpired,
    GrantInvalid,
    GrantNotForThis,
    GrantNotYetValid,
    GrantRevocations,
    GrantRevoked,
    GrantVerifier,
    UnknownGrantKey,
)
from signgate_client.jwks import GrantKeys, KeySetError, jwk_of, thumbprint
from signgate_contracts.authentication import DocumentAccessRevoked

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def signer(**settings: object) -> GrantSigner:
    return GrantSigner(GrantSettings(private_key=generate_key_pair().private_key, **settings))


def verifier_of(signer: GrantSigner, *, at: datetime = NOW, **options: object) -> GrantVerifier:
    return GrantVerifier.from_jwks(json.dumps(signer.jwks()), clock=lambda: at, **options)


def grant(by: GrantSigner, *, lasts: timedelta = timedelta(minutes=30), package_id: str = "pkg-1",
          order: int = 2) -> str:
    return by.sign(package_id, order, NOW, NOW + lasts).token


def forged(claims: dict, *, key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def public_pem(by: GrantSigner) -> bytes:
    """The signer's current public key as PEM (what an algorithm-confusion forger would HMAC with)."""
    return by.keys[by.key_id].public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def hs256(claims: dict, secret: bytes, *, kid: str) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    signed = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


# -- keys --


def test_key_id_is_the_rfc_7638_thumbprint() -> None:
    """The kid of an Ed25519 key is its RFC 7638 thumbprint (RFC 8037 appendix A.3's vector)."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_of(key) == {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint(key), "use": "sig",
                           "alg": "EdDSA"}


def test_jwks_lists_the_current_key_first_and_the_previous_ones_during_a_rotation() -> None:
    """With previous public keys set, the JWKS carries the signing key and each previous one."""
    old = generate_key_pair()
    current = signer(previous_public_keys=[old.public_key])
    kids = [key["kid"] for key in current.jwks()["keys"]]
    assert kids == [current.key_id, thumbprint(GrantKeys.from_pem(old.public_key)[kids[1]])]
    assert json.loads(jwks_text(GrantSettings(private_key=generate_key_pair().private_key)))["keys"][0]["alg"] == "EdDSA"


@pytest.mark.parametrize("entry", [
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "enc"},
    {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "chosen"},
    {"kty": "OKP", "crv": "Ed25519", "x": "short"},
])
def test_a_key_set_with_a_key_grants_do_not_use_is_refused(entry: dict) -> None:
    """A JWKS entry that is not an Ed25519 signing key, or whose kid is not its thumbprint, is refused."""
    with pytest.raises(KeySetError):
        GrantKeys.from_jwks({"keys": [entry]})


def test_settings_refuse_a_bad_previous_key_and_an_unbounded_lifetime() -> None:
    """A previous public key that is not Ed25519 PEM stops the signer; the lifetime is at most a day."""
    with pytest.raises(GrantKeyError):
        GrantSigner(GrantSettings(previous_public_keys=["not a key"]))
    with pytest.raises(ValidationError):
        GrantSettings(lifetime=timedelta(days=2))


def test_without_a_configured_key_one_settings_object_signs_and_publishes_one_key() -> None:
    """Two signers of one settings object (the use cases' and the JWKS route's) agree on the key."""
    settings = GrantSettings()
    assert GrantSigner(settings).key_id == GrantSigner(settings).key_id


def test_development_keys_are_read_only_when_the_stack_made_them(tmp_path) -> None:
    """`jwks --development` uses the development stack's grant key, and makes none when there is none."""
    assert development_settings(tmp_path) is None
    assert not (tmp_path / "development-secrets.json").exists()
    (tmp_path / "development-secrets.json").write_text(
        json.dumps({"SIGNGATE_GRANT_PRIVATE_KEY": generate_key_pair().private_key}))
    assert development_settings(tmp_path).private_key is not None


# -- claims and verification --


def test_a_grant_carries_iss_aud_exp_jti_and_a_kid_header() -> None:
    """A grant names its key, its audience, issuer, recipient, scope, id and expiry."""
    by = signer(audience="viewer.example")
    issued = by.sign("pkg-1", 2, NOW, NOW + timedelta(minutes=12, microseconds=500))
    header, claims = jwt.get_unverified_header(issued.token), jwt.decode(issued.token, options={"verify_signature": False})
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": by.key_id}
    assert claims["aud"] == "viewer.example" and claims["iss"] == "signgate-authentication"
    assert (claims["pkg"], claims["ord"], claims["sub"], claims["scope"]) == ("pkg-1", 2, "pkg-1/2", "doc:open")
    assert claims["jti"] == issued.grant_id and uuid.UUID(issued.grant_id)
    assert claims["exp"] == int((NOW + timedelta(minutes=12)).timestamp()) == int(issued.expires_at.timestamp())


def test_the_verifier_accepts_a_genuine_grant_and_says_what_it_allows() -> None:
    """A genuine, current grant verifies into its package, recipient, id, expiry and key."""
    by = signer()
    issued = by.sign("pkg-1", 2, NOW, NOW + timedelta(minutes=30))
    verified = verifier_of(by).verify(issued.token, package_id="pkg-1", order=2)
    assert (verified.package_id, verified.order, verified.grant_id, verified.key_id) == (
        "pkg-1", 2, issued.grant_id, by.key_id)
    assert verified.expires_at == NOW + timedelta(minutes=30) and verified.issued_at == NOW


def test_an_expired_grant_is_refused_after_the_leeway_only() -> None:
    """A grant is accepted up to the leeway past its exp, and refused after."""
    by = signer()
    token = grant(by, lasts=timedelta(minutes=5))
    assert verifier_of(by, at=NOW + timedelta(minutes=5, seconds=20)).verify(token)
    with pytest.raises(GrantExpired):
        verifier_of(by, at=NOW + timedelta(minutes=5, seconds=31)).verify(token)


def test_a_leeway_longer_than_revocations_are_kept_is_refused() -> None:
    """A verifier cannot be set to accept grants long expired, which revocations no longer name."""
    with pytest.raises(ValueError, match="leeway"):
        verifier_of(signer(), leeway=timedelta(minutes=3))


def test_a_grant_from_the_future_is_refused() -> None:
    """A grant issued further ahead than the leeway (a skewed or forged clock) is not valid yet."""
    by = signer()
    with pytest.raises(GrantNotYetValid):
        verifier_of(by, at=NOW - timedelta(minutes=2)).verify(grant(by))


def test_a_grant_for_another_audience_or_issuer_is_refused() -> None:
    """The verifier's audience and issuer must be the grant's."""
    by = signer(audience="another-viewer")
    with pytest.raises(GrantInvalid, match="[Aa]udience"):
        verifier_of(by).verify(grant(by))
    with pytest.raises(GrantInvalid, match="[Ii]ssuer"):
        verifier_of(by, audience="another-viewer", issuer="someone-else").verify(grant(by))


def test_a_grant_signed_by_an_unknown_key_is_refused_by_its_key_id() -> None:
    """A grant of another key (or with no kid) is refused with UnknownGrantKey, the rotation hint."""
    with pytest.raises(UnknownGrantKey):
        verifier_of(signer()).verify(grant(signer()))
    by = signer()
    key = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownGrantKey):
        verifier_of(by).verify(jwt.encode({"jti": "x"}, key, algorithm="EdDSA"))


def test_a_grant_signed_by_another_key_under_a_known_key_id_is_refused() -> None:
    """Naming the service's kid does not make another key's signature pass."""
    by = signer()
    claims = jwt.decode(grant(by), options={"verify_signature": False})
    with pytest.raises(GrantInvalid, match="[Ss]ignature"):
        verifier_of(by).verify(forged(claims, key=Ed25519PrivateKey.generate(), kid=by.key_id))


def test_other_algorithms_are_refused_whatever_the_header_says() -> None:
    """alg none and HS256 keyed with the public key (algorithm confusion) are refused."""
    by = signer()
    claims = jwt.decode(grant(by), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": by.key_id})
    confused = hs256(claims, public_pem(by), kid=by.key_id)  # PyJWT refuses to make one
    for token in (unsigned, confused):
        with pytest.raises(GrantInvalid, match="EdDSA"):
            verifier_of(by).verify(token)


@pytest.mark.parametrize("missing", ["exp", "jti", "aud", "pkg", "ord", "scope", "iat", "sub"])
def test_a_grant_missing_a_claim_is_refused(missing: str) -> None:
    """Every claim a grant always has is required, even under a genuine signature."""
    by = signer()
    claims = jwt.decode(grant(by), options={"verify_signature": False})
    del claims[missing]
    with pytest.raises(GrantInvalid):
        verifier_of(by).verify(forged(claims, key=by._key, kid=by.key_id))


@pytest.mark.parametrize("change", [{"scope": "doc:admin"}, {"ord": 0}, {"ord": "2"}, {"pkg": ""}])
def test_a_grant_with_a_malformed_claim_is_refused(change: dict) -> None:
    """A wrong scope or a recipient that is not one (order outside 1-50, not a number) is refused."""
    by = signer()
    claims = {**jwt.decode(grant(by), options={"verify_signature": False}), **change}
    with pytest.raises(GrantInvalid):
        verifier_of(by).verify(forged(claims, key=by._key, kid=by.key_id))


def test_a_tampered_grant_is_refused() -> None:
    """Changing the payload of a signed grant breaks it."""
    by = signer()
    head, payload, signature = grant(by).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["pkg"] = "pkg-other"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(GrantInvalid):
        verifier_of(by).verify(f"{head}.{altered}.{signature}")
    with pytest.raises(GrantInvalid):
        verifier_of(by).verify("not-a-grant")


def test_a_grant_for_another_document_is_refused() -> None:
    """A viewer opening one package, or one recipient's view, refuses another's grant."""
    by = signer()
    with pytest.raises(GrantNotForThis):
        verifier_of(by).verify(grant(by), package_id="pkg-other")
    with pytest.raises(GrantNotForThis):
        verifier_of(by).verify(grant(by), package_id="pkg-1", order=3)


def test_a_grant_of_the_previous_key_verifies_during_a_rotation() -> None:
    """A grant signed before a rotation verifies with the JWKS that lists the previous key."""
    old = generate_key_pair()
    before = GrantSigner(GrantSettings(private_key=old.private_key))
    after = signer(previous_public_keys=[old.public_key])
    assert verifier_of(after).verify(grant(before)).key_id == before.key_id


# -- revocations --


def revocation(jti: str, *, expires_at: datetime = NOW + timedelta(minutes=30)) -> DocumentAccessRevoked:
    return DocumentAccessRevoked(jti=jti, package_id="pkg-1", order=2, reason="recipient_signed",
                                 expires_at=expires_at)


def test_the_verifier_refuses_a_revoked_grant() -> None:
    """Once its revocation has been fed, a genuine grant is refused as revoked; others still pass."""
    by = signer()
    revoked, kept = by.sign("pkg-1", 2, NOW, NOW + timedelta(minutes=30)), grant(by)
    revocations = GrantRevocations(clock=lambda: NOW)
    verifier = verifier_of(by, revocations=revocations)
    assert revocations.feed(revocation(revoked.grant_id).model_dump_json().encode())
    with pytest.raises(GrantRevoked):
        verifier.verify(revoked.token)
    assert verifier.verify(kept)


def test_revocations_ignore_every_other_record_of_the_topic() -> None:
    """Other event types, future types, malformed revocations and non-JSON are not revocations."""
    revocations = GrantRevocations()
    assert not revocations.feed(b'{"type": "authentication.recipient_authenticated", "jti": "x"}')
    assert not revocations.feed(b'{"type": "authentication.document_access_revoked"}')
    assert not revocations.feed(b"\xff not json")
    assert not revocations.feed({"type": "authentication.something_new"})
    assert len(revocations) == 0


def test_revocations_are_forgotten_once_their_grant_has_expired() -> None:
    """A revocation is kept while its grant could still verify (exp plus the longest leeway a
    verifier may allow, 2 minutes), then dropped."""
    now = [NOW]
    revocations = GrantRevocations(clock=lambda: now[0])
    revocations.add(revocation("a", expires_at=NOW + timedelta(minutes=1)))
    revocations.add(revocation("b", expires_at=NOW + timedelta(minutes=30)))
    now[0] = NOW + timedelta(minutes=2, seconds=59)
    assert revocations.forget_expired() == 0
    now[0] = NOW + timedelta(minutes=3, seconds=1)
    assert revocations.forget_expired() == 1
    assert "a" not in revocations and "b" in revocations


# -- the rules of revocation --


@pytest.mark.parametrize(("event_type", "expected"), [
    ("workflow.recipient_signed", Revocation("recipient_signed", 2)),
    ("workflow.recipient_declined", Revocation("recipient_declined", 2)),
    ("workflow.recipient_authentication_updated_v2", Revocation("authentication_changed", 2)),
    ("workflow.recipient_authentication_reset_v2", Revocation("authentication_reset", 2)),
    ("workflow.recipient_authentication_removed", Revocation("authentication_removed", 2)),
    ("workflow.workflow_terminated", Revocation("package_terminated", None)),
    ("workflow.workflow_declined", Revocation("package_declined", None)),
    ("workflow.workflow_completed", Revocation("package_completed", None)),
    ("workflow.recipient_received", None),
    ("workflow.workflow_locked", None),
])
def test_which_facts_revoke_whose_grants(event_type: str, expected: Revocation | None) -> None:
    """Signing, declining, a changed, reset or removed authentication revoke the recipient's grants;
    the package's end revokes everyone's; nothing else revokes."""
    assert revocation_for(event_type, 2) == expected


def test_no_grant_is_issued_on_an_authentication_changed_or_a_package_ended_meanwhile() -> None:
    """A grant is issued only if the recipient's authentication version and the package are as the
    attempt saw them."""
    policy = RecipientPolicy(package_id="p", order=1, email="d", methods=("access_code",), authentication_version=3)
    grant_still_current(policy, 3, "in_progress")
    with pytest.raises(AuthenticationChanged):
        grant_still_current(policy, 4, "in_progress")
    with pytest.raises(Forbidden):
        grant_still_current(policy, 3, "terminated")
    with pytest.raises(NotFound):
        grant_still_current(policy, None, None)
