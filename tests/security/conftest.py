"""The four services in this process, identity on a clock of its own the tests move forward.

The short form hardens identity's lockout after 20 failures in a row instead of 100, so the
lock-expire-fail cycle is walked in a few seconds; the long form keeps the default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.runtime.settings import ConnectionSettings
from tests.support.chaos_scale import LONG
from tests.support.clock import MovableClock
from tests.support.system import System, running_system

IDENTITY = {} if LONG else {"lockout_hard_after": 20}


@pytest.fixture(scope="package")
async def system(provisioned: ConnectionSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    async with running_system(provisioned, tmp_path_factory.mktemp("security"),
                              identity_clock=MovableClock(), identity=IDENTITY) as running:
        yield running
