"""The Kafka security settings: what they refuse, and the FastStream and aiokafka options they become."""

from __future__ import annotations

import ssl

import pytest
from aiokafka.conn import ScramAuthenticator
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import ValidationError

from libs.devstack.sasl import SaslRefused, ScramExchange, plain_user, scram_credential
from libs.runtime.kafka_security import (
    broker_options,
    broker_security,
    client_options,
    security_environment,
    signgate_client_options,
)
from libs.runtime.settings import ConnectionSettings
from signgate_client import kafka_security
from tests.support.tls import CLIENT_KEY_PASSWORD, Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


def settings(**fields: object) -> ConnectionSettings:
    return ConnectionSettings(**fields)  # type: ignore[arg-type]


def test_plaintext_adds_no_options() -> None:
    """By default nothing is secured: no FastStream security object and no aiokafka options."""
    plain = settings()
    assert plain.kafka_security_protocol == "PLAINTEXT"
    assert broker_security(plain) is None
    assert client_options(plain) == {}
    assert broker_options(plain) == {"security": None, "sasl_oauth_token_provider": None}


def test_ssl_verifies_the_broker_and_its_host_name_by_default(certificates: Certificates) -> None:
    """SSL with a CA file builds a context that requires the broker's certificate and checks its name."""
    secured = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=certificates.ca)
    options = client_options(secured)
    assert options["security_protocol"] == "SSL"
    context: ssl.SSLContext = options["ssl_context"]
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert isinstance(broker_security(secured), BaseSecurity) and broker_security(secured).use_ssl


def test_hostname_checks_can_be_turned_off_but_the_chain_is_still_verified(certificates: Certificates) -> None:
    """kafka_ssl_check_hostname=false stops the name check only; the certificate is still verified."""
    context = client_options(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=certificates.ca,
                                      kafka_ssl_check_hostname=False))["ssl_context"]
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, False)


def test_a_client_certificate_with_an_encrypted_key_is_loaded(certificates: Certificates) -> None:
    """A client certificate and its password-protected key load into the context; a wrong password fails."""
    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": certificates.ca,
              "kafka_ssl_certfile": certificates.client.cert, "kafka_ssl_keyfile": certificates.client.key}
    assert client_options(settings(**fields, kafka_ssl_key_password=CLIENT_KEY_PASSWORD))["ssl_context"]
    with pytest.raises(ssl.SSLError):
        client_options(settings(**fields, kafka_ssl_key_password="wrong"))


@pytest.mark.parametrize(("mechanism", "kind"), [
    ("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512),
])
def test_sasl_ssl_maps_to_faststream_and_aiokafka(certificates: Certificates, mechanism: str, kind: type) -> None:
    """SASL_SSL gives FastStream the mechanism's security object and aiokafka the same protocol,
    mechanism, user, password and TLS context."""
    secured = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                       kafka_sasl_username="svc", kafka_sasl_password="pw", kafka_ssl_cafile=certificates.ca)
    security = broker_security(secured)
    assert isinstance(security, kind) and (security.username, security.password) == ("svc", "pw")
    options = client_options(secured)
    assert {k: options[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                                    "sasl_plain_password")} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
        "sasl_plain_username": "svc", "sasl_plain_password": "pw"}
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_has_no_tls() -> None:
    """SASL_PLAINTEXT authenticates without TLS: no context."""
    options = client_options(settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
                                      kafka_sasl_username="svc", kafka_sasl_password="pw"))
    assert options["security_protocol"] == "SASL_PLAINTEXT" and options["ssl_context"] is None


async def test_oauthbearer_sends_the_configured_token() -> None:
    """OAUTHBEARER hands aiokafka (and the broker) a token provider returning the configured token."""
    secured = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                       kafka_sasl_password="a-token")
    assert isinstance(broker_security(secured), SASLOAuthBearer)
    options = client_options(secured)
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert await options["sasl_oauth_token_provider"].token() == "a-token"
    assert await broker_options(secured)["sasl_oauth_token_provider"].token() == "a-token"


@pytest.mark.parametrize(("fields", "message"), [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_password": "pw"},
     "SIGNGATE_KAFKA_SASL_USERNAME is required by SCRAM-SHA-512"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "svc"},
     "SIGNGATE_KAFKA_SASL_PASSWORD is required by SASL_PLAINTEXT"),
    ({"kafka_security_protocol": "SSL", "kafka_sasl_username": "svc", "kafka_sasl_password": "pw"},
     "SSL does not use SASL"),
    ({"kafka_ssl_cafile": "{ca}"}, "PLAINTEXT does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
     "SIGNGATE_KAFKA_SSL_CAFILE: no such file"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "{cert}"}, "go together"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "{key}"}, "go together"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_key_password": "pw"}, "without SIGNGATE_KAFKA_SSL_KEYFILE"),
    ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
])
def test_incomplete_or_contradictory_settings_are_refused(certificates: Certificates, fields: dict[str, str],
                                                          message: str) -> None:
    """Settings that would fail at the first connection, or be silently ignored, are refused at start,
    naming the variable."""
    paths = {"ca": certificates.ca, "cert": certificates.client.cert, "key": certificates.client.key}
    filled = {name: value.format(**paths) for name, value in fields.items()}
    with pytest.raises(ValidationError, match=message):
        settings(**filled)


