"""identity's AuthenticateUser takes AssureSign's field names (``UserName``, ``Password``) beside ours."""

from __future__ import annotations

import json

from signgate_contracts.codec import encode
from signgate_contracts.credentials import credential_fields
from signgate_contracts.identity import AuthenticateUser


def test_assuresign_names_are_accepted() -> None:
    """Seed 004's attribute names validate into the same command as ours."""
    theirs = AuthenticateUser.model_validate(
        {"UserName": "jdoe@example.com", "Password": "Password"}
    )
    ours = AuthenticateUser.model_validate(
        {"user_name": "jdoe@example.com", "password": "Password"}
    )
    assert theirs.user_name == ours.user_name == "jdoe@example.com"
    assert theirs.password.get_secret_value() == ours.password.get_secret_value() == "Password"


def test_the_wire_keeps_our_names() -> None:
    """A command built from AssureSign's names is sent with signgate's own field names."""
    command = AuthenticateUser.model_validate({"UserName": "jdoe@example.com", "Password": "pw"})
    document = json.loads(encode(command))
    assert document["user_name"] == "jdoe@example.com"
    assert document["password"] == "pw"
    assert "UserName" not in document and "Password" not in document


def test_assuresign_password_name_is_redacted() -> None:
    """``Password`` counts as a credential field, so a record carrying it is redacted like ours."""
    assert {"password", "Password"} <= credential_fields()
