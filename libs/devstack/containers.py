"""Servers from testcontainers, for test runs where a Docker engine is available."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from libs.devstack.embedded import DATABASE, Endpoints

KAFKA_IMAGE = "apache/kafka:3.9.1"
POSTGRES_IMAGE = "postgres:17.6-alpine"
REDIS_IMAGE = "redis:7.4.5-alpine"


def postgres_url(host: str, port: int | str, user: str, password: str) -> str:
    return f"postgresql://{user}:{password}@{host}:{port}/{DATABASE}"


@contextlib.contextmanager
def container_stack() -> Iterator[Endpoints]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with (
        KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka,
        PostgresContainer(POSTGRES_IMAGE, dbname=DATABASE, driver=None) as postgres,
        RedisContainer(REDIS_IMAGE) as redis,
    ):
        yield Endpoints(
            kafka_bootstrap=kafka.get_bootstrap_server(),
            database_url=postgres_url(
                postgres.get_container_host_ip(),
                postgres.get_exposed_port(5432),
                postgres.username,
                postgres.password,
            ),
            redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        )
