"""Fixtures shared by every test layer: one stack per test session, isolated by a run id.

The stack is the embedded one unless ``SIGNGATE_KAFKA_BOOTSTRAP``, ``SIGNGATE_DATABASE_URL``
or ``SIGNGATE_REDIS_URL`` name servers to use (or ``SIGNGATE_TEST_BACKEND=containers``). The
Redis suites run twice, on that Redis and on a Redis Cluster of three masters (embedded too,
unless ``SIGNGATE_TEST_REDIS_CLUSTER_URL`` names a node of one).
Each session gets its own topic prefix, Redis key prefix and Postgres database, so runs
against shared servers do not see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from libs.devstack.embedded import Endpoints
from libs.devstack.redis_cluster import EmbeddedRedisCluster
from libs.devstack.stack import open_stack, uses_embedded_broker
from libs.runtime.settings import ConnectionSettings
from libs.tools.provision import ProvisionSettings, provision
from tests.support.databases import own_database
from tests.support.signing import TEST_RECORD_KEYS, TEST_SEALING_KEYS, TEST_SHARED_KEYS

# Services built by tests read settings from the environment too; the session's own
# fixtures pass them explicitly, so keep ambient SIGNGATE_* tuning out of the way.
for _var in ("SIGNGATE_TOPIC_PREFIX", "SIGNGATE_REDIS_PREFIX"):
    os.environ.pop(_var, None)
# Record, sealing and digest keys for every service the tests build or start (processes inherit them; `make run`'s
# runner hands each only its own signing key).
os.environ.update({**TEST_RECORD_KEYS, **TEST_SEALING_KEYS, **TEST_SHARED_KEYS})
# The embedded broker answers a consumer's first JoinGroup after half its session timeout: at the
# default 10 s every service start (a fixture's, a restart's) waits 5 s. Tests join in 1.5 s; a
# test that wants another timeout passes its own.
for _prefix in ("SIGNGATE_IDENTITY_", "SIGNGATE_WORKFLOW_", "SIGNGATE_AUTHENTICATION_", "SIGNGATE_OTP_DISPATCH_",
                "SIGNGATE_LEDGER_"):
    os.environ.setdefault(f"{_prefix}SESSION_TIMEOUT_MS", "3000")
    os.environ.setdefault(f"{_prefix}HEARTBEAT_INTERVAL_MS", "500")


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    with open_stack(tmp_path_factory.mktemp("stack")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
async def database_url(endpoints: Endpoints, run_id: str) -> AsyncIterator[str]:
    """A database of this session's own on the stack's Postgres."""
    async with own_database(endpoints.database_url, run_id) as url:
        yield url


@pytest.fixture(scope="session")
def connections(endpoints: Endpoints, database_url: str, run_id: str) -> ConnectionSettings:
    return ConnectionSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        kafka_idempotence=not uses_embedded_broker(),
        database_url=database_url,
        redis_url=endpoints.redis_url,
        topic_prefix=f"{run_id}.",
        redis_prefix=f"{run_id}:",
        log_format="json",
    )


@pytest.fixture(scope="session")
async def provisioned(connections: ConnectionSettings) -> ConnectionSettings:
    """Every service schema migrated and every registry topic created for this session."""
    from services.registry import SERVICES

    await provision(ProvisionSettings(connections=connections), SERVICES)
    return connections


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One node of a three-master Redis Cluster on loopback, started once, when a test asks."""
    if url := os.environ.get("SIGNGATE_TEST_REDIS_CLUSTER_URL"):
        yield url
        return
    with EmbeddedRedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def cluster_connections(connections: ConnectionSettings, redis_cluster_url: str) -> ConnectionSettings:
    """The session's connections with Redis on the three-master cluster."""
    return connections.model_copy(update={"redis_url": redis_cluster_url, "redis_cluster": True})


@pytest.fixture(scope="session", params=["server", "cluster"])
def redis_connections(request: pytest.FixtureRequest, connections: ConnectionSettings) -> ConnectionSettings:
    """The session's connections, on its one Redis server and then on the Redis Cluster: a test
    that takes them runs on both."""
    if request.param == "server":
        return connections
    cluster: ConnectionSettings = request.getfixturevalue("cluster_connections")
    return cluster
