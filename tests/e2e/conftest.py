"""All four services in this process, on the session's real stack (see tests.support.system)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.runtime.settings import ConnectionSettings
from tests.support.system import System, running_system

__all__ = ["System"]


@pytest.fixture(scope="package")
async def system(provisioned: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with running_system(provisioned, tmp_path_factory.mktemp("otp")) as running:
        yield running
