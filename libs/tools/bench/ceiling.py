"""The ceiling: a bare aiokafka echo, ``python -m libs.tools.bench.ceiling BOOTSTRAP REDIS_URL IN OUT PREFIX``.

For every record of topic IN: one Redis round trip (a small Lua script that counts the key,
like a verification touches its recipient's keys), then a reply on OUT carrying the record's
``correlation_id`` header. Offsets are committed after each fetched batch's replies are
acknowledged by the broker (Kafka security from the ``SIGNGATE_KAFKA_*`` environment). No decoding, no Postgres, no framework: the most a Python
consumer of this broker and this Redis can do on this machine.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from libs.runtime.kafka_security import client_options
from libs.runtime.redis_client import create_redis

ECHO = "local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 60000) return n"


async def echo(bootstrap: str, redis_url: str, source: str, target: str, prefix: str) -> None:
    client = create_redis(redis_url)
    script = client.register_script(ECHO)
    security = client_options()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
        **security,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1, **security)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            sent = []
            for batch in batches.values():
                for record in batch:
                    await script(keys=[f"{prefix}ceiling:{record.key.decode()}"], args=[])
                    sent.append(
                        await producer.send(
                            target,
                            record.value,
                            key=record.key,
                            headers=[
                                ("correlation_id", dict(record.headers).get("correlation_id", b"")),
                                ("type", b"bench.echo"),
                            ],
                        )
                    )
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(echo(*sys.argv[1:6]))
