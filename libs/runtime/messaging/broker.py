"""The broker factory every service uses: one group per service, ack after commit, batches as records."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from libs.runtime.kafka_security import broker_options
from libs.runtime.messaging.pipeline import batch_middleware
from libs.runtime.settings import ConnectionSettings


def create_broker(service: str, settings: ConnectionSettings) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas; idempotence and security follow
    the settings."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"signgate-{service}",
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        logger=logging.getLogger(f"signgate.{service}.broker"),  # through the JSON log pipeline
        **broker_options(settings),
    )


def attach_batches(broker: KafkaBroker, service: str) -> None:
    """Hand every batch this broker fetches, as records, to its subscriber, named on its log lines."""
    broker.add_middleware(batch_middleware(service))
