"""The Kubernetes manifests (deploy/kubernetes): valid objects, and naming only what the code has.

No cluster runs here, so every document is parsed and checked offline: the built-in kinds against
the Kubernetes JSON Schemas, and all of them against the code (service commands, probe paths,
ports, the secrets each service holds, consumer groups and topics for KEDA, the ACL principals).

``kubernetes-schema.json`` beside this module holds the strict JSON Schemas (Kubernetes 1.33,
``additionalProperties: false``) of the kinds used here, with the definitions they reach:
extracted by ``kubernetes_schema_bundle.py`` from the PyPI package kubernetes-validate 1.37.0
(``kubernetes-json-schema/v1.33.0-local-strict``; Apache-2.0, generated from Kubernetes' OpenAPI
document), descriptions dropped. It is vendored so that the test needs neither that 22 MB package
nor the network. KEDA's ScaledObject and TriggerAuthentication have no schema there: they are
checked field by field. The gateway is deployed beside the services (a caller of its own, no
``ServiceDefinition``), scaled on CPU by a HorizontalPodAutoscaler instead of on consumer lag.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from libs.devstack.dev_secrets import (
    compose_passwords,
    generate_secrets,
    write_kubernetes_secret_files,
)
from libs.runtime.definition import ServiceDefinition
from libs.runtime.settings import ConnectionSettings
from libs.security.required_secrets import (
    PUBLIC_KEY_VARIABLES,
    SERVICE_PUBLIC_KEYS,
    SERVICE_SECRETS,
    is_public_key_variable,
    is_secret_variable,
)
from libs.tools.acls import deployment_principals
from services.registry import SERVICES
from tests.contract.test_compose import env_names, settings_class
from tests.support.tls import make_certificates

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
SCHEMA_FILE = Path(__file__).with_name("kubernetes-schema.json")
HTTP_PORT = 8000
LIVENESS, READINESS = "/livez", "/readyz"
KEDA = "keda.sh/v1alpha1"
PROVISION = "provision"
GATEWAY = "gateway"
PUBLIC_KEYS = "signgate-public-keys"
"""The ConfigMap of the public keys (not secrets: `SERVICE_PUBLIC_KEYS`)."""
OPERATOR_KEYS = {
    "SIGNGATE_KAFKA_SASL_USERNAME",
    "SIGNGATE_KAFKA_SASL_PASSWORD",
    "SIGNGATE_DATABASE_URL",
}
"""Secret keys the operator provides for each principal (besides the services' own secrets)."""


# --- reading the manifests -------------------------------------------------------------


@cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((FOLDER / "kustomization.yaml").read_text())


@cache
def documents() -> tuple[dict[str, Any], ...]:
    found = []
    for resource in kustomization()["resources"]:
        found += [d for d in yaml.safe_load_all((FOLDER / resource).read_text()) if d is not None]
    return tuple(found)


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def component(definition: ServiceDefinition | str) -> str:
    name = definition if isinstance(definition, str) else definition.name
    return name.replace("_", "-")


def object_name(definition: ServiceDefinition | str) -> str:
    return f"signgate-{component(definition)}"


DEPLOYED = [*(d.name for d in SERVICES), GATEWAY]
"""What runs as a Deployment: the services and the gateway."""


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def config() -> dict[str, str]:
    return of_kind("ConfigMap")["signgate-config"]["data"]


def generated_secrets() -> dict[str, set[str]]:
    """Secret name -> its keys, as kustomize's secretGenerator makes them."""
    secrets = {}
    for generator in kustomization()["secretGenerator"]:
        keys = {item.split("=", 1)[0] for item in generator.get("literals", [])}
        keys |= {item.split("=", 1)[0] for item in generator.get("files", [])}
        secrets[generator["name"]] = keys
    return secrets


def generated_configmaps() -> dict[str, set[str]]:
    """ConfigMap name -> its keys, as kustomize's configMapGenerator makes them."""
    return {
        generator["name"]: {item.split("=", 1)[0] for item in generator.get("files", [])}
        for generator in kustomization()["configMapGenerator"]
    }


def generator_files() -> dict[str, str]:
    """Secret and public key file path (relative to deploy/kubernetes) -> the key it fills."""
    return {
        item.split("=", 1)[1]: item.split("=", 1)[0]
        for generator in [
            *kustomization()["secretGenerator"],
            *kustomization()["configMapGenerator"],
        ]
        for item in generator.get("files", [])
    }


def generator_literals(secret: str) -> dict[str, str]:
    generator = next(g for g in kustomization()["secretGenerator"] if g["name"] == secret)
    return dict(item.split("=", 1) for item in generator.get("literals", []))


def secret_refs(workload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in container(workload).get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            yield entry["name"], ref


def configmap_refs(workload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in container(workload).get("env", []):
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            yield entry["name"], ref


def workloads() -> dict[str, dict[str, Any]]:
    """Every principal's workload: each service's Deployment, the gateway's and the provision Job."""
    found = {name: of_kind("Deployment")[object_name(name)] for name in DEPLOYED}
    found[PROVISION] = of_kind("Job")["signgate-provision"]
    return found


def container_env(name: str, workload: dict[str, Any]) -> dict[str, str]:
    """The container's environment with the development secrets and placeholders for the
    operator's values: what the pod would see."""
    values = {**generate_secrets(), **compose_passwords()}
    env = dict(config())
    for entry in container(workload).get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        public = entry.get("valueFrom", {}).get("configMapKeyRef")
        if public is not None:
            env[entry["name"]] = values[public["key"]]
        elif ref is None:
            env[entry["name"]] = entry["value"]
        elif ref.get("optional"):
            continue
        elif entry["name"] == "SIGNGATE_KAFKA_SASL_USERNAME":
            env[entry["name"]] = generator_literals(ref["name"])[ref["key"]]
        elif entry["name"] == "SIGNGATE_DATABASE_URL":
            env[entry["name"]] = "postgresql://u:p@postgres.example:5432/signgate"
        elif entry["name"] == "SIGNGATE_KAFKA_SASL_PASSWORD":
            env[entry["name"]] = values[f"SASL_PASSWORD_{name.upper()}"]
        else:
            env[entry["name"]] = values[ref["key"]]
    return env


# --- the kustomization and the schemas -------------------------------------------------


def test_the_kustomization_lists_every_manifest():
    """Every manifest beside the kustomization is one of its resources, and each resource exists."""
    present = {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization()["resources"]) == present
    assert kustomization()["namespace"] == "signgate"
    assert of_kind("Namespace").keys() == {"signgate"}


@cache
def schemas() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    kind = f"{document['apiVersion']}/{document['kind']}"
    bundle = schemas()
    schema = {"$schema": bundle["$schema"], "$defs": bundle["$defs"], **bundle["kinds"][kind]}
    return [
        f"{kind} {document['metadata']['name']} {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(document)
    ]


def test_every_builtin_object_is_valid_under_the_kubernetes_schema():
    """Every object of a built-in kind is valid under Kubernetes' strict JSON Schema; the rest are
    KEDA's, checked below."""
    builtin = [d for d in documents() if d["apiVersion"] != KEDA]
    assert {f"{d['apiVersion']}/{d['kind']}" for d in builtin} <= set(schemas()["kinds"])
    assert [error for d in builtin for error in schema_errors(d)] == []
    assert {d["kind"] for d in documents() if d["apiVersion"] == KEDA} == {
        "ScaledObject",
        "TriggerAuthentication",
    }


def test_the_schema_rejects_a_misspelt_field_and_a_wrong_type():
    """The vendored schema is strict enough to catch a misspelt probe and a port given as a list."""
    deployment = json.loads(json.dumps(of_kind("Deployment")["signgate-identity"]))
    probe_owner = deployment["spec"]["template"]["spec"]["containers"][0]
    probe_owner["readinesProbe"] = probe_owner.pop("readinessProbe")
    probe_owner["ports"][0]["containerPort"] = [HTTP_PORT]
    errors = " ".join(schema_errors(deployment))
    assert "readinesProbe" in errors and "containerPort" in errors


# --- one of each per service -----------------------------------------------------------


def test_each_service_has_a_deployment_service_budget_and_scaler():
    """Each registered service has a Deployment, a Service, a PodDisruptionBudget, a ScaledObject
    and its TriggerAuthentication; the gateway a Deployment, a Service, a PodDisruptionBudget and a
    HorizontalPodAutoscaler; and nothing else is deployed."""
    names = {object_name(d) for d in SERVICES}
    gateway = object_name(GATEWAY)
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(of_kind(kind)) == names | {gateway}, kind
    assert set(of_kind("ScaledObject")) == names
    assert set(of_kind("TriggerAuthentication")) == {f"{n}-kafka" for n in names}
    assert set(of_kind("HorizontalPodAutoscaler")) == {gateway}
    assert set(of_kind("Job")) == {"signgate-provision"}


def test_selectors_match_their_own_pods_only():
    """Each Deployment's selector matches its pod labels and no other service's; its Service and
    its PodDisruptionBudget select exactly those pods."""
    deployments = of_kind("Deployment")
    for definition in DEPLOYED:
        name = object_name(definition)
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
        assert labels["app.kubernetes.io/component"] == component(definition)
        others = [n for n, d in deployments.items() if n != name]
        for other in others:
            pod = deployments[other]["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= pod.items(), f"{name} selects {other}'s pods"
        assert of_kind("Service")[name]["spec"]["selector"] == selector
        assert of_kind("PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"] == selector


def test_each_container_runs_its_procfile_command_on_its_port():
    """Each service runs its Procfile command on all interfaces, at the container port named
    ``http`` that its Service targets."""
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    for service in DEPLOYED:
        name = object_name(service)
        main = container(of_kind("Deployment")[name])
        expected = procfile[service].strip().replace("--host 127.0.0.1", "--host 0.0.0.0")
        assert " ".join(main["command"]) == expected.replace("$PORT", str(HTTP_PORT)), name
        assert main["ports"] == [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}], (
            name
        )
        assert of_kind("Service")[name]["spec"]["ports"][0]["targetPort"] == "http"


def test_probes_ask_liveness_and_readiness_at_the_paths_the_service_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Liveness (and start-up) probe /livez and readiness /readyz on the ``http`` port, and each
    service's app, built from its pod's environment, serves both."""
    mounted = make_certificates(tmp_path).ca  # stands in for the CA the pod mounts
    for service in DEPLOYED:
        workload = of_kind("Deployment")[object_name(service)]
        main = container(workload)
        assert main["livenessProbe"]["httpGet"] == {"path": LIVENESS, "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": LIVENESS, "port": "http"}
        assert main["readinessProbe"]["httpGet"] == {"path": READINESS, "port": "http"}
        with monkeypatch.context() as env:
            for var in [v for v in os.environ if v.startswith("SIGNGATE_")]:
                env.delenv(var)
            for var, value in container_env(service, workload).items():
                env.setenv(var, str(mounted) if var.endswith("_CAFILE") else value)
            app = importlib.import_module(f"services.{service}.app").create_app()
            # FastStream's ASGI routes are (path, app) pairs; the gateway's FastAPI ones have .path
            routes = {
                r[0] if isinstance(r, tuple) else getattr(r, "path", None) for r in app.routes
            }
        assert {LIVENESS, READINESS} <= routes, f"{service} serves {sorted(map(str, routes))}"


# --- settings and secrets --------------------------------------------------------------


def test_every_signgate_variable_is_a_setting():
    """Every SIGNGATE_* variable of the ConfigMap and of each container is a ConnectionSettings
    field or one of the container's own settings."""
    shared = env_names(ConnectionSettings)
    assert set(config()) <= shared, sorted(set(config()) - shared)
    for name, workload in workloads().items():
        own = env_names(settings_class(name))
        for entry in container(workload)["env"]:
            assert entry["name"] in shared | own, f"{name}: {entry['name']}"


def test_each_secret_reference_names_a_key_of_a_generated_secret():
    """Every secret a container reads (but an optional one) is a key of a Secret the kustomization
    generates; the CA the pods mount and KEDA reads is one too."""
    secrets = generated_secrets()
    for name, workload in workloads().items():
        for var, ref in secret_refs(workload):
            if ref.get("optional"):
                continue
            assert ref["key"] in secrets.get(ref["name"], set()), f"{name}: {var} -> {ref}"
            assert ref["key"] == var, f"{name}: {var} is read from {ref['key']}"
        volumes = workload["spec"]["template"]["spec"]["volumes"]
        for volume in volumes:
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
    for auth in of_kind("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]], ref


def test_each_service_holds_exactly_its_own_secrets():
    """A service's Secret and its container hold what `SERVICE_SECRETS` gives it, its Kafka
    credentials and (with Postgres) its database URL: the token private key only identity, the
    grant and sealing private keys only authentication, no pepper or private key the gateway."""
    secrets = generated_secrets()
    schemas = {d.name: d.schema for d in SERVICES}
    for service in DEPLOYED:
        name = object_name(service)
        wanted = set(SERVICE_SECRETS[service]) | {
            "SIGNGATE_KAFKA_SASL_USERNAME",
            "SIGNGATE_KAFKA_SASL_PASSWORD",
        }
        if schemas.get(service):
            wanted.add("SIGNGATE_DATABASE_URL")
        assert secrets[name] == wanted, name
        read = {
            ref["key"]
            for _, ref in secret_refs(of_kind("Deployment")[name])
            if not ref.get("optional")
        }
        assert read == wanted, name
        assert not [
            e
            for e in container(of_kind("Deployment")[name])["env"]
            if is_secret_variable(e["name"]) and "value" in e
        ]
    assert secrets[object_name(GATEWAY)] == {
        "SIGNGATE_KAFKA_SASL_USERNAME",
        "SIGNGATE_KAFKA_SASL_PASSWORD",
    }
    assert secrets["signgate-provision"] == OPERATOR_KEYS


def test_public_keys_are_a_configmap_each_container_reads_what_it_verifies_with():
    """The public keys are one ConfigMap holding nothing else (no secret can land in it), and
    each container reads from it exactly the public keys of `SERVICE_PUBLIC_KEYS`: the record keys
    to every consumer of internal topics, the gateway included; no Secret holds a public key."""
    assert generated_configmaps() == {PUBLIC_KEYS: set(PUBLIC_KEY_VARIABLES)}
    assert not [
        key for keys in generated_secrets().values() for key in keys if is_public_key_variable(key)
    ]
    for service in DEPLOYED:
        refs = dict(configmap_refs(of_kind("Deployment")[object_name(service)]))
        assert {ref["name"] for ref in refs.values()} <= {PUBLIC_KEYS}, service
        assert {var: ref["key"] for var, ref in refs.items()} == {
            var: var for var in SERVICE_PUBLIC_KEYS[service]
        }, service
    assert "SIGNGATE_RECORD_PUBLIC_KEYS" in SERVICE_PUBLIC_KEYS[GATEWAY]


def test_no_secret_is_in_the_configmap_or_a_literal():
    """The ConfigMap and the containers' literal values hold no password, key, pepper or URL with
    credentials."""
    literal = dict(config())
    for workload in workloads().values():
        literal |= {e["name"]: e["value"] for e in container(workload)["env"] if "value" in e}
    for var, value in literal.items():
        assert not is_secret_variable(var) and not re.search(
            "PASSWORD|PEPPER|_KEY|TOKEN|DATABASE_URL", var
        ), var
        assert "@" not in value, var


def test_each_principal_connects_as_the_user_the_acls_are_for():
    """Each service and provisioning connect as their own Kafka user, and `signgate acls` writes
    the ACLs of exactly that principal."""
    principals = {
        p.principal for p in deployment_principals(SERVICES, ConnectionSettings(topic_prefix=""))
    }
    users = []
    for name, workload in workloads().items():
        ref = dict(secret_refs(workload))["SIGNGATE_KAFKA_SASL_USERNAME"]
        user = generator_literals(ref["name"])["SIGNGATE_KAFKA_SASL_USERNAME"]
        assert user == name and f"User:{user}" in principals, name
        users.append(user)
    assert len(set(users)) == len(users)


def test_the_development_secret_files_are_the_generators_service_files(tmp_path: Path):
    """`dev_secrets --kubernetes` writes exactly the files the kustomization reads for the
    services' own secrets, each holding the value and nothing more (no newline added), readable by
    its owner only, and never replaces one."""
    values = generate_secrets()
    written = write_kubernetes_secret_files(tmp_path, values)
    relative = {f"secrets/{p.relative_to(tmp_path)}" for p in written}
    operator = {
        path for path, key in generator_files().items() if key in OPERATOR_KEYS or key == "ca.crt"
    }
    assert relative == set(generator_files()) - operator
    for path in written:
        assert (
            path.read_text() == values[generator_files()[f"secrets/{path.relative_to(tmp_path)}"]]
        )
        assert path.stat().st_mode & 0o077 == 0, path
    with pytest.raises(FileExistsError):
        write_kubernetes_secret_files(tmp_path, generate_secrets())


# --- hardening, resources, images ------------------------------------------------------


def test_every_pod_runs_non_root_read_only_without_capabilities():
    """Every pod runs as the image's non-root user with a seccomp profile, a read-only root file
    system, no privilege escalation, no capabilities, no API token, and a writable /tmp only."""
    uid = int(re.search(r"^USER (\d+):", (ROOT / "Dockerfile").read_text(), re.M)[1])
    for name, workload in workloads().items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_every_container_has_requests_and_limits():
    """Every container requests CPU and memory and is limited in both."""
    for name, workload in workloads().items():
        resources = container(workload)["resources"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[part].keys(), f"{name}: {part}"


def test_our_image_is_pinned():
    """Every container runs our image, which the kustomization pins to the project's release (or a digest)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {i["name"]: i for i in kustomization()["images"]}
    for name, workload in workloads().items():
        image, _, tag = container(workload)["image"].partition(":")
        assert image in images and tag == version, name
    for entry in images.values():
        assert entry.get("digest", "").startswith("sha256:") or entry["newTag"] == version


# --- scaling on consumer lag -----------------------------------------------------------


KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
"""KEDA's kafka scaler's name for each SASL mechanism."""


def test_each_service_scales_on_the_lag_of_its_group_on_each_topic_it_consumes():
    """Each ScaledObject scales its Deployment on one KEDA kafka trigger per consumed topic, for
    the service's consumer group, over the broker and security the services use; never beyond the
    partitions of its largest topic, and never below what its PodDisruptionBudget keeps plus one."""
    connections = ConnectionSettings(topic_prefix=config()["SIGNGATE_TOPIC_PREFIX"])
    mechanism = KEDA_SASL[config()["SIGNGATE_KAFKA_SASL_MECHANISM"]]
    tls = "enable" if config()["SIGNGATE_KAFKA_SECURITY_PROTOCOL"].endswith("SSL") else "disable"
    for definition in SERVICES:
        name = object_name(definition)
        scaled = of_kind("ScaledObject")[name]["spec"]
        assert scaled["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        triggers = scaled["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        assert [t["metadata"]["topic"] for t in triggers] == [
            connections.topic(t.name) for t in definition.consumes
        ]
        for trigger in triggers:
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == connections.topic(definition.group_id), name
            assert meta["bootstrapServers"] == config()["SIGNGATE_KAFKA_BOOTSTRAP"], name
            assert meta["sasl"] == mechanism and meta["tls"] == tls, name
            assert meta["offsetResetPolicy"] == "earliest", name
            assert int(meta["lagThreshold"]) > 0
            assert trigger["authenticationRef"]["name"] in of_kind("TriggerAuthentication")
        assert scaled["maxReplicaCount"] <= max(t.partitions for t in definition.consumes), name
        budget = of_kind("PodDisruptionBudget")[name]["spec"]["minAvailable"]
        assert scaled["minReplicaCount"] > budget, name
        auth = of_kind("TriggerAuthentication")[trigger["authenticationRef"]["name"]]["spec"]
        refs = {r["parameter"]: r for r in auth["secretTargetRef"]}
        assert refs["username"]["name"] == refs["password"]["name"] == name


def test_the_provision_job_runs_once_as_provision():
    """The Job runs ``python -m libs.tools.provision`` and is retried on failure, not forever."""
    job = of_kind("Job")["signgate-provision"]
    assert container(job)["command"] == ["python", "-m", "libs.tools.provision"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert 0 < job["spec"]["backoffLimit"] <= 10


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (``matchLabels`` and ``In``/``NotIn`` expressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        inside = labels.get(expression["key"]) in expression["values"]
        if inside != {"In": True, "NotIn": False}[expression["operator"]]:
            return False
    return True


def test_each_pod_has_one_network_policy_admitting_http_and_reaching_only_its_servers():
    """Every signgate pod is selected by exactly one NetworkPolicy (policies add up), which admits
    only its ``http`` port: the services' lets them reach DNS, the broker, Postgres and Redis (and
    the delivery providers), the gateway's only DNS, the broker and Redis."""
    policies = of_kind("NetworkPolicy")
    kafka_port = int(config()["SIGNGATE_KAFKA_BOOTSTRAP"].rpartition(":")[2])
    redis_port = int(config()["SIGNGATE_REDIS_URL"].rpartition(":")[2].split("/")[0])
    for name, workload in workloads().items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        chosen = [n for n, p in policies.items() if selects(p["spec"]["podSelector"], labels)]
        assert chosen == ["signgate-gateway" if name == GATEWAY else "signgate"], name
    for name, policy in policies.items():
        spec = policy["spec"]
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, name
        assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == ["http"], name
        egress = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
        assert {53, kafka_port, redis_port} <= egress, name
    assert 5432 in {
        p["port"] for rule in policies["signgate"]["spec"]["egress"] for p in rule["ports"]
    }
    gateway_egress = {
        p["port"] for rule in policies["signgate-gateway"]["spec"]["egress"] for p in rule["ports"]
    }
    assert gateway_egress == {53, kafka_port, redis_port}


def test_the_gateway_scales_on_cpu_from_two_replicas():
    """The gateway's HorizontalPodAutoscaler scales its Deployment on CPU use (it is stateless and
    consumes no group: no lag to scale on), over the CPU its container requests, never below one
    more than its PodDisruptionBudget keeps, and starts as many replicas as it keeps at least."""
    name = object_name(GATEWAY)
    scaler = of_kind("HorizontalPodAutoscaler")[name]["spec"]
    assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert [m["resource"]["name"] for m in scaler["metrics"] if m["type"] == "Resource"] == ["cpu"]
    assert 0 < scaler["metrics"][0]["resource"]["target"]["averageUtilization"] <= 100
    assert "cpu" in container(of_kind("Deployment")[name])["resources"]["requests"]
    budget = of_kind("PodDisruptionBudget")[name]["spec"]["minAvailable"]
    assert scaler["minReplicas"] > budget and scaler["maxReplicas"] > scaler["minReplicas"]
    assert of_kind("Deployment")[name]["spec"]["replicas"] >= scaler["minReplicas"]
