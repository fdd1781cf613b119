"""Development secrets: record keys added to an older stack's secrets, each process its own key."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from libs.devstack.dev_secrets import RECORD_WRITERS, development_secrets, generate_secrets
from libs.security.record_signatures import (
    PUBLIC_KEYS_VARIABLE,
    RecordSigner,
    RecordVerifier,
    signing_key_variable,
)
from libs.security.required_secrets import (
    PUBLIC_KEY_VARIABLES,
    SECRET_VARIABLES,
    SERVICE_PUBLIC_KEYS,
    SERVICE_SECRETS,
    is_public_key_variable,
    is_secret_variable,
    own_secrets_only,
)
from libs.security.sealing import Opener, Sealer, private_keys_variable, public_keys_of

RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


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
    """The token and grant private keys reach only identity and authentication; no secret a service
    does not use reaches it (the gateway none); each gets the public keys it verifies with; the
    development set holds every secret of the table."""
    env = {**development_secrets(tmp_path), "SIGNGATE_LOG_LEVEL": "INFO"}

    given = {
        service: set(own_secrets_only(env, service)) - {"SIGNGATE_LOG_LEVEL"}
        for service in SERVICE_SECRETS
    }
    secrets = {
        service: {name for name in names if not is_public_key_variable(name)}
        for service, names in given.items()
    }

    assert secrets == {service: set(names) for service, names in SERVICE_SECRETS.items()}
    assert secrets["gateway"] == set()
    assert [s for s, names in secrets.items() if "SIGNGATE_TOKEN_PRIVATE_KEY" in names] == [
        "identity"
    ]
    assert [s for s, names in secrets.items() if "SIGNGATE_GRANT_PRIVATE_KEY" in names] == [
        "authentication"
    ]
    assert [s for s, names in secrets.items() if "SIGNGATE_INVITATION_PRIVATE_KEY" in names] == [
        "workflow"
    ]
    for service, names in SERVICE_PUBLIC_KEYS.items():
        assert set(names) <= given[service], service
    assert json.loads(own_secrets_only(env, "gateway")[PUBLIC_KEYS_VARIABLE]).keys() >= {"identity"}


def test_every_key_is_classed_and_no_public_key_holds_a_private_one() -> None:
    """Every value the development set makes is a secret of the table or a named public key, never
    both; what is classed public is the public half of its private key (a private key or pepper
    put there would not check the private key's work), and every private key and pepper is secret."""
    fresh = generate_secrets()

    assert set(fresh) == SECRET_VARIABLES | PUBLIC_KEY_VARIABLES
    assert not SECRET_VARIABLES & PUBLIC_KEY_VARIABLES
    assert [name for name in PUBLIC_KEY_VARIABLES if is_secret_variable(name)] == []
    assert [name for name in SECRET_VARIABLES if not is_secret_variable(name)] == []
    # by pattern too, not only by table: a key added to a service is secret before it is listed
    assert is_secret_variable("SIGNGATE_GATEWAY_RECORD_SIGNING_KEY")
    assert is_secret_variable("SIGNGATE_GATEWAY_SEALING_KEYS")
    for pair in ("TOKEN", "INVITATION"):
        private = serialization.load_pem_private_key(
            fresh[f"SIGNGATE_{pair}_PRIVATE_KEY"].encode(), None
        )
        public = serialization.load_pem_public_key(fresh[f"SIGNGATE_{pair}_PUBLIC_KEY"].encode())
        assert public.public_bytes(*RAW) == private.public_key().public_bytes(*RAW), pair
    sealed = Sealer("authentication", public_keys_of(fresh)["authentication"]).seal("ctx", "x")
    assert (
        Opener(json.loads(fresh[private_keys_variable("authentication")])).open("ctx", sealed)
        == "x"
    )
    # the record keys: the first test verifies each writer's signature with SIGNGATE_RECORD_PUBLIC_KEYS


FACTORIES = {"identity": "services.identity.app", "workflow": "services.workflow.app",
             "authentication": "services.authentication.app", "otp_dispatch": "services.otp_dispatch.app"}


@pytest.mark.parametrize(
    "service, variable",
    [(s, v) for s in FACTORIES for v in (*SERVICE_SECRETS[s], *SERVICE_PUBLIC_KEYS[s])],
)
def test_a_service_refuses_to_start_without_any_one_of_its_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, variable: str) -> None:
    """No fallback to a public constant or a key of the process's own: the service does not start,
    and says which secret is missing. With them all it builds."""
    session_keys = [n for n in os.environ if is_secret_variable(n) or is_public_key_variable(n)]
    for name in session_keys:
        monkeypatch.delenv(name)
    for name, value in own_secrets_only(development_secrets(tmp_path), service).items():
        monkeypatch.setenv(name, value)
    factory = importlib.import_module(FACTORIES[service]).create_app
    assert factory() is not None

    monkeypatch.delenv(variable)
    with pytest.raises(Exception) as refused:
        factory()

    assert variable in str(refused.value)
