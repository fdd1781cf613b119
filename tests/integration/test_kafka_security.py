"""Kafka security on real sockets: a service, provisioning, the client and the CLI over TLS, mutual TLS
and SASL, and what each refusal says.

The embedded broker (Tansu 0.6) serves neither TLS nor SASL that anyone can pass (see
libs/devstack/broker_front.py and the last test here), so each secured broker is a Tansu that
advertises the address of a `BrokerFront` in front of it: every connection a client makes, the
bootstrap one and those metadata points it to, goes through the front's TLS (and SASL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from typer.testing import CliRunner

from libs.devstack.broker_front import BrokerFront, server_context
from libs.devstack.embedded import Server, free_port, tansu_server
from libs.runtime.kafka_security import (
    client_options,
    security_environment,
    signgate_client_options,
)
from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.secrets import SecretSettings, generate_pepper
from libs.security.tokens import TokenSettings, generate_key_pair
from libs.tools.cli import app as cli
from libs.tools.provision import ProvisionSettings, provision
from libs.tools.topics_admin import create_topics
from services.identity.app import DEFINITION as IDENTITY
from services.identity.app import IdentitySettings
from signgate_client import (
    KafkaAuthenticationError,
    KafkaSecurityError,
    KafkaTlsError,
    SignGateClient,
)
from signgate_contracts import identity as idn
from signgate_contracts.topics import IDENTITY_COMMANDS, Topic
from tests.support.databases import own_database
from tests.support.tls import CLIENT_KEY_PASSWORD, Certificates, make_certificates

SERVICE_USER, SERVICE_PASSWORD = "signgate-identity", "service-password"
CALLER_USER, CALLER_PASSWORD = "signing-platform", "caller-password"


@dataclass
class SecuredBroker:
    tansu: Server
    front: BrokerFront

    @property
    def address(self) -> str:
        return self.front.address


@contextlib.asynccontextmanager
async def secured_broker(log_path: Path, **front: Any) -> AsyncIterator[SecuredBroker]:
    """A Tansu of its own behind a front with ``front``'s TLS and SASL, advertising the front."""
    port = free_port()
    tansu = tansu_server(log_path, advertised=f"127.0.0.1:{port}")
    tansu.start()
    try:
        tansu.wait_until_ready()
        async with BrokerFront(f"127.0.0.1:{tansu.port}", listen=f"127.0.0.1:{port}", **front) as front_:
            yield SecuredBroker(tansu, front_)
    finally:
        tansu.stop()


def secured(base: ConnectionSettings, bootstrap: str, **security: Any) -> ConnectionSettings:
    """``base``'s connections with another broker and the given ``kafka_*`` security settings."""
    return ConnectionSettings(
        kafka_bootstrap=bootstrap, kafka_idempotence=base.kafka_idempotence, database_url=base.database_url,
        redis_url=base.redis_url, topic_prefix=base.topic_prefix, redis_prefix=base.redis_prefix,
        kafka_request_timeout_ms=5_000, log_format="json", **security,
    )


def a_topic() -> Topic:
    """A one-partition topic of its own, for a test to create."""
    return dataclasses.replace(IDENTITY_COMMANDS, name=f"signgate.security.{uuid.uuid4().hex[:8]}", partitions=1)


@contextlib.asynccontextmanager
async def running_identity(connections: ConnectionSettings) -> AsyncIterator[Service]:
    keys = generate_key_pair()
    service = build_service(IDENTITY, IdentitySettings(
        connections=connections, retry_first_delay=0.01, outbox_poll_interval=0.2,
        secrets=SecretSettings(pepper=generate_pepper()),
        tokens=TokenSettings(private_key=keys.private_key, public_key=keys.public_key),
    ))
    async with service.app:
        yield service


async def unknown_user_outcome(client: SignGateClient) -> None:
    """An AuthenticateUser for a user nobody registered comes back as its event and its reply."""
    outcome = await client.send(idn.AuthenticateUser(user_name=f"nobody-{uuid.uuid4().hex[:6]}@example.com",
                                                     password="wrong"), timeout=20)
    assert isinstance(outcome.event, idn.UserAuthenticationFailedV2)
    assert isinstance(outcome.reply, idn.AuthenticationFailed)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


