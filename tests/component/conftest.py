"""Fixtures of the component layer: services on the session's Postgres and Redis, without a broker.

One `ComponentStack` per session (a database and a Redis prefix of the layer's own, every schema
migrated); each test module builds the services it needs on it (`ComponentStack.service`). A module
whose rules live in Redis runs on one Redis server and on the three-master Redis Cluster too:
``pytestmark = ON_SERVER_AND_CLUSTER`` (`tests.support.component`) (the same database, the other Redis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from libs.devstack.embedded import Endpoints
from libs.runtime.settings import ConnectionSettings
from tests.support.component import ComponentStack, component_stack


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, server_stack: ComponentStack) -> ComponentStack:
    """The layer's stack, on the session's Redis server, or (``ON_SERVER_AND_CLUSTER``'s second
    run) on the Redis Cluster."""
    if getattr(request, "param", "server") == "server":
        return server_stack
    cluster: ConnectionSettings = request.getfixturevalue("cluster_connections")
    connections = server_stack.connections.model_copy(
        update={"redis_url": cluster.redis_url, "redis_cluster": True}
    )
    return dataclasses.replace(server_stack, connections=connections)


@pytest.fixture(scope="session")
async def server_stack(endpoints: Endpoints, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ComponentStack]:
    from services.registry import SERVICES

    async with component_stack(endpoints.database_url, endpoints.redis_url, f"{run_id}c", SERVICES,
                               tmp_path_factory.mktemp("component")) as opened:
        yield opened
