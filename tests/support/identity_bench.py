"""``python -m tests.support.identity_bench``: what authentication costs, measured on this machine.

Prints
- the raw argon2id verify rate of the configured parameters (one thread, and one per core);
- median answer latency of "unknown user" vs "wrong password", both inside the handler (the
  use case on real Postgres and Redis, no broker) and end to end (command in, reply out);
- authentications per second through the identity service, against the raw argon2 rate.

It starts its own embedded stack (or uses the servers ``SIGNGATE_*`` URLs name) with a fresh
topic and key prefix. Nothing here is asserted: these are figures for a note, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from libs.provision import ProvisionSettings, provision
from libs.secrets import SecretHasher, SecretSettings, generate_pepper
from libs.service import Unit, build_service
from libs.settings import ConnectionSettings
from libs.stack import open_stack, uses_embedded_broker
from libs.tokens import TokenIssuer, TokenSettings, generate_key_pair
from libs.topics_admin import create_topics
from services.identity import use_cases
from services.identity.app import DEFINITION, IdentitySettings
from signgate_contracts import Topic, TopicKind, encode
from signgate_contracts.identity import AccountMembership, AuthenticateUser, RegisterUser
from signgate_contracts.topics import IDENTITY_COMMANDS, IDENTITY_EVENTS
from tests.support.kafka import TopicWatcher, correlated, document

REPLIES = Topic("bench.identity.replies", TopicKind.REPLIES, "user name", 1,
                timedelta(hours=1), (), "The bench's reply topic.")


def raw_argon2_rate(hasher: SecretHasher, seconds: float, threads: int) -> float:
    """Verifications per second of one stored hash, by ``threads`` threads for ``seconds``."""
    stored = hasher.hash_now("bench password")
    deadline = time.perf_counter() + seconds

    def work() -> int:
        done = 0
        while time.perf_counter() < deadline:
            hasher.verify_now(stored, "wrong password")
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: work(), range(threads)))
    return total / (time.perf_counter() - started)


async def in_handler_latency(service, names: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """Seconds the use case takes for an unknown user and for a wrong password, interleaved."""
    unknown, wrong = [], []
    pool = service.resources.pool
    for i in range(rounds):
        for bucket, name in ((unknown, f"nobody-{uuid.uuid4().hex}"), (wrong, names[i % len(names)])):
            command = AuthenticateUser(user_name=name, password=f"wrong-{uuid.uuid4().hex}")
            async with pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                started = time.perf_counter()
                await use_cases.authenticate_user(command, Unit(service.resources, connection))
                bucket.append(time.perf_counter() - started)
                await transaction.rollback()  # leaves no failure counted in Postgres
    return unknown, wrong


async def main(attempts: int, rounds: int, users: int) -> None:
    keys = generate_key_pair()
    secrets = SecretSettings(pepper=SecretStr(generate_pepper()))
    hasher = SecretHasher.from_settings(secrets)
    print(f"argon2id parameters: m={secrets.argon2_memory_kib} KiB, t={secrets.argon2_time_cost}, "
          f"p={secrets.argon2_parallelism}")
    one = raw_argon2_rate(hasher, 3.0, 1)
    two = raw_argon2_rate(hasher, 3.0, 2)
    print(f"raw argon2id verify: {one:.1f}/s on 1 thread, {two:.1f}/s on 2 threads")

    with tempfile.TemporaryDirectory() as data, open_stack(Path(data)) as endpoints:
        run = f"bench{uuid.uuid4().hex[:6]}"
        connections = ConnectionSettings(
            kafka_bootstrap=endpoints.kafka_bootstrap, database_url=endpoints.database_url,
            redis_url=endpoints.redis_url, kafka_idempotence=not uses_embedded_broker(),
            topic_prefix=f"{run}.", redis_prefix=f"{run}:", log_level="WARNING",
        )
        from services.registry import SERVICES

        await provision(ProvisionSettings(connections=connections), SERVICES)
        await create_topics(connections, [REPLIES])
        settings = IdentitySettings(
            connections=connections, secrets=secrets, outbox_poll_interval=0.2,
            tokens=TokenSettings(private_key=SecretStr(keys.private_key), public_key=keys.public_key),
            lockout_threshold=100, lockout_hard_after=100_000,
        )
        service = build_service(DEFINITION, settings)
        reply_to = connections.topic(REPLIES.name)
        admin = TokenIssuer(keys.private_key).issue("operator:bench", "operator:bench", roles=["admin"]).token
        producer = AIOKafkaProducer(bootstrap_servers=connections.kafka_bootstrap, acks="all")
        async with service.app, contextlib.AsyncExitStack() as stack:
            await producer.start()
            stack.push_async_callback(producer.stop)
            watcher = await stack.enter_async_context(TopicWatcher(
                connections.kafka_bootstrap, reply_to, connections.topic(IDENTITY_EVENTS.name)))

            async def send(command) -> None:
                await producer.send_and_wait(connections.topic(IDENTITY_COMMANDS.name), encode(command),
                                             key=command.user_name.lower().encode())

            async def answered(command) -> None:
                await watcher.wait_for(lambda r: correlated(r, command.correlation_id), timeout=120)

            names = [f"bench-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(users)]
            account = AccountMembership(name="Bench", context_identifier=uuid.uuid4(), is_primary=True)
            registrations = [RegisterUser(user_name=n, accounts=[account], password="bench password",
                                          access_token=admin) for n in names]
            for command in registrations:
                await send(command)
            for command in registrations:
                await answered(command)

            unknown, wrong = await in_handler_latency(service, names, rounds)
            print(f"in the handler (median of {rounds}): unknown user {statistics.median(unknown) * 1000:.1f} ms, "
                  f"wrong password {statistics.median(wrong) * 1000:.1f} ms")

            unknown, wrong = [], []
            for i in range(rounds):
                for bucket, name in ((unknown, f"nobody-{uuid.uuid4().hex}"), (wrong, names[i % users])):
                    command = AuthenticateUser(user_name=name, password=f"wrong-{uuid.uuid4().hex}",
                                               reply_to=reply_to)
                    started = time.perf_counter()
                    await send(command)
                    await watcher.wait_for(lambda r, c=command: r.topic == reply_to and correlated(r, c.correlation_id))
                    bucket.append(time.perf_counter() - started)
            print(f"end to end (median of {rounds}): unknown user {statistics.median(unknown) * 1000:.1f} ms, "
                  f"wrong password {statistics.median(wrong) * 1000:.1f} ms")

            commands = [AuthenticateUser(user_name=names[i % users], password="bench password", reply_to=reply_to)
                        for i in range(attempts)]
            expected = {str(c.correlation_id) for c in commands}
            started = time.perf_counter()
            for command in commands:
                await send(command)
            await watcher.wait_for(
                lambda r: r.topic == reply_to and document(r)["correlation_id"] in expected
                and document(r)["type"] == "identity.authentication_succeeded",
                count=attempts, timeout=600)
            elapsed = time.perf_counter() - started
            print(f"through the service: {attempts} successful authentications in {elapsed:.1f} s = "
                  f"{attempts / elapsed:.1f}/s (one service process; raw argon2id {one:.1f}/s per thread, "
                  f"{two:.1f}/s on 2 threads)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.attempts, args.rounds, args.users))
