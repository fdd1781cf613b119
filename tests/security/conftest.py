"""The four services in this process, identity on a clock of its own the tests move forward."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.settings import ConnectionSettings
from tests.support.clock import MovableClock
from tests.support.system import System, running_system


@pytest.fixture(scope="package")
async def system(provisioned: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with running_system(provisioned, tmp_path_factory.mktemp("security"),
                              identity_clock=MovableClock()) as running:
        yield running
