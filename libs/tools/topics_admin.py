"""Creating the registry's topics (and their dead-letter topics) with their partitions and retention."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from libs.runtime.kafka_security import client_options, start_client
from libs.runtime.logging import get_logger
from libs.runtime.settings import ConnectionSettings
from signgate_contracts.topics import DLQ_PARTITIONS, DLQ_RETENTION, TOPICS, Topic

log = get_logger(__name__)


def topic_specs(
    settings: ConnectionSettings, topics: Iterable[Topic] = TOPICS, replication_factor: int = 1
) -> list[NewTopic]:
    """Every topic to create: each registry topic and its DLQ, named for this deployment."""
    specs = []
    for topic in topics:
        specs.append(
            _new_topic(
                settings.topic(topic.name),
                topic.partitions,
                int(topic.retention.total_seconds() * 1000),
                replication_factor,
            )
        )
        specs.append(
            _new_topic(
                settings.topic(topic.dlq),
                DLQ_PARTITIONS,
                int(DLQ_RETENTION.total_seconds() * 1000),
                replication_factor,
            )
        )
    return specs


def _new_topic(name: str, partitions: int, retention_ms: int, replication_factor: int) -> NewTopic:
    return NewTopic(
        name,
        partitions,
        replication_factor,
        topic_configs={"retention.ms": str(retention_ms), "cleanup.policy": "delete"},
    )


async def create_topics(
    settings: ConnectionSettings, topics: Iterable[Topic] = TOPICS, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="signgate-provision",
        **client_options(settings),
    )
    try:
        await start_client(admin, settings)
        existing = set(await admin.list_topics())
        missing = [
            s for s in topic_specs(settings, topics, replication_factor) if s.name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            log.info("topics created", count=len(missing))
        return [spec.name for spec in missing]
    finally:
        await admin.close()