# -- mutual TLS --


@pytest.fixture(scope="module")
async def mtls_broker(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory):
    """A broker whose only listener wants TLS and a client certificate signed by the test CA."""
    tls = server_context(certificates.server.cert, certificates.server.key, client_cafile=certificates.ca)
    async with secured_broker(tmp_path_factory.mktemp("mtls") / "tansu.log", tls=tls) as broker:
        yield broker


@pytest.fixture(scope="module")
async def other_name_front(mtls_broker: SecuredBroker, certificates: Certificates):
    """TLS in front of the same broker, with a certificate (of the test CA) for another host's name."""
    tls = server_context(certificates.other_server.cert, certificates.other_server.key)
    async with BrokerFront(f"127.0.0.1:{mtls_broker.tansu.port}", tls=tls) as front:
        yield front


def mtls_settings(certificates: Certificates, **overrides: Any) -> dict[str, Any]:
    return {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": certificates.ca,
            "kafka_ssl_certfile": certificates.client.cert, "kafka_ssl_keyfile": certificates.client.key,
            "kafka_ssl_key_password": CLIENT_KEY_PASSWORD, **overrides}


@pytest.fixture(scope="module")
async def mtls_connections(provisioned: ConnectionSettings, endpoints, run_id: str, mtls_broker: SecuredBroker,
                           certificates: Certificates) -> AsyncIterator[ConnectionSettings]:
    """A database of its own, migrated, and every registry topic created over mutual TLS."""
    async with own_database(endpoints.database_url, f"{run_id}_mtls") as database_url:
        connections = secured(provisioned.model_copy(update={"database_url": database_url}), mtls_broker.address,
                              **mtls_settings(certificates))
        await provision(ProvisionSettings(connections=connections), [IDENTITY])
        yield connections


async def test_a_service_answers_a_client_over_mutual_tls(mtls_connections: ConnectionSettings,
                                                          mtls_broker: SecuredBroker) -> None:
    """The identity service and the client, each verifying the broker's certificate and presenting
    its own, exchange a command and its outcome through a listener that speaks only TLS."""
    before = len(mtls_broker.front.peers)
    async with running_identity(mtls_connections), SignGateClient(
        mtls_connections.kafka_bootstrap, topic_prefix=mtls_connections.topic_prefix,
        **signgate_client_options(mtls_connections),
    ) as client:
        await unknown_user_outcome(client)
    assert mtls_broker.front.peers[before:] and set(mtls_broker.front.peers[before:]) == {"client"}


async def test_provisioning_creates_topics_over_tls(mtls_connections: ConnectionSettings) -> None:
    """Provisioning creates a topic over mutual TLS, and a listing over TLS shows it."""
    topic = a_topic()
    created = await create_topics(mtls_connections, [topic])
    assert created == [mtls_connections.topic(topic.name), mtls_connections.topic(topic.dlq)]
    admin = AIOKafkaAdminClient(bootstrap_servers=mtls_connections.kafka_bootstrap,
                                **client_options(mtls_connections))
    await admin.start()
    try:
        assert set(created) <= set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_client_without_a_certificate_is_refused(mtls_connections: ConnectionSettings,
                                                         certificates: Certificates) -> None:
    """Without a client certificate, provisioning and the client are refused, saying one is required."""
    no_certificate = secured(mtls_connections, mtls_connections.kafka_bootstrap,
                             kafka_security_protocol="SSL", kafka_ssl_cafile=certificates.ca)
    with pytest.raises(KafkaTlsError, match="requires a client certificate"):
        await create_topics(no_certificate, [a_topic()])
    with pytest.raises(KafkaTlsError, match="requires a client certificate"):
        async with SignGateClient(no_certificate.kafka_bootstrap, **signgate_client_options(no_certificate)):
            pass


