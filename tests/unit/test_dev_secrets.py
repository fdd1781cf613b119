"""Development secrets: record keys added to an older stack's secrets, each process its own key."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

from libs.devstack.dev_secrets import RECORD_WRITERS, development_secrets
from libs.security.record_signatures import (
    PUBLIC_KEYS_VARIABLE,
    RecordSigner,
    RecordVerifier,
    signing_key_variable,
)
from libs.security.required_secrets import SERVICE_SECRETS, is_secret_variable, own_secrets_only


def test_an_older_stacks_secrets_keep_their_peppers_and_gain_matching_record_keys(tmp_path: Path) -> None:
    older = {"SIGNGATE_SECRET_PEPPER": "kept-pepper", "SIGNGATE_OTP_PEPPER": "kept-otp-pepper"}
    (tmp_path / "development-secrets.json").write_text(json.dumps(older))

    secrets = development_secrets(tmp_path)

    assert secrets["SIGNGATE_SECRET_PEPPER"] == "kept-pepper"
    verifier = RecordVerifier(json.loads(secrets[PUBLIC_KEYS_VARIABLE]))
    for writer in RECORD_WRITERS:
        signer = RecordSigner(secrets[signing_key_variable(f"SIGNGATE_{writer.upper()}_")])
        headers = [(n, v.encode()) for n, v in signer.headers("t", b"k", b"{}", {"type": "x"}).items()]
        verifier.verify("t", b"k", b"{}", headers, writer)
    assert development_secrets(tmp_path) == secrets  # made once, then read back


def test_each_service_process_gets_only_its_own_signing_key(tmp_path: Path) -> None:
    env = {**development_secrets(tmp_path), "PATH": "/bin"}

    own = own_secrets_only(env, "otp_dispatch")

    assert [name for name in own if name.endswith("_RECORD_SIGNING_KEY")] == [
        "SIGNGATE_OTP_DISPATCH_RECORD_SIGNING_KEY"]
    assert own[PUBLIC_KEYS_VARIABLE] == env[PUBLIC_KEYS_VARIABLE] and own["PATH"] == "/bin"


def test_each_service_process_gets_exactly_the_secrets_of_the_table(tmp_path: Path) -> None:
    """The token and grant private keys reach only identity and authentication; nothing a service
    does not use reaches it; the development set holds every secret of the table."""
    env = {**development_secrets(tmp_path), "SIGNGATE_LOG_LEVEL": "INFO"}

    given = {service: set(own_secrets_only(env, service)) - {"SIGNGATE_LOG_LEVEL"} for service in SERVICE_SECRETS}

    assert given == {service: set(names) for service, names in SERVICE_SECRETS.items()}
    assert [s for s, names in given.items() if "SIGNGATE_TOKEN_PRIVATE_KEY" in names] == ["identity"]
    assert [s for s, names in given.items() if "SIGNGATE_GRANT_PRIVATE_KEY" in names] == ["authentication"]
    assert [s for s, names in given.items() if "SIGNGATE_INVITATION_PRIVATE_KEY" in names] == ["workflow"]


FACTORIES = {"identity": "services.identity.app", "workflow": "services.workflow.app",
             "authentication": "services.authentication.app", "otp_dispatch": "services.otp_dispatch.app"}


@pytest.mark.parametrize("service, variable", [(s, v) for s, names in SERVICE_SECRETS.items() for v in names])
def test_a_service_refuses_to_start_without_any_one_of_its_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, variable: str) -> None:
    """No fallback to a public constant or a key of the process's own: the service does not start,
    and says which secret is missing. With them all it builds."""
    for name in [name for name in os.environ if is_secret_variable(name)]:  # the session's test keys
        monkeypatch.delenv(name)
    for name, value in own_secrets_only(development_secrets(tmp_path), service).items():
        monkeypatch.setenv(name, value)
    factory = importlib.import_module(FACTORIES[service]).create_app
    assert factory() is not None

    monkeypatch.delenv(variable)
    with pytest.raises(Exception) as refused:
        factory()

    assert variable in str(refused.value)
