"""The grant public keys as a JWKS document: served, and printed for a deployment's keys.

The authentication service serves it at ``/.well-known/jwks.json`` (beside ``/health``), so a
viewer verifies grants with the keys the service signs with now, the retired ones a rotation
still needs included (`grants`). The keys differ per deployment, so no JWKS is committed in
``docs/``; instead:

``python -m services.authentication.jwks`` prints the JWKS of ``SIGNGATE_GRANT_PRIVATE_KEY`` and
``SIGNGATE_GRANT_PREVIOUS_PUBLIC_KEYS``, to hand to viewers that cannot reach the service.
``--development`` uses the `make run` stack's key instead (``.signgate/development-secrets.json``),
and ``--output PATH`` writes the document there; `make docs` writes ``.signgate/jwks.json`` so,
when a development stack has keys (it writes nothing, and says so, when it has none).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from faststream.asgi import AsgiResponse, get

from services.authentication.grants import GrantSettings, GrantSigner

PATH = "/.well-known/jwks.json"
CACHE_SECONDS = 300
"""How long a viewer may keep the document: a new key is listed well before it signs (rotation)."""


def jwks_text(settings: GrantSettings) -> str:
    return json.dumps(GrantSigner(settings).jwks(), indent=2) + "\n"


def jwks_routes(settings: object) -> list[tuple[str, object]]:
    """The service's ``/.well-known/jwks.json``, its body made once from ``settings.grants`` (the
    settings the use cases sign with; a tool building the app from bare service settings gets the
    keys of the environment's grant settings)."""
    grants = getattr(settings, "grants", None) or GrantSettings()
    body = json.dumps(GrantSigner(grants).jwks()).encode()

    @get(description="The public keys of document-access grants (JWKS: OKP Ed25519, EdDSA).")
    async def jwks(scope: object) -> AsgiResponse:
        return AsgiResponse(
            body,
            200,
            headers={
                "content-type": "application/jwk-set+json",
                "cache-control": f"public, max-age={CACHE_SECONDS}",
            },
        )

    return [(PATH, jwks)]


def development_settings(data_dir: Path) -> GrantSettings | None:
    """The development stack's grant key, if it has made one (this never makes one)."""
    path = data_dir / "development-secrets.json"
    if not path.exists():
        return None
    key = json.loads(path.read_text()).get("SIGNGATE_GRANT_PRIVATE_KEY")
    return GrantSettings(private_key=key) if key else None


def main(argv: Sequence[str] | None = None) -> int:
    from libs.runtime.settings import DATA_DIR

    parser = argparse.ArgumentParser(
        prog="python -m services.authentication.jwks",
        description="Print the JWKS of the grant public keys.",
    )
    parser.add_argument(
        "--development",
        action="store_true",
        help="the `make run` stack's key (.signgate/development-secrets.json)",
    )
    parser.add_argument(
        "--output", type=Path, help="write the document here instead of printing it"
    )
    args = parser.parse_args(argv)
    if args.development:
        settings = development_settings(DATA_DIR)
        if settings is None:
            print(
                f"no development grant key in {DATA_DIR}: start `make run` once to make one; nothing written",
                file=sys.stderr,
            )
            return 0
    else:
        settings = GrantSettings()
        if settings.private_key is None:
            print(
                "SIGNGATE_GRANT_PRIVATE_KEY is not set (--development: the `make run` stack's key)",
                file=sys.stderr,
            )
            return 1
    text = jwks_text(settings)
    if args.output is None:
        print(text, end="")
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
