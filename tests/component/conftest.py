"""Fixtures of the component layer: services on the session's Postgres and Redis, without a broker.

One `ComponentStack` per session (a database and a Redis prefix of the layer's own, every schema
migrated); each test module builds the services it needs on it (`ComponentStack.service`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.devstack.embedded import Endpoints
from tests.support.component import ComponentStack, component_stack


@pytest.fixture(scope="session")
async def stack(endpoints: Endpoints, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ComponentStack]:
    from services.registry import SERVICES

    async with component_stack(endpoints.database_url, endpoints.redis_url, f"{run_id}c", SERVICES,
                               tmp_path_factory.mktemp("component")) as opened:
        yield opened
