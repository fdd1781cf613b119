"""``python -m libs.tools.operator_token [NAME]``: print an operator's administrator token.

The bootstrap path for administrative commands: whoever holds the token signing key
(``SIGNGATE_TOKEN_PRIVATE_KEY``) is trusted to mint a short-lived token with the ``admin``
role, to register the first users. Its subject is ``operator:NAME``, not a user, so it
cannot be disabled; it expires like any token (``SIGNGATE_TOKEN_TTL``, 30 minutes). Without
``SIGNGATE_TOKEN_PRIVATE_KEY`` it uses the development key of the `make run` stack.
"""

from __future__ import annotations

import sys

from pydantic import SecretStr

from libs.devstack.dev_secrets import development_secrets
from libs.devstack.stack import DATA_DIR
from libs.security.tokens import IssuedToken, TokenIssuer, TokenSettings
from services.identity.domain import ADMIN


def operator_token(settings: TokenSettings, name: str = "bootstrap") -> IssuedToken:
    return TokenIssuer.from_settings(settings).issue(
        f"operator:{name}", f"operator:{name}", roles=[ADMIN]
    )


def operator_settings() -> TokenSettings | None:
    """The signing key's settings: ``SIGNGATE_TOKEN_PRIVATE_KEY``, else the `make run` stack's
    development key; None when there is neither."""
    settings = TokenSettings()
    if settings.private_key is not None:
        return settings
    if not (DATA_DIR / "development-secrets.json").exists():
        return None
    return TokenSettings(
        private_key=SecretStr(development_secrets(DATA_DIR)["SIGNGATE_TOKEN_PRIVATE_KEY"])
    )


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bootstrap"
    settings = operator_settings()
    if settings is None:
        raise SystemExit("no token signing key: set SIGNGATE_TOKEN_PRIVATE_KEY or start `make run`")
    print(operator_token(settings, name).token)


if __name__ == "__main__":
    main()
