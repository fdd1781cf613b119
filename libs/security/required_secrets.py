"""Every service refuses to start without its secrets.

Nothing falls back to a public constant or to a key a process makes for itself: a service whose
pepper, key or public key is not configured stops at start, naming what is missing, instead of
running with something an attacker can know or that its replicas do not share. `make run` and the
tests make a development set (`libs.devstack.dev_secrets`); a deployment sets its own.

`SERVICE_SECRETS` is the one table of which secret each service holds: each is given only its own
(`make run`'s runner, `docker-compose.yml`, checked by the compose contract test), so the token
and grant private keys are in the one process that signs with them.
"""

from __future__ import annotations

from collections.abc import Mapping

from libs.security.record_signatures import PUBLIC_KEYS_VARIABLE as RECORD_PUBLIC_KEYS
from libs.security.record_signatures import is_signing_key_variable, signing_key_variable
from libs.security.sealing import PUBLIC_KEYS_VARIABLE as SEALING_PUBLIC_KEYS
from libs.security.sealing import is_private_keys_variable, private_keys_variable


def _record_keys(service: str) -> tuple[str, str]:
    return signing_key_variable(f"SIGNGATE_{service.upper()}_"), RECORD_PUBLIC_KEYS


SERVICE_SECRETS: dict[str, tuple[str, ...]] = {
    "identity": (  # consumes only its commands (no record to verify); its tokens' public key is its key's
        _record_keys("identity")[0],
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_TOKEN_PRIVATE_KEY",
        "SIGNGATE_DIGEST_KEY",
        SEALING_PUBLIC_KEYS,
        "SIGNGATE_IDENTITY_TOTP_KEY",  # authenticator secrets at rest
    ),
    "workflow": (
        *_record_keys("workflow"),
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_TOKEN_PUBLIC_KEY",
        "SIGNGATE_INVITATION_PRIVATE_KEY",
        "SIGNGATE_DIGEST_KEY",
        SEALING_PUBLIC_KEYS,
    ),
    "authentication": (
        *_record_keys("authentication"),
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_OTP_PEPPER",
        "SIGNGATE_TOKEN_PUBLIC_KEY",
        "SIGNGATE_GRANT_PRIVATE_KEY",
        "SIGNGATE_INVITATION_PUBLIC_KEY",
        "SIGNGATE_DIGEST_KEY",
        private_keys_variable("authentication"),
    ),
    "otp_dispatch": (*_record_keys("otp_dispatch"), "SIGNGATE_OTP_PEPPER"),
}
"""Service -> the secret variables it needs, and the only ones it is given."""

SECRET_VARIABLES = frozenset(name for names in SERVICE_SECRETS.values() for name in names)


def is_secret_variable(name: str) -> bool:
    return (
        name in SECRET_VARIABLES or is_signing_key_variable(name) or is_private_keys_variable(name)
    )


def own_secrets_only(env: Mapping[str, str], service: str) -> dict[str, str]:
    """``env`` without the secrets ``service`` does not hold (other services' keys, peppers it does
    not use); everything else (connections, settings) as it is."""
    own = set(SERVICE_SECRETS.get(service, ()))
    return {
        name: value for name, value in env.items() if not is_secret_variable(name) or name in own
    }


class SecretsMissing(RuntimeError):
    """A service was started without secrets it needs."""


def require(service: str, configured: Mapping[str, object]) -> None:
    """Refuse to start ``service`` when any of ``configured`` (variable -> its setting) is unset."""
    missing = [name for name, value in configured.items() if value is None or value in ("", [], {})]
    if missing:
        raise SecretsMissing(
            f"{service} will not start without {', '.join(missing)} "
            "(`python -m libs.devstack.dev_secrets` makes a development set)"
        )
