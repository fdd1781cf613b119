"""The load generator, run as its own process: ``python -m libs.tools.bench.loadgen JOB.json RESULT.json``.

The job names the broker (its Kafka security comes from the ``SIGNGATE_KAFKA_*`` environment the
bench passes, so no secret is written to the job file), the topic to send to, the topics answers come back on, and the
records to send (key, value, correlation id). Sent open loop at ``rate`` per second (record i
is due at ``start + i / rate`` whatever happened before it, and its latency counts from then,
so a stalled system cannot hide its queue), or flat out when ``rate`` is null. An answer is
the first record on an answer topic whose ``correlation_id`` header names a sent record.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.runtime.kafka_security import client_options
from libs.tools.bench.stats import summarize


async def run(job: dict) -> dict:
    records: list[list[str]] = job["records"]  # [key, value, correlation id]
    rate: float | None = job.get("rate")
    timeout: float = job.get("timeout", 120.0)
    answer_types: set[str] | None = set(job["answer_types"]) if job.get("answer_types") else None
    due: dict[bytes, float] = {}
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    security = client_options()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=job["bootstrap"],
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **security,
    )
    await consumer.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=job["bootstrap"],
        acks="all",
        linger_ms=1,
        max_batch_size=256 * 1024,
        **security,
    )
    await producer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in job["answer_topics"]
            for p in (consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, before the first send
            await consumer.position(tp)
        done = asyncio.Event()
        last_answer = 0.0

        async def receive() -> None:
            nonlocal last_answer
            while len(latencies) < len(records):
                batches = await consumer.getmany(timeout_ms=50, max_records=10_000)
                now = time.perf_counter()
                for batch in batches.values():
                    for record in batch:
                        correlation = dict(record.headers).get("correlation_id")
                        if not correlation:
                            continue
                        sent_at = due.pop(correlation, None)
                        if sent_at is None:
                            continue
                        kind = dict(record.headers).get("type", b"?").decode()
                        if answer_types is not None and kind not in answer_types:
                            due[correlation] = sent_at  # not the answer we wait for
                            continue
                        outcomes[kind] += 1
                        latencies.append(now - sent_at)
                        last_answer = now
            done.set()

        receiver = asyncio.create_task(receive())
        topic = job["topic"]
        start = time.perf_counter() + 0.05
        pending = []
        for i, (key, value, correlation) in enumerate(records):
            intended = start + i / rate if rate else time.perf_counter()
            if rate:
                delay = intended - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            due[correlation.encode()] = intended
            pending.append(
                await producer.send(
                    topic,
                    value.encode(),
                    key=key.encode(),
                    headers=[("correlation_id", correlation.encode())],
                )
            )
            if len(pending) >= 2_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            receiver.cancel()
        first = start
        elapsed = (last_answer or time.perf_counter()) - first
        return summarize(
            latencies,
            sent=len(records),
            elapsed=elapsed,
            offered_rate=rate,
            outcomes=dict(outcomes),
        ).as_dict()
    finally:
        await producer.stop()
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(100):
        await consumer._client.force_metadata_update()  # noqa: SLF001 (aiokafka has no public refresh)
        found = consumer.partitions_for_topic(topic)
        if found:
            return found
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


def run_job(work: Callable[[dict], Coroutine[Any, Any, dict]], argv: list[str]) -> int:
    """``JOB.json RESULT.json``: ``work`` on the job, on uvloop, its result written as JSON (every
    load generator of the bench is run so)."""
    job_file, result_file = argv
    job = json.loads(Path(job_file).read_text())
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(work(job))
    else:
        result = uvloop.run(work(job))
    Path(result_file).write_text(json.dumps(result))
    return 0


def main(argv: list[str]) -> int:
    return run_job(run, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
