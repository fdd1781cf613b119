"""Which servers to use: the ``SIGNGATE_*`` URLs where they are set, embedded ones for the rest.

One starter serves `make run` and the test fixtures. With ``SIGNGATE_TEST_BACKEND=containers``
(only where a Docker engine runs) the servers come from testcontainers instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from libs.devstack.embedded import EmbeddedStack, Endpoints
from libs.runtime.settings import DATA_DIR, ROOT

__all__ = ["DATA_DIR", "ROOT", "STACK_FILE", "open_stack", "uses_embedded_broker", "external_urls"]

STACK_FILE = DATA_DIR / "stack.json"
"""Where a running `make run` says where its servers listen, for tools to find them."""

ENV = {
    "kafka": "SIGNGATE_KAFKA_BOOTSTRAP",
    "postgres": "SIGNGATE_DATABASE_URL",
    "redis": "SIGNGATE_REDIS_URL",
}


def external_urls(environ: Mapping[str, str]) -> dict[str, str]:
    """The servers the environment names, by kind."""
    return {kind: environ[var] for kind, var in ENV.items() if environ.get(var)}


@contextlib.contextmanager
def open_stack(data_dir: Path, environ: Mapping[str, str] | None = None) -> Iterator[Endpoints]:
    """Yield endpoints for all three servers, starting embedded ones for those not configured."""
    environ = os.environ if environ is None else environ
    if environ.get("SIGNGATE_TEST_BACKEND") == "containers":
        from libs.devstack.containers import container_stack

        with container_stack() as endpoints:
            yield endpoints
        return
    urls = external_urls(environ)
    embedded = EmbeddedStack(data_dir, **{kind: kind not in urls for kind in ENV})
    with embedded:
        urls.update(embedded.urls)
        yield Endpoints(urls["kafka"], urls["postgres"], urls["redis"])


def uses_embedded_broker(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return (
        "kafka" not in external_urls(environ)
        and environ.get("SIGNGATE_TEST_BACKEND") != "containers"
    )
