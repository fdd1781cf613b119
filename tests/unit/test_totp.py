"""The TOTP rule (libs/security/totp.py): RFC 6238's test vectors through the function that decides
every code in production, and the drift window around the current step."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from libs.security.totp import (
    TotpGuessesExhausted,
    TotpParameters,
    TotpSettings,
    current_step,
    matching_step,
    new_secret,
    provisioning_uri,
    secret_from_bytes,
)

SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC_6238 = [  # Appendix B: time (s), then the 8-digit code for SHA1, SHA256, SHA512
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
VECTORS = [
    (seconds, algorithm, code)
    for seconds, *codes in RFC_6238
    for algorithm, code in zip(("SHA1", "SHA256", "SHA512"), codes, strict=True)
]


@pytest.mark.parametrize(("seconds", "algorithm", "code"), VECTORS)
def test_rfc_6238_vectors_match_their_step(seconds: int, algorithm: str, code: str) -> None:
    """Each RFC 6238 test code matches, with no drift allowed, exactly the step of its time."""
    parameters = TotpParameters(digits=8, algorithm=algorithm, period=30)  # type: ignore[arg-type]
    at = datetime.fromtimestamp(seconds, UTC)
    secret = secret_from_bytes(SEEDS[algorithm])
    assert matching_step(secret, code, at, parameters=parameters, drift_steps=0) == seconds // 30


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
def test_an_rfc_code_does_not_open_under_another_algorithm(algorithm: str) -> None:
    """A vector's code is refused when the secret is used with another hash function."""
    other = {"SHA1": "SHA256", "SHA256": "SHA512", "SHA512": "SHA1"}[algorithm]
    seconds, *codes = RFC_6238[3]
    code = codes[("SHA1", "SHA256", "SHA512").index(algorithm)]
    parameters = TotpParameters(digits=8, algorithm=other, period=30)  # type: ignore[arg-type]
    at = datetime.fromtimestamp(seconds, UTC)
    assert matching_step(secret_from_bytes(SEEDS[algorithm]), code, at, parameters=parameters) is None


def test_the_drift_window_admits_one_step_either_side_and_no_more() -> None:
    """With a drift of one step, the codes of the steps before and after match (as those steps),
    and the codes two steps away do not."""
    secret = new_secret()
    at = datetime(2026, 12, 4, 12, 0, 10, tzinfo=UTC)
    now = current_step(at)
    totp = pyotp.TOTP(secret)
    for offset in (-1, 0, 1):
        assert matching_step(secret, totp.generate_otp(now + offset), at, drift_steps=1) == now + offset
    for offset in (-2, 2):
        assert matching_step(secret, totp.generate_otp(now + offset), at, drift_steps=1) is None
    assert matching_step(secret, totp.generate_otp(now - 1), at, drift_steps=0) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "１２３４５６", " 12345", "123 45"])
def test_codes_of_the_wrong_shape_never_match(code: str) -> None:
    """Text that is not exactly six ASCII digits is refused before any code is computed."""
    assert matching_step(new_secret(), code, datetime.now(UTC)) is None


def test_the_provisioning_uri_names_issuer_account_and_parameters() -> None:
    """The otpauth URI an app scans carries the secret, the issuer, the account and non-default
    parameters, so the app makes the same codes the service checks."""
    secret = new_secret()
    uri = provisioning_uri(
        secret,
        account_name="alex@example.com",
        issuer="Example Bank",
        parameters=TotpParameters(digits=8, algorithm="SHA256", period=60),
    )
    parts = urlsplit(uri)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert query["secret"] == secret and query["issuer"] == "Example Bank"
    assert query["digits"] == "8" and query["algorithm"] == "SHA256" and query["period"] == "60"
    assert "alex%40example.com" in parts.path or "alex@example.com" in parts.path
    code = pyotp.parse_uri(uri).now()
    assert matching_step(
        secret, code, datetime.now(UTC), parameters=TotpParameters(8, "SHA256", 60)
    ) is not None


def test_fresh_secrets_are_160_bits_and_differ() -> None:
    """A new secret is 32 base32 characters (160 bits) and never repeats."""
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100 and all(len(s) == 32 for s in secrets)


def test_the_guess_ceiling_is_ten_wrong_codes_in_fifteen_minutes_and_bounded() -> None:
    """By default a subject gets ten wrong codes per fifteen minutes; both are settings held
    within bounds (no ceiling of 0, no window under a minute)."""
    default = TotpSettings()
    assert (default.guess_ceiling, default.guess_window_seconds) == (10, 900)
    with pytest.raises(ValueError):
        TotpSettings(guess_ceiling=0)
    with pytest.raises(ValueError):
        TotpSettings(guess_window_seconds=59)


def test_past_the_ceiling_the_refusal_is_a_429_saying_how_long_to_wait() -> None:
    """The refusal is 429 totp_guesses_exhausted with its wait in seconds, in the text and the field
    a gateway turns into Retry-After."""
    refused = TotpGuessesExhausted(840)
    assert (refused.status, refused.code, refused.retry_after_seconds) == (
        429,
        "totp_guesses_exhausted",
        840,
    )
    assert "840 seconds" in refused.message
