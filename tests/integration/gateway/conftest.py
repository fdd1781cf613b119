"""The gateway's integration tests: all four services and one gateway replica, for this package only.

A package of their own, so that the running services (a consumer in each service's group) and the
bus scan after each test are gone before the other integration modules, which run services of their
own on the same topics, start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from libs.runtime.settings import ConnectionSettings
from tests.e2e.steps import owner_token
from tests.support.gateway import RunningGateway, gateway_settings, running_gateway
from tests.support.system import System, running_system


@pytest.fixture(scope="package")
async def system(provisioned: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    """All four services, for the gateway's tests (one set for every module of this package)."""
    async with running_system(provisioned, tmp_path_factory.mktemp("gateway-otp")) as running:
        yield running


@pytest.fixture(scope="package")
async def gateway(system: System) -> AsyncIterator[RunningGateway]:
    """One gateway replica over real HTTP on the system's broker and Redis."""
    async with running_gateway(gateway_settings(system.connections)) as running:
        yield running


@pytest.fixture(scope="package")
async def token(system: System) -> str:
    """An API user's token (identity's AuthenticateUser), as a SigningHub caller holds one."""
    return await owner_token(system)


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client of the package's gateway replica."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        yield client
