"""Peppers and signing keys for a development stack, and a ``.env`` for docker compose.

``python -m libs.dev_secrets > .env`` writes fresh ones for `docker compose up`; `make run`
keeps its own with its data, so stored hashes stay valid across restarts.
"""

from __future__ import annotations

import json
from pathlib import Path

from libs.secrets import generate_pepper
from libs.tokens import generate_key_pair


def generate_secrets() -> dict[str, str]:
    """Every secret the services share, fresh: two peppers and two Ed25519 key pairs' halves."""
    tokens, grants = generate_key_pair(), generate_key_pair()
    return {
        "SIGNGATE_SECRET_PEPPER": generate_pepper(),
        "SIGNGATE_OTP_PEPPER": generate_pepper(),
        "SIGNGATE_TOKEN_PRIVATE_KEY": tokens.private_key,
        "SIGNGATE_TOKEN_PUBLIC_KEY": tokens.public_key,
        "SIGNGATE_GRANT_PRIVATE_KEY": grants.private_key,
    }


def development_secrets(folder: Path) -> dict[str, str]:
    """The development stack's secrets: made once, then read back (the pepper is in every hash)."""
    path = folder / "development-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    secrets = generate_secrets()
    folder.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(secrets, indent=2))
    return secrets


def dotenv(secrets: dict[str, str]) -> str:
    """A ``.env`` file's text; PEM keys are quoted, newlines kept, as Compose reads them."""
    return "".join(f'{name}="{value}"\n' for name, value in secrets.items())


if __name__ == "__main__":
    print(dotenv(generate_secrets()), end="")
