"""Development secrets: record keys added to an older stack's secrets, each process its own key."""

from __future__ import annotations

import json
from pathlib import Path

from libs.dev_secrets import RECORD_WRITERS, development_secrets
from libs.messaging.signatures import (
    PUBLIC_KEYS_VARIABLE,
    RecordSigner,
    RecordVerifier,
    signing_key_variable,
)
from libs.runner import own_keys_only


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

    own = own_keys_only(env, "otp_dispatch")

    assert [name for name in own if name.endswith("_RECORD_SIGNING_KEY")] == [
        "SIGNGATE_OTP_DISPATCH_RECORD_SIGNING_KEY"]
    assert own[PUBLIC_KEYS_VARIABLE] == env[PUBLIC_KEYS_VARIABLE] and own["PATH"] == "/bin"
