"""The gateway's settings (read from the environment, `docs/settings.md`)."""

from __future__ import annotations

import uuid

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.settings import ConnectionSettings


def _instance() -> str:
    return uuid.uuid4().hex[:12]


class GatewaySettings(BaseSettings):
    """``SIGNGATE_GATEWAY_*``: where it listens, how long it waits, what it lets in."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_GATEWAY_", extra="ignore")

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP server.")
    instance: str = Field(
        default_factory=_instance,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="This replica's name: its reply topic is "
        "`<topic_prefix><caller_reply_prefix>gateway.<instance>`; random when unset. Give each "
        "replica its own (a pod name) so a restarted replica reads its own topic again.",
    )
    outcome_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=120,
        description="How long a request waits for its command's outcome before it is answered 504.",
    )
    body_limit_bytes: int = Field(
        65_536,
        ge=1,
        description="Largest request body accepted; a larger one is answered 413 before it is parsed.",
    )
    rate_limit_per_credential: int = Field(
        600,
        ge=1,
        description="Requests one credential (a bearer token, an API key) may make per window.",
    )
    rate_limit_per_address: int = Field(
        1200, ge=1, description="Requests one client address may make per window."
    )
    rate_limit_window_seconds: int = Field(
        60, ge=1, description="The window of both rate limits; 429 with Retry-After beyond it."
    )
    trust_forwarded_for: bool = Field(
        False,
        description="Take the client address from the last X-Forwarded-For entry, the one the "
        "proxy in front added (only behind such a proxy); otherwise the connection's peer address.",
    )