async def test_a_client_certificate_of_another_ca_is_refused(mtls_connections: ConnectionSettings,
                                                             certificates: Certificates) -> None:
    """A client certificate the broker's CA did not sign is refused, saying the broker does not trust it."""
    stranger = secured(mtls_connections, mtls_connections.kafka_bootstrap, **mtls_settings(
        certificates, kafka_ssl_certfile=certificates.stranger_client.cert,
        kafka_ssl_keyfile=certificates.stranger_client.key, kafka_ssl_key_password=None))
    with pytest.raises(KafkaTlsError, match="does not trust the client certificate's CA"):
        await create_topics(stranger, [a_topic()])


async def test_a_broker_certificate_of_an_unknown_ca_is_refused(mtls_connections: ConnectionSettings,
                                                                certificates: Certificates) -> None:
    """With another CA file the broker's certificate fails verification, and the error names the CA file."""
    wrong_ca = secured(mtls_connections, mtls_connections.kafka_bootstrap,
                       **mtls_settings(certificates, kafka_ssl_cafile=certificates.stranger_ca))
    with pytest.raises(KafkaTlsError, match="the broker's certificate was refused: .*CA file") as refused:
        await create_topics(wrong_ca, [a_topic()])
    assert isinstance(refused.value.__cause__, KafkaConnectionError)  # what aiokafka said: "Unable to bootstrap"


async def test_a_certificate_for_another_name_is_refused_while_hostnames_are_checked(
        mtls_connections: ConnectionSettings, other_name_front: BrokerFront, certificates: Certificates) -> None:
    """A broker certificate of the trusted CA for another host's name is refused by default, and
    accepted once hostname checks are turned off."""
    checked = secured(mtls_connections, other_name_front.address, **mtls_settings(certificates))
    with pytest.raises(KafkaTlsError, match="mismatch, certificate is not valid for '127.0.0.1'"):
        await create_topics(checked, [a_topic()])
    unchecked = secured(mtls_connections, other_name_front.address,
                        **mtls_settings(certificates, kafka_ssl_check_hostname=False))
    topic = a_topic()
    assert await create_topics(unchecked, [topic]) == [unchecked.topic(topic.name), unchecked.topic(topic.dlq)]


async def test_a_service_whose_certificate_is_refused_does_not_start(
        mtls_connections: ConnectionSettings, certificates: Certificates) -> None:
    """A service without the client certificate the brokers require stops at start-up with the reason."""
    no_certificate = secured(mtls_connections, mtls_connections.kafka_bootstrap,
                             kafka_security_protocol="SSL", kafka_ssl_cafile=certificates.ca)
    with pytest.raises(KafkaTlsError, match="requires a client certificate"):
        async with running_identity(no_certificate):
            pass


# -- SASL over TLS --


@pytest.fixture(scope="module")
async def sasl_broker(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory):
    """A broker that wants TLS and then SASL (PLAIN, SCRAM-SHA-256 or -512) from each connection."""
    tls = server_context(certificates.server.cert, certificates.server.key)
    users = {SERVICE_USER: SERVICE_PASSWORD, CALLER_USER: CALLER_PASSWORD}
    async with secured_broker(tmp_path_factory.mktemp("sasl") / "tansu.log", tls=tls, users=users) as broker:
        yield broker


