"""What the gateway's routes work with, opened once per process by the app's lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from libs.runtime.redis_client import RedisClient
from services.gateway.settings import GatewaySettings
from signgate_client import SignGateClient

ApiKeyExchange = Callable[[str], Awaitable[str | None]]
"""An API key -> the bearer token of the API user it is bound to (None: no such live key)."""


@dataclass(frozen=True)
class GatewayDependencies:
    """The client that publishes commands and awaits their outcomes (one reply consumer per
    instance), Redis for the rate limits, the settings, and the API-key exchange once it exists."""

    client: SignGateClient
    redis: RedisClient
    settings: GatewaySettings
    api_keys: ApiKeyExchange | None = None


def dependencies(request: Request) -> GatewayDependencies:
    """The process's dependencies, for a route (``Depends(dependencies)``)."""
    deps: GatewayDependencies = request.app.state.dependencies
    return deps