def test_the_environment_passes_the_same_security_to_a_child(certificates: Certificates,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The SIGNGATE_KAFKA_* variables of `security_environment` read back as the same settings."""
    secured = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                       kafka_sasl_username="svc", kafka_sasl_password="pw", kafka_ssl_cafile=certificates.ca,
                       kafka_ssl_check_hostname=False)
    environment = security_environment(secured)
    assert environment["SIGNGATE_KAFKA_SASL_PASSWORD"] == "pw"
    assert environment["SIGNGATE_KAFKA_SSL_CHECK_HOSTNAME"] == "false"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    again = ConnectionSettings()
    fields = ("kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_ssl_cafile",
              "kafka_ssl_check_hostname")
    assert [getattr(again, f) for f in fields] == [getattr(secured, f) for f in fields]
    assert again.kafka_sasl_password is not None and again.kafka_sasl_password.get_secret_value() == "pw"


def test_the_client_librarys_options_match_the_services(certificates: Certificates) -> None:
    """`SignGateClient`'s keyword arguments, from the settings, give aiokafka what the services use."""
    secured = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                       kafka_sasl_username="svc", kafka_sasl_password="pw", kafka_ssl_cafile=certificates.ca)
    ours, theirs = kafka_security(**signgate_client_options(secured)), client_options(secured)
    assert {k: v for k, v in ours.items() if k != "ssl_context"} == {
        k: v for k, v in theirs.items() if k != "ssl_context" and v is not None}
    assert isinstance(ours["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"}, "needs sasl_username"),
    ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "go together"),
    ({"security_protocol": "PLAINTEXT", "ssl_cafile": "ca.pem"}, "does not use TLS"),
    ({"security_protocol": "SSL", "sasl_username": "u", "sasl_password": "p"}, "does not use SASL"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "sasl_oauth_token_provider"),
    ({"security_protocol": "TLS"}, "security_protocol must be one of"),
])
def test_the_client_library_refuses_incomplete_security(arguments: dict[str, str], message: str) -> None:
    """The client library refuses missing or contradictory security arguments before connecting."""
    with pytest.raises(ValueError, match=message):
        kafka_security(**arguments)  # type: ignore[arg-type]


# -- the broker front's SASL (the embedded stack's), against aiokafka's own SCRAM client --


def scram_client(mechanism: str, user: str, password: str) -> ScramAuthenticator:
    return ScramAuthenticator(loop=None, sasl_plain_username=user, sasl_plain_password=password,
                              sasl_mechanism=mechanism)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_accepts_the_password_and_proves_itself_to_the_client(mechanism: str) -> None:
    """The right password completes the exchange, and aiokafka's client accepts the server's signature."""
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    exchange = ScramExchange(mechanism, {"svc": scram_credential(digest, "pw")})
    client = scram_client(mechanism, "svc", "pw")
    client.process_server_first_message(exchange.first(client.first_message().encode()).decode())
    client.process_server_final_message(exchange.final(client.final_message().encode()).decode())
    assert exchange.user == "svc"


@pytest.mark.parametrize(("user", "password"), [("svc", "wrong"), ("nobody", "pw")])
def test_scram_refuses_a_wrong_password_or_an_unknown_user(user: str, password: str) -> None:
    """A wrong password or an unknown user fails at the proof, the same way for both."""
    exchange = ScramExchange("SCRAM-SHA-256", {"svc": scram_credential("sha256", "pw")})
    client = scram_client("SCRAM-SHA-256", user, password)
    client.process_server_first_message(exchange.first(client.first_message().encode()).decode())
    with pytest.raises(SaslRefused, match="invalid credentials"):
        exchange.final(client.final_message().encode())


def test_scram_refuses_a_replayed_proof() -> None:
    """A proof made for one exchange's nonce is refused by another exchange."""
    credentials = {"svc": scram_credential("sha256", "pw")}
    first, second = ScramExchange("SCRAM-SHA-256", credentials), ScramExchange("SCRAM-SHA-256", credentials)
    client = scram_client("SCRAM-SHA-256", "svc", "pw")
    hello = client.first_message().encode()
    client.process_server_first_message(first.first(hello).decode())
    second.first(hello)
    with pytest.raises(SaslRefused, match="nonce"):
        second.final(client.final_message().encode())


def test_plain_checks_user_and_password() -> None:
    """PLAIN accepts the user's password and refuses another."""
    assert plain_user(b"\0svc\0pw", {"svc": "pw"}) == "svc"
    with pytest.raises(SaslRefused):
        plain_user(b"\0svc\0nope", {"svc": "pw"})

