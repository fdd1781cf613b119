"""Every service refuses to start without its secrets.

Nothing falls back to a public constant or to a key a process makes for itself: a service whose
pepper, key or public key is not configured stops at start, naming what is missing, instead of
running with something an attacker can know or that its replicas do not share. `make run` and the
tests make a development set (`libs.devstack.dev_secrets`); a deployment sets its own.

`SERVICE_SECRETS` is the one table of which secret each service holds: each is given only its own
(`make run`'s runner, `docker-compose.yml`, deploy/kubernetes' Secrets, checked by the contract
tests), so the token and grant private keys are in the one process that signs with them.
`SERVICE_PUBLIC_KEYS` says which public keys each one checks signatures with or seals to: public
keys are not secrets (anyone may hold them; they only let a reader check what the key's owner
signed), so they travel as settings (a ConfigMap on Kubernetes), and a caller such as the gateway,
which holds no secret, still verifies that a record came from its writer.
"""

from __future__ import annotations

from collections.abc import Mapping

from libs.security.record_signatures import PUBLIC_KEYS_VARIABLE as RECORD_PUBLIC_KEYS
from libs.security.record_signatures import is_signing_key_variable, signing_key_variable
from libs.security.sealing import PUBLIC_KEYS_VARIABLE as SEALING_PUBLIC_KEYS
from libs.security.sealing import is_private_keys_variable, private_keys_variable

TOKEN_PUBLIC_KEY = "SIGNGATE_TOKEN_PUBLIC_KEY"
INVITATION_PUBLIC_KEY = "SIGNGATE_INVITATION_PUBLIC_KEY"


def _signing_key(service: str) -> str:
    return signing_key_variable(f"SIGNGATE_{service.upper()}_")


SERVICE_SECRETS: dict[str, tuple[str, ...]] = {
    "identity": (
        _signing_key("identity"),
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_TOKEN_PRIVATE_KEY",
        "SIGNGATE_DIGEST_KEY",
        "SIGNGATE_IDENTITY_TOTP_KEY",  # authenticator secrets at rest
    ),
    "workflow": (
        _signing_key("workflow"),
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_INVITATION_PRIVATE_KEY",
        "SIGNGATE_DIGEST_KEY",
    ),
    "authentication": (
        _signing_key("authentication"),
        "SIGNGATE_SECRET_PEPPER",
        "SIGNGATE_OTP_PEPPER",
        "SIGNGATE_GRANT_PRIVATE_KEY",
        "SIGNGATE_DIGEST_KEY",
        private_keys_variable("authentication"),
    ),
    "otp_dispatch": (_signing_key("otp_dispatch"), "SIGNGATE_OTP_PEPPER"),
    "gateway": (),  # a caller: the services check its callers' tokens themselves
}
"""Service -> the secret variables it needs, and the only ones it is given."""

SERVICE_PUBLIC_KEYS: dict[str, tuple[str, ...]] = {
    # identity consumes only its commands (no record to verify); its tokens' public key is its key's
    "identity": (SEALING_PUBLIC_KEYS,),
    "workflow": (RECORD_PUBLIC_KEYS, TOKEN_PUBLIC_KEY, SEALING_PUBLIC_KEYS),
    "authentication": (RECORD_PUBLIC_KEYS, TOKEN_PUBLIC_KEY, INVITATION_PUBLIC_KEY),
    "otp_dispatch": (RECORD_PUBLIC_KEYS,),
    "gateway": (RECORD_PUBLIC_KEYS,),  # identity's signature on a revoked API key
}
"""Service -> the public keys it verifies with or seals to (not secrets: settings)."""

SECRET_VARIABLES = frozenset(name for names in SERVICE_SECRETS.values() for name in names)
PUBLIC_KEY_VARIABLES = frozenset(name for names in SERVICE_PUBLIC_KEYS.values() for name in names)


def is_public_key_variable(name: str) -> bool:
    """One of the named public key settings (by name, never by a pattern: a private key called
    ``..._PUBLIC_...`` by mistake stays a secret)."""
    return name in PUBLIC_KEY_VARIABLES


def is_secret_variable(name: str) -> bool:
    return not is_public_key_variable(name) and (
        name in SECRET_VARIABLES or is_signing_key_variable(name) or is_private_keys_variable(name)
    )


def own_secrets_only(env: Mapping[str, str], service: str) -> dict[str, str]:
    """``env`` without the secrets ``service`` does not hold (other services' keys, peppers it does
    not use); everything else (connections, settings, public keys) as it is."""
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
