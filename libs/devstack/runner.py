"""`make run`: the embedded stack, provisioning, the four services and the gateway under honcho.

Servers named by ``SIGNGATE_*`` URLs are used instead of embedded ones. Ctrl-C stops the
services first (honcho), then the servers; nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager

from libs.devstack.dev_secrets import development_secrets
from libs.devstack.embedded import Endpoints, free_port
from libs.devstack.stack import DATA_DIR, ROOT, STACK_FILE, open_stack, uses_embedded_broker
from libs.runtime.logging import configure_logging, get_logger
from libs.runtime.settings import ConnectionSettings
from libs.security.required_secrets import own_secrets_only
from libs.tools.provision import ProvisionSettings, provision

log = get_logger(__name__)


def service_environment(endpoints: Endpoints, embedded_broker: bool) -> dict[str, str]:
    """The environment every service process gets: the stack, and development secrets unless set."""
    env = {**development_secrets(DATA_DIR), **os.environ}
    env.update(
        SIGNGATE_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
        SIGNGATE_DATABASE_URL=endpoints.database_url,
        SIGNGATE_REDIS_URL=endpoints.redis_url,
        PYTHONUNBUFFERED="1",
    )
    if embedded_broker:
        env["SIGNGATE_KAFKA_IDEMPOTENCE"] = "false"  # Tansu has no idempotent producer
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


GATEWAY = "gateway"
GATEWAY_PORT = 8080
"""Where the gateway answers when the port is free (identity's development portal URL names it)."""


def gateway_port(preferred: int = GATEWAY_PORT) -> int:
    """``preferred`` if nothing listens on it, else a free port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def banner(endpoints: Endpoints, gateway_url: str) -> str:
    python = Path(sys.executable)
    bin_dir = python.parent.relative_to(ROOT) if python.is_relative_to(ROOT) else python.parent
    return f"""
signgate is starting on
  Kafka     {endpoints.kafka_bootstrap}
  Postgres  {endpoints.database_url}
  Redis     {endpoints.redis_url}
  Gateway   {gateway_url}  (SigningHub, BoldSign, AssureSign over HTTP; {gateway_url}/docs)
  (also written to {STACK_FILE})

Send a first command from a second terminal and see its outcome:
  {bin_dir}/signgate send json \\
    '{{"type": "identity.authenticate_user", "user_name": "nobody@example.com", "password": "wrong"}}'
Or watch a whole scenario: make demo  (and `{bin_dir}/signgate tail` in a third terminal)
Codes sent by SMS or email land in {DATA_DIR / "sandbox-outbox.jsonl"}.

Ctrl-C stops everything.
"""


def http_banner(ports: dict[str, int]) -> str:
    lines = [
        "Each service serves /livez, /readyz, /metrics and its AsyncAPI (the gateway OpenAPI) document at /docs:"
    ]
    lines += [
        f"  {name:<15} http://127.0.0.1:{port}/livez  http://127.0.0.1:{port}/readyz"
        for name, port in ports.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    configure_logging("INFO", "console", service="run")
    embedded_broker = uses_embedded_broker()
    with open_stack(DATA_DIR) as endpoints:
        settings = ProvisionSettings(
            connections=ConnectionSettings(
                kafka_bootstrap=endpoints.kafka_bootstrap,
                database_url=endpoints.database_url,
                redis_url=endpoints.redis_url,
            )
        )
        asyncio.run(provision(settings, _services()))
        processes = parse_procfile((ROOT / "Procfile").read_text()).processes
        ports = {name: gateway_port() if name == GATEWAY else free_port() for name in processes}
        gateway_url = f"http://127.0.0.1:{ports[GATEWAY]}"
        stack = {**endpoints.__dict__, "gateway_url": gateway_url}
        STACK_FILE.write_text(json.dumps(stack, indent=2) + "\n")
        print(banner(endpoints, gateway_url), flush=True)
        manager = Manager()
        env = service_environment(endpoints, embedded_broker)
        print(http_banner(ports), flush=True)
        for name, command in processes.items():
            manager.add_process(
                name,
                command,
                env={**own_secrets_only(env, name), "PORT": str(ports[name])},
                cwd=str(ROOT),
            )
        try:
            manager.loop()
        finally:
            STACK_FILE.unlink(missing_ok=True)
    return manager.returncode or 0


def _services():
    from services.registry import SERVICES

    return SERVICES


if __name__ == "__main__":
    sys.exit(main())