def sasl_settings(certificates: Certificates, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {"kafka_security_protocol": "SASL_SSL", "kafka_ssl_cafile": certificates.ca,
            "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": user, "kafka_sasl_password": password}


@pytest.fixture(scope="module")
async def sasl_connections(provisioned: ConnectionSettings, endpoints, run_id: str, sasl_broker: SecuredBroker,
                           certificates: Certificates) -> AsyncIterator[ConnectionSettings]:
    """The identity service's connections, as its own principal over SCRAM-SHA-512; provisioned."""
    async with own_database(endpoints.database_url, f"{run_id}_sasl") as database_url:
        connections = secured(provisioned.model_copy(update={"database_url": database_url}), sasl_broker.address,
                              **sasl_settings(certificates, "SCRAM-SHA-512", SERVICE_USER, SERVICE_PASSWORD))
        await provision(ProvisionSettings(connections=connections), [IDENTITY])
        yield connections


async def test_a_service_and_a_caller_authenticate_with_scram_over_tls(
        sasl_connections: ConnectionSettings, sasl_broker: SecuredBroker, certificates: Certificates) -> None:
    """The service (SCRAM-SHA-512) and a caller (SCRAM-SHA-256), each as its own principal, exchange a
    command and its outcome over SASL_SSL."""
    caller = secured(sasl_connections, sasl_connections.kafka_bootstrap,
                     **sasl_settings(certificates, "SCRAM-SHA-256", CALLER_USER, CALLER_PASSWORD))
    before = len(sasl_broker.front.principals)
    async with running_identity(sasl_connections), SignGateClient(
        caller.kafka_bootstrap, topic_prefix=caller.topic_prefix, **signgate_client_options(caller),
    ) as client:
        await unknown_user_outcome(client)
    assert set(sasl_broker.front.principals[before:]) == {SERVICE_USER, CALLER_USER}


@pytest.mark.parametrize(("mechanism", "user", "password"), [
    ("SCRAM-SHA-256", CALLER_USER, "not-the-password"),
    ("SCRAM-SHA-512", "nobody", CALLER_PASSWORD),
    ("PLAIN", CALLER_USER, "not-the-password"),
])
async def test_wrong_sasl_credentials_are_refused(sasl_connections: ConnectionSettings, certificates: Certificates,
                                                  mechanism: str, user: str, password: str) -> None:
    """A wrong password or an unknown user is refused with the broker's SASL_AUTHENTICATION_FAILED."""
    wrong = secured(sasl_connections, sasl_connections.kafka_bootstrap,
                    **sasl_settings(certificates, mechanism, user, password))
    with pytest.raises(KafkaAuthenticationError, match=f"SASL {mechanism} refused: .*invalid credentials"):
        await create_topics(wrong, [a_topic()])


async def test_a_client_without_sasl_is_refused_by_a_sasl_listener(
        sasl_connections: ConnectionSettings, certificates: Certificates) -> None:
    """TLS alone, where the listener wants SASL too, is refused with a hint at SASL_SSL."""
    tls_only = secured(sasl_connections, sasl_connections.kafka_bootstrap, kafka_security_protocol="SSL",
                       kafka_ssl_cafile=certificates.ca)
    with pytest.raises(KafkaSecurityError, match="require SASL"):
        await create_topics(tls_only, [a_topic()])


async def test_the_cli_lists_topics_over_sasl_ssl(sasl_connections: ConnectionSettings, certificates: Certificates,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`signgate topics`, given SASL_SSL by the environment, reads the secured broker's topics."""
    caller = secured(sasl_connections, sasl_connections.kafka_bootstrap,
                     **sasl_settings(certificates, "SCRAM-SHA-256", CALLER_USER, CALLER_PASSWORD))
    for name, value in security_environment(caller).items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "--bootstrap", caller.kafka_bootstrap, "--topic-prefix", caller.topic_prefix, "topics"])
    assert result.exit_code == 0, result.output
    assert "missing" not in result.output and "partitions" in result.output


# -- the embedded broker's own authentication --


async def test_the_embedded_broker_enforces_authentication_that_nobody_can_pass(tmp_path: Path) -> None:
    """Tansu with --authentication closes on a client without SASL and refuses SCRAM for any user (its
    memory storage keeps no credentials): what the broker front stands in for."""
    tansu = tansu_server(tmp_path / "tansu.log", authentication=True)
    tansu.start()
    try:
        tansu.wait_until_ready()
        bootstrap = f"127.0.0.1:{tansu.port}"
        plain = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            await plain.start()
        await plain.close()
        scram = ConnectionSettings(kafka_bootstrap=bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                                   kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username="anyone",
                                   kafka_sasl_password="anything", kafka_request_timeout_ms=5_000)
        with pytest.raises(KafkaAuthenticationError, match="SASL SCRAM-SHA-256 refused"):
            await create_topics(scram, [a_topic()])
    finally:
        # aiokafka leaves open the connection of a SCRAM answer it could not read, and Tansu waits
        # seconds for open connections on SIGTERM; its memory holds nothing to keep.
        tansu.stop_signal = signal.SIGKILL
        tansu.stop()
