"""``python -m services.identity.admin_token [NAME]``: print an operator's administrator token.

The bootstrap path for administrative commands: whoever holds the token signing key
(``SIGNGATE_TOKEN_PRIVATE_KEY``) is trusted to mint a short-lived token with the ``admin``
role, to register the first users. Its subject is ``operator:NAME``, not a user, so it
cannot be disabled; it expires like any token (``SIGNGATE_TOKEN_TTL``, 30 minutes). Without
``SIGNGATE_TOKEN_PRIVATE_KEY`` it uses the development key of the `make run` stack.
"""

from __future__ import annotations

import sys

from libs.dev_secrets import development_secrets
from libs.stack import DATA_DIR
from libs.tokens import IssuedToken, TokenIssuer, TokenSettings
from services.identity.domain import ADMIN


def operator_token(settings: TokenSettings, name: str = "bootstrap") -> IssuedToken:
    return TokenIssuer.from_settings(settings).issue(f"operator:{name}", f"operator:{name}", roles=[ADMIN])


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bootstrap"
    settings = TokenSettings()
    if settings.private_key is None:  # a `make run` stack: its development key
        secrets = development_secrets(DATA_DIR)
        settings = TokenSettings(private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"])
    print(operator_token(settings, name).token)


if __name__ == "__main__":
    main()
