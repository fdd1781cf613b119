"""A gateway replica served by a real uvicorn server on a loopback port, in the test's process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from libs.runtime.settings import ConnectionSettings
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.waiting import until


def gateway_settings(connections: ConnectionSettings, **overrides: Any) -> GatewaySettings:
    """A replica of its own name on ``connections``; limits high enough that only a test of
    them meets them (every test's requests come from one address)."""
    values: dict[str, Any] = {
        "connections": connections, "instance": f"test-{uuid.uuid4().hex[:8]}",
        "rate_limit_per_address": 100_000, "rate_limit_per_credential": 100_000, **overrides,
    }
    return GatewaySettings(**values)


@dataclass(frozen=True)
class RunningGateway:
    url: str
    settings: GatewaySettings


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """Serve ``create_app(settings)`` on 127.0.0.1 (a free port) until the block ends."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None,
                            lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped while starting")
        return server.started

    try:
        await until(started, timeout=60, what="the gateway's start")  # uvicorn offers only a flag
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningGateway(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        await task
