"""All four services in this process, on the session's real stack, sharing one set of secrets.

OTP dispatch sends SMS to its sandbox outbox and email through a real SMTP server (aiosmtpd on
loopback); the authentication and OTP services share a clock tests can move forward, and the
identity service may be given one of its own. When the system stops, everything it published is
scanned (`tests.support.scanning.bus_leaks`): no argon2 hash outside command topics, no contact in
clear on an events or dead-letter topic, no credential outside replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.devstack.dev_secrets import generate_secrets
from libs.runtime.service import Service, build_service
from libs.runtime.settings import ConnectionSettings
from libs.security.otp_store import OtpStoreSettings
from libs.security.secrets import SecretSettings
from libs.security.tokens import TokenSettings
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.authentication.app import AuthenticationSettings
from services.authentication.grants import GrantSettings
from services.identity.app import DEFINITION as IDENTITY
from services.identity.app import IdentitySettings
from services.otp_dispatch.app import DEFINITION as OTP_DISPATCH
from services.otp_dispatch.app import OtpDispatchSettings
from services.workflow.app import DEFINITION as WORKFLOW
from services.workflow.app import WorkflowSettings
from signgate_contracts import TOPICS
from tests.support.clock import MovableClock
from tests.support.kafka import TopicWatcher
from tests.support.otp_servers import SmtpSink, smtp_server
from tests.support.scanning import bus_leaks


@dataclass
class System:
    connections: ConnectionSettings
    services: dict[str, Service]
    secrets: dict[str, str]
    sandbox: Path
    clock: MovableClock
    smtp: SmtpSink
    watch: TopicWatcher
    """Every registry topic and its dead letters, from the system's start."""
    identity_clock: MovableClock | None = None
    replicas: list[Service] | None = None
    """Every running instance, when each service runs as several (``services`` holds the first of each)."""


@contextlib.asynccontextmanager
async def running_system(provisioned: ConnectionSettings, workdir: Path, *,
                         identity_clock: MovableClock | None = None,
                         identity: dict[str, Any] | None = None, replicas: int = 1) -> AsyncIterator[System]:
    """Start the four services (identity on ``identity_clock`` if given, else the wall clock, and
    with the ``identity`` settings given), each as ``replicas`` instances of one consumer group."""
    secrets = generate_secrets()
    clock = MovableClock()
    sandbox = workdir / "sandbox-outbox.jsonl"
    common = {"connections": provisioned, "retry_first_delay": 0.01}
    pepper = SecretSettings(pepper=secrets["SIGNGATE_SECRET_PEPPER"])
    tokens = TokenSettings(public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"])
    otp_store = OtpStoreSettings(pepper=secrets["SIGNGATE_OTP_PEPPER"])
    topics = [provisioned.topic(name) for t in TOPICS for name in (t.name, t.dlq)]
    identity_extra = {**({"clock": identity_clock} if identity_clock else {}), **(identity or {})}
    with smtp_server() as (smtp, smtp_port):
        settings = [
            (IDENTITY, IdentitySettings(**common, **identity_extra, secrets=pepper, tokens=TokenSettings(
                private_key=secrets["SIGNGATE_TOKEN_PRIVATE_KEY"], public_key=secrets["SIGNGATE_TOKEN_PUBLIC_KEY"]))),
            (WORKFLOW, WorkflowSettings(**common, secrets=pepper, tokens=tokens)),
            (AUTHENTICATION, AuthenticationSettings(
                **common, secrets=pepper, tokens=tokens, otp_store=otp_store, clock=clock,
                grants=GrantSettings(private_key=secrets["SIGNGATE_GRANT_PRIVATE_KEY"]),
            )),
            (OTP_DISPATCH, OtpDispatchSettings(
                **common, otp_store=otp_store, sandbox_outbox=sandbox, clock=clock, resend_cooldown_seconds=0,
                max_sends_per_destination=100, email_provider="smtp", smtp_host="127.0.0.1", smtp_port=smtp_port,
            )),
        ]
        async with contextlib.AsyncExitStack() as stack:
            watch = await stack.enter_async_context(TopicWatcher(provisioned.kafka_bootstrap, *topics))
            instances = [build_service(d, s) for d, s in settings for _ in range(replicas)]
            services = {s.definition.name: s for s in reversed(instances)}  # the first of each
            # started at once: each start is mostly a consumer-group join, seconds of waiting
            await asyncio.gather(*(stack.enter_async_context(s.app) for s in instances))
            logging.getLogger().setLevel(logging.INFO)
            yield System(provisioned, services, secrets, sandbox, clock, smtp, watch, identity_clock,
                         instances if replicas > 1 else None)
            # after every test that used it: the bus showed no hash, contact or credential it must not
            shown = bus_leaks(watch.records, provisioned)
            assert shown == [], f"the bus showed what it must not: {shown[:5]}"
