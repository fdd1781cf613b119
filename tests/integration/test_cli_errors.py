"""The `signgate` command's failures on real sockets: one stderr line and the exit code of the kind."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from libs.tools.cli import app
from libs.tools.cli.errors import ExitCode, classify, library_logs

COMMAND = '{"type": "identity.authenticate_user", "user_name": "ann@example.com", "password": "x"}'


def _signgate(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: its own process; the timeout only guards against a hang."""
    return subprocess.run([sys.executable, "-m", "libs.tools.cli", *arguments], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_closed_port_is_unreachable_in_one_line(closed_port: int) -> None:
    """A refused connection ends with exit 4 and one stderr line naming the broker and the refusal."""
    done = _signgate("--timeout", "2", "--bootstrap", f"127.0.0.1:{closed_port}", "send", "json", COMMAND)
    assert done.returncode == ExitCode.UNREACHABLE == 4 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot reach the broker at 127.0.0.1:{closed_port}: ")
    assert "Connect call failed" in done.stderr


def test_a_broker_that_never_answers_is_unreachable_after_the_timeout(silent_port: int) -> None:
    """A listener that says nothing is unreachable once `--timeout` passes (written after the subcommand),
    reported as one JSON object on stderr with `--json`."""
    done = CliRunner().invoke(app, ["send", "json", COMMAND, "--json", "--timeout", "1",
                                    "--bootstrap", f"127.0.0.1:{silent_port}"])
    assert done.exit_code == 4 and done.stdout == ""
    assert done.stderr == ('{"error": "unreachable", "exit_code": 4, "message": "cannot reach the broker at '
                           f'127.0.0.1:{silent_port}: no answer within 1 s"}}\n')


@pytest.fixture
async def untrusted_tls_port(tmp_path: Path) -> AsyncIterator[int]:
    """A TLS listener with a self-signed certificate no client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_an_untrusted_broker_certificate_is_not_authorised(untrusted_tls_port: int) -> None:
    """A TLS handshake refused for an untrusted certificate is not authorised (5), with the verifier's reason,
    though aiokafka itself raises only "Unable to bootstrap"."""
    broker = f"127.0.0.1:{untrusted_tls_port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker, security_protocol="SSL", ssl_context=create_ssl_context())
    with library_logs(verbose=False) as logged, pytest.raises(KafkaConnectionError) as raised:
        await admin.start()
    failure = classify(raised.value, logged, broker=broker)
    assert failure is not None and failure.code == ExitCode.NOT_AUTHORISED
    assert str(failure).startswith("TLS with the broker failed: [SSL: CERTIFICATE_VERIFY_FAILED]"), failure
