"""The broker factory every service uses: one group per service, ack after commit, one pipeline."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from libs.messaging.pipeline import Pipeline, pipeline_middleware
from libs.settings import ConnectionSettings


def create_broker(service: str, settings: ConnectionSettings) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas; idempotence follows the settings."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"signgate-{service}",
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        request_timeout_ms=15_000,
        logger=logging.getLogger(f"signgate.{service}.broker"),  # through the JSON log pipeline
    )


def attach_pipeline(broker: KafkaBroker, pipeline: Pipeline) -> None:
    """Run every record this broker consumes through ``pipeline``."""
    broker.add_middleware(pipeline_middleware(pipeline))
