"""Choosing servers: the SIGNGATE_* URLs where set, embedded ones for the rest, containers on request."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from libs.devstack import containers, stack
from libs.devstack.embedded import Endpoints

EXTERNAL = {
    "SIGNGATE_KAFKA_BOOTSTRAP": "kafka.example:9092",
    "SIGNGATE_DATABASE_URL": "postgresql://u@db.example/signgate",
    "SIGNGATE_REDIS_URL": "redis://cache.example:6379/0",
}


def test_external_urls_are_read_by_kind() -> None:
    """Each configured URL is used for its kind of server; empty variables count as unset."""
    environ = {**EXTERNAL, "SIGNGATE_REDIS_URL": ""}
    assert stack.external_urls(environ) == {
        "kafka": "kafka.example:9092", "postgres": "postgresql://u@db.example/signgate",
    }


def test_fully_configured_environment_starts_no_embedded_server(tmp_path: Path) -> None:
    """With all three URLs set, the stack yields them and starts no server."""
    with stack.open_stack(tmp_path, EXTERNAL) as endpoints:
        assert endpoints == Endpoints(*EXTERNAL.values())
    assert not any(tmp_path.iterdir())


def test_embedded_broker_is_detected_for_idempotence() -> None:
    """Producer idempotence is off only when the broker is the embedded one."""
    assert stack.uses_embedded_broker({})
    assert not stack.uses_embedded_broker(EXTERNAL)
    assert not stack.uses_embedded_broker({"SIGNGATE_TEST_BACKEND": "containers"})


def test_containers_backend_is_chosen_by_the_test_backend_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGNGATE_TEST_BACKEND=containers takes servers from testcontainers instead of wheels."""
    expected = Endpoints("k:1", "postgresql://p", "redis://r")

    @contextlib.contextmanager
    def fake_container_stack():
        yield expected

    monkeypatch.setattr(containers, "container_stack", fake_container_stack)
    with stack.open_stack(tmp_path, {"SIGNGATE_TEST_BACKEND": "containers"}) as endpoints:
        assert endpoints == expected


def test_container_postgres_url_names_the_signgate_database() -> None:
    """The container Postgres URL carries the credentials, mapped port and the signgate database."""
    assert containers.postgres_url("localhost", 32768, "test", "secret") == (
        "postgresql://test:secret@localhost:32768/signgate"
    )


def test_container_images_are_pinned() -> None:
    """Container images name a version, so test runs are repeatable."""
    for image in (containers.KAFKA_IMAGE, containers.POSTGRES_IMAGE, containers.REDIS_IMAGE):
        name, _, tag = image.partition(":")
        assert name and tag and tag != "latest"
