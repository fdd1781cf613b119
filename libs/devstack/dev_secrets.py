"""Peppers and signing keys for a development stack, and a ``.env`` for docker compose.

``python -m libs.devstack.dev_secrets > .env`` writes fresh ones for `docker compose up`, with the
compose file's passwords; ``python -m libs.devstack.dev_secrets --kubernetes DIR`` writes them as
the files deploy/kubernetes reads; `make run` keeps its own with its data, so stored hashes stay
valid across restarts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from secrets import token_urlsafe

from libs.security.record_signatures import (
    PUBLIC_KEYS_VARIABLE,
    generate_record_keys,
    is_signing_key_variable,
)
from libs.security.required_secrets import PUBLIC_KEY_VARIABLES, SERVICE_SECRETS
from libs.security.sealing import PUBLIC_KEYS_VARIABLE as SEALING_PUBLIC_KEYS
from libs.security.sealing import generate_sealing_keys
from libs.security.sealing import is_private_keys_variable as is_sealing_key_variable
from libs.security.secrets import generate_pepper
from libs.security.tokens import generate_key_pair
from services.identity.authenticators import generate_totp_key

RECORD_WRITERS = ("identity", "workflow", "authentication", "otp_dispatch")
"""The services that sign what they publish (`signgate_contracts.topics.Topic.writer`)."""
SEALING_CONSUMERS = ("authentication",)
"""The services that open values sealed to them on the bus (`libs.security.sealing`)."""


def generate_secrets() -> dict[str, str]:
    """Every secret of the services, fresh: two peppers, the identifier digest key, identity's key of
    authenticator secrets at rest, the token and
    grant key pairs' halves, the invitation key pair, each service's record signing key with the public keys of them all,
    and the sealing keys of the services values are sealed to."""
    tokens, grants, invitations = generate_key_pair(), generate_key_pair(), generate_key_pair()
    return {
        "SIGNGATE_SECRET_PEPPER": generate_pepper(),
        "SIGNGATE_OTP_PEPPER": generate_pepper(),
        "SIGNGATE_TOKEN_PRIVATE_KEY": tokens.private_key,
        "SIGNGATE_TOKEN_PUBLIC_KEY": tokens.public_key,
        "SIGNGATE_GRANT_PRIVATE_KEY": grants.private_key,
        "SIGNGATE_INVITATION_PRIVATE_KEY": invitations.private_key,
        "SIGNGATE_INVITATION_PUBLIC_KEY": invitations.public_key,
        "SIGNGATE_DIGEST_KEY": generate_pepper(),
        "SIGNGATE_IDENTITY_TOTP_KEY": generate_totp_key(),
        **generate_record_keys(RECORD_WRITERS),
        **generate_sealing_keys(SEALING_CONSUMERS),
    }


COMPOSE_KAFKA_USERS = ("admin", "provision", *RECORD_WRITERS, "gateway", "cli")
"""docker-compose.yml's Kafka users: the super user, provisioning, each service, the gateway, the
host's CLI."""


def compose_passwords() -> dict[str, str]:
    """Fresh passwords for docker-compose.yml: Postgres's and each Kafka user's (URL-safe: they
    are written into a URL and a JAAS line)."""
    return {
        "POSTGRES_PASSWORD": token_urlsafe(24),
        **{f"SASL_PASSWORD_{user.upper()}": token_urlsafe(24) for user in COMPOSE_KAFKA_USERS},
    }


PUBLIC_KEYS_FOLDER = "public-keys"
"""Where `write_kubernetes_secret_files` puts the public keys (the ConfigMap signgate-public-keys)."""


def write_kubernetes_secret_files(folder: Path, secrets: dict[str, str]) -> list[Path]:
    """One file per service and secret it holds (``<folder>/<service>/<VARIABLE>``, 0600, no
    trailing newline) and one per public key (``<folder>/public-keys/<VARIABLE>``, made with the
    private keys they match), as deploy/kubernetes/kustomization.yaml reads them; refuses to
    replace a file (a new pepper would invalidate every stored hash)."""
    paths = [
        folder / service / name for service, names in SERVICE_SECRETS.items() for name in names
    ] + [folder / PUBLIC_KEYS_FOLDER / name for name in sorted(PUBLIC_KEY_VARIABLES)]
    present = [str(path) for path in paths if path.exists()]
    if present:
        raise FileExistsError(f"will not replace {', '.join(present)}")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets[path.name])
    return paths


def development_secrets(folder: Path) -> dict[str, str]:
    """The development stack's secrets: made once, then read back (the pepper is in every hash);
    a secret added since they were made is added to them."""
    path = folder / "development-secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    secrets = _completed(stored, generate_secrets())
    if secrets != stored:
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(secrets, indent=2))
    return secrets


def _completed(stored: dict[str, str], fresh: dict[str, str]) -> dict[str, str]:
    """``stored`` with what it lacks from ``fresh``; the record keys (or the sealing keys) all fresh
    if any of them is missing (the public keys must match the private keys)."""
    for pairs in (
        [name for name in fresh if is_signing_key_variable(name) or name == PUBLIC_KEYS_VARIABLE],
        [name for name in fresh if is_sealing_key_variable(name) or name == SEALING_PUBLIC_KEYS],
    ):
        if any(name not in stored for name in pairs):
            stored = {name: value for name, value in stored.items() if name not in pairs}
    return {**fresh, **stored}


def dotenv(secrets: dict[str, str]) -> str:
    """A ``.env`` file's text as Compose reads it: PEM keys double-quoted, newlines kept; JSON
    single-quoted (taken literally)."""
    return "".join(
        f"{name}='{value}'\n" if '"' in value else f'{name}="{value}"\n'
        for name, value in secrets.items()
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--kubernetes"] and len(sys.argv) == 3:
        for written in write_kubernetes_secret_files(Path(sys.argv[2]), generate_secrets()):
            print(written)
    else:
        print(dotenv({**generate_secrets(), **compose_passwords()}), end="")
