"""Finding the stack to talk to, and the credentials a development stack lets the CLI use.

The broker is ``--bootstrap``, else ``SIGNGATE_KAFKA_BOOTSTRAP``, else what a running `make run`
wrote to ``.signgate/stack.json``. An operator token is minted from the token signing key
(``SIGNGATE_TOKEN_PRIVATE_KEY``, else the `make run` stack's development key). An owner's token
is kept in a file readable by its owner only under ``.signgate/``.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path

from libs.devstack.stack import DATA_DIR, STACK_FILE
from signgate_contracts.topics import CALLER_REPLY_PREFIX


def reply_topic(topic_prefix: str = "") -> str:
    """The CLI's and the demo's own reply topic: one per local user, reused across runs."""
    user = re.sub(r"[^A-Za-z0-9_-]", "-", getpass.getuser())
    return f"{topic_prefix}{CALLER_REPLY_PREFIX}cli.{user}"


TOKEN_FILE = DATA_DIR / "cli-token"
"""The last token `signgate send authenticate` obtained (0600), for owner commands."""
INVITATIONS_FILE = DATA_DIR / "cli-invitations.json"
"""The recipients' invitations `signgate send share` and `send invite` obtained (0600), by package/order."""


class NoStack(RuntimeError):
    """No broker named and no running `make run` stack found."""


def find_bootstrap(
    bootstrap: str | None = None,
    environ: dict[str, str] | None = None,
    stack_file: Path = STACK_FILE,
) -> str:
    """The broker to use: the one given, the environment's, or the running `make run` stack's."""
    environ = dict(os.environ) if environ is None else environ
    if bootstrap:
        return bootstrap
    if environ.get("SIGNGATE_KAFKA_BOOTSTRAP"):
        return environ["SIGNGATE_KAFKA_BOOTSTRAP"]
    if stack_file.exists():
        return json.loads(stack_file.read_text())["kafka_bootstrap"]
    raise NoStack("no running stack: start one with `make run`, or pass --bootstrap")


def find_gateway(stack_file: Path = STACK_FILE) -> str:
    """The running `make run` stack's gateway (its base URL)."""
    if stack_file.exists():
        url = json.loads(stack_file.read_text()).get("gateway_url")
        if url:
            return str(url)
    raise NoStack("no running gateway: start the stack with `make run`, or pass --kafka")


def mint_operator_token(name: str = "cli") -> str:
    """An administrator's token, signed with the configured key or the development stack's."""
    # Imported here: the signing stack (keys, hashing, Redis and Postgres errors) doubles the
    # CLI's start-up, and only `send register-user` needs it.
    from libs.tools.operator_token import operator_settings, operator_token

    settings = operator_settings()
    if settings is None:
        raise NoStack("no token signing key: set SIGNGATE_TOKEN_PRIVATE_KEY or start `make run`")
    return operator_token(settings, name).token


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)


def save_token(token: str, path: Path | None = None) -> None:
    """Keep ``token`` for later commands, readable by this user only."""
    _write_private(path or TOKEN_FILE, token)


def save_invitations(
    package_id: str, invitations: dict[int, str], path: Path | None = None
) -> None:
    """Keep recipients' invitations (what their signing links would carry) for recipient commands."""
    path = path or INVITATIONS_FILE
    kept = json.loads(path.read_text()) if path.exists() else {}
    kept.update({f"{package_id}/{order}": invitation for order, invitation in invitations.items()})
    _write_private(path, json.dumps(kept, indent=2))


def saved_invitation(package_id: str, order: int, path: Path | None = None) -> str | None:
    path = path or INVITATIONS_FILE
    return json.loads(path.read_text()).get(f"{package_id}/{order}") if path.exists() else None


def saved_token(path: Path | None = None) -> str | None:
    path = path or TOKEN_FILE
    return path.read_text().strip() if path.exists() else None
