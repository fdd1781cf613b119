"""The rules behind signgate's metrics: bounded label values, the partitions a replica reports, and
the service label on every series."""

from __future__ import annotations

from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaBroker, TestKafkaBroker

from libs.runtime.observability import (
    CALLER_REPLY,
    OTHER_DESTINATION,
    Destinations,
    Metrics,
    faststream_metrics,
)

DESTINATIONS = Destinations("t1.", "t1.signgate.replies.", ["signgate.workflow.events", "signgate.identity.replies"])


def samples(metrics: Metrics, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value
            for family in metrics.registry.collect() for s in family.samples if s.name == name}


def test_a_destination_is_a_registry_name_or_caller_reply_and_never_a_callers_topic() -> None:
    """Every caller's reply topic is one label value; registry topics and their dead-letter topics keep
    their registry names; anything else is "other"."""
    assert DESTINATIONS.label("t1.signgate.replies.portal-7f3a") == CALLER_REPLY
    assert DESTINATIONS.label("t1.signgate.replies.crm.instance-2") == CALLER_REPLY
    assert DESTINATIONS.label("t1.signgate.workflow.events") == "signgate.workflow.events"
    assert DESTINATIONS.label("t1.signgate.identity.replies") == "signgate.identity.replies"
    assert DESTINATIONS.label("t1.signgate.workflow.events.dlq") == "signgate.workflow.events.dlq"
    assert DESTINATIONS.label("t1.somewhere.else") == OTHER_DESTINATION
    assert DESTINATIONS.label("signgate.workflow.events") == OTHER_DESTINATION  # another deployment's


def test_published_messages_are_counted_under_the_bounded_destination() -> None:
    """Publishing to a thousand callers' reply topics makes one series, not a thousand."""
    metrics = Metrics("identity", destinations=DESTINATIONS)
    for n in range(1000):
        metrics.count_published("identity.user_authenticated", f"t1.signgate.replies.caller-{n}")
    assert samples(metrics, "signgate_messages_published_total") == {
        frozenset({("service", "identity"), ("type", "identity.user_authenticated"),
                   ("destination", CALLER_REPLY)}): 1000}


def test_lag_is_reported_for_the_assigned_partitions_only_and_a_revoked_one_disappears() -> None:
    """Each assigned partition's lag is its end offset less the committed one (none committed: all of
    it); a partition revoked in a rebalance is no longer reported by this replica."""
    metrics = Metrics("workflow")
    a, b = TopicPartition("w.commands", 0), TopicPartition("w.commands", 1)
    metrics.record_offsets({a: 5}, {a: 8, b: 2})
    assert samples(metrics, "signgate_consumer_lag") == {
        frozenset({("service", "workflow"), ("topic", "w.commands"), ("partition", "0")}): 3,
        frozenset({("service", "workflow"), ("topic", "w.commands"), ("partition", "1")}): 2}
    metrics.record_offsets({b: 2}, {b: 2})
    assert samples(metrics, "signgate_consumer_lag") == {
        frozenset({("service", "workflow"), ("topic", "w.commands"), ("partition", "1")}): 0}
    assert samples(metrics, "signgate_consumer_committed_offset") == {
        frozenset({("service", "workflow"), ("topic", "w.commands"), ("partition", "1")}): 2}


def test_process_metrics_are_in_the_service_registry_labelled_with_the_service() -> None:
    """CPU, resident memory and the Python version are served with the service label like the rest."""
    metrics = Metrics("otp_dispatch")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        found = samples(metrics, name)
        assert found and all(("service", "otp_dispatch") in labels for labels in found), name


async def test_faststream_labels_a_publish_to_a_callers_topic_as_caller_reply() -> None:
    """FastStream's own publish metrics take the bounded destination, not the topic as given."""
    metrics = Metrics("identity", destinations=DESTINATIONS)
    broker = KafkaBroker()
    broker.add_middleware(faststream_metrics(metrics))
    async with TestKafkaBroker(broker):
        await broker.publish(b"{}", topic="t1.signgate.replies.portal-7f3a")
        await broker.publish(b"{}", topic="t1.signgate.workflow.events")
    found = {dict(labels)["destination"] for labels in samples(metrics, "faststream_published_messages_total")}
    assert found == {CALLER_REPLY, "signgate.workflow.events"}
