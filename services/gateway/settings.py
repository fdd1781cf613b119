"""The gateway's settings (read from the environment, `docs/settings.md`)."""

from __future__ import annotations

import os
import re
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.runtime.settings import ConnectionSettings
from libs.security.record_signatures import RecordKeySettings


def _instance() -> str:
    """The host's name and the process id: stable across restarts of a container (pid 1), apart
    for two processes on one host."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


class GatewaySettings(BaseSettings):
    """``SIGNGATE_GATEWAY_*``: where it listens, how long it waits, what it lets in."""

    model_config = SettingsConfigDict(env_prefix="SIGNGATE_GATEWAY_", extra="ignore")

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    records: RecordKeySettings = Field(
        default_factory=RecordKeySettings,
        description="The services' record public keys: events the gateway acts on (a revoked API "
        "key) must carry their writer's signature.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address `python -m services.gateway` binds to (run by uvicorn: its --host).",
    )
    port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="Port `python -m services.gateway` listens on (run by uvicorn: its --port).",
    )
    instance: str = Field(
        default_factory=_instance,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="This replica's name: its reply topic is "
        "`<topic_prefix><caller_reply_prefix>gateway.<instance>`; the host name and process id when "
        "unset. Each replica needs its own.",
    )
    outcome_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=120,
        description="How long a request waits for its command's outcome before it is answered 504.",
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        description="Longest the broker holds the reply consumer's fetch while no outcome waits "
        "(a broker that holds it whole delays answers by up to this; shorter costs idle fetches).",
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
