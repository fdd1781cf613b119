"""The message spine on a real broker, Postgres and Redis, through the test ledger service."""

from __future__ import annotations

import json
import uuid

import pytest

from libs.runtime.service import Service
from libs.runtime.settings import ConnectionSettings
from signgate_contracts import encode
from tests.integration.ledger.app import COMMANDS, EVENTS, Deposit
from tests.support.kafka import TopicWatcher, document, producer


async def send(connections: ConnectionSettings, *payloads: bytes, key: str = "acct") -> None:
    async with producer(connections.kafka_bootstrap) as client:
        for payload in payloads:
            await client.send_and_wait(connections.topic(COMMANDS.name), payload, key=key.encode())


def is_event(connections: ConnectionSettings, type_: str, **fields: object):
    def match(record) -> bool:
        if record.topic != connections.topic(EVENTS.name):
            return False
        body = document(record)
        return body["type"] == type_ and all(body.get(k) == v for k, v in fields.items())

    return match


def is_dead_letter(connections: ConnectionSettings):
    return lambda record: record.topic == connections.topic(COMMANDS.dlq)


async def entries(service: Service, account: str) -> list[tuple[uuid.UUID, int]]:
    assert service.resources.pool is not None
    rows = await service.resources.pool.fetch(
        "SELECT event_id, amount FROM entries WHERE account = $1 ORDER BY seq", account
    )
    return [(row["event_id"], row["amount"]) for row in rows]


def account() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


async def test_deposit_is_applied_and_its_event_carries_the_correlation(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A valid command is applied once and its event carries the command's correlation and causation."""
    command = Deposit(account=account(), amount=5)
    await send(ledger_connections, encode(command), key=command.account)

    outcome = await ledger_watch.outcome(command.correlation_id)

    assert outcome["type"] == "ledger.deposited"
    assert outcome["causation_id"] == str(command.event_id)
    assert await entries(ledger_service, command.account) == [(command.event_id, 5)]


async def test_transient_failure_is_retried_until_it_succeeds(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A handler that fails twice with a connection error is retried and applied on the third try."""
    command = Deposit(account=account(), amount=7, behaviour="transient", transient_failures=2)
    await send(ledger_connections, encode(command), key=command.account)

    outcome = await ledger_watch.outcome(command.correlation_id)

    assert outcome["type"] == "ledger.deposited"
    redis = ledger_service.resources.redis
    assert redis is not None
    assert int(await redis.get(f"{ledger_connections.redis_prefix}ledger:attempts:{command.event_id}")) == 3


async def test_lasting_transient_failure_pauses_the_partition_until_the_dependency_is_back(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A handler still failing transiently after its retries is delivered again, not dead-lettered:
    it is applied once the dependency is back, before the next command of its key."""
    key = account()
    retries = ledger_service.resources.settings.retry_attempts
    failing = Deposit(account=key, amount=1, behaviour="transient", transient_failures=retries + 2)
    following = Deposit(account=key, amount=2)
    await send(ledger_connections, encode(failing), encode(following), key=key)

    applied_first = await ledger_watch.outcome(failing.correlation_id)
    applied_next = await ledger_watch.outcome(following.correlation_id)

    assert applied_first["type"] == applied_next["type"] == "ledger.deposited"
    assert await entries(ledger_service, key) == [(failing.event_id, 1), (following.event_id, 2)]
    redis = ledger_service.resources.redis
    assert redis is not None
    assert int(await redis.get(f"{ledger_connections.redis_prefix}ledger:attempts:{failing.event_id}")) == retries + 3
    assert not [r for r in ledger_watch.records if is_dead_letter(ledger_connections)(r) and document(r)["key"] == key]


async def test_a_record_that_aborts_its_lane_transaction_is_settled_alone_and_its_lane_goes_on(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A statement Postgres refuses outside any savepoint aborts the lane's transaction: the record
    that did it is dead-lettered once and answered 500, and the records before and after it on its
    key, and on other keys, are applied once each, in order."""
    key, other = account(), account()
    before, after = Deposit(account=key, amount=1), Deposit(account=key, amount=3)
    aborting = Deposit(account=key, amount=2, behaviour="aborts")
    beside = Deposit(account=other, amount=4)
    await send(ledger_connections, encode(before), encode(aborting), encode(after), key=key)
    await send(ledger_connections, encode(beside), key=other)

    rejection = await ledger_watch.outcome(aborting.correlation_id)
    for command in (before, after, beside):
        assert (await ledger_watch.outcome(command.correlation_id))["type"] == "ledger.deposited"
    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["key"] == key)

    assert (rejection["status"], rejection["code"]) == (500, "internal_error")
    assert document(dead)["reason"] == "failed: InvalidTextRepresentationError"
    assert await entries(ledger_service, key) == [(before.event_id, 1), (after.event_id, 3)]
    assert await entries(ledger_service, other) == [(beside.event_id, 4)]
    assert len(ledger_watch.matching(lambda r: document(r).get("correlation_id") == str(aborting.correlation_id)
                                     and r.topic == ledger_connections.topic(EVENTS.name))) == 1


async def test_a_record_failing_transiently_while_its_dependencies_answer_is_dead_lettered_after_max_deliveries(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A record that fails transiently on every try while Postgres and Redis answer is the record's
    fault, not an outage: after ``max_deliveries`` deliveries it is dead-lettered and answered 500,
    the redeliveries are counted, and the next record of its key is applied."""
    key = account()
    settings = ledger_service.resources.settings
    failing = Deposit(account=key, amount=1, behaviour="transient", transient_failures=10**6)
    following = Deposit(account=key, amount=2)
    redelivered = ledger_service.metrics.redelivered.labels("ledger")
    redelivered_before = redelivered._value.get()
    await send(ledger_connections, encode(failing), encode(following), key=key)

    rejection = await ledger_watch.outcome(failing.correlation_id)
    applied = await ledger_watch.outcome(following.correlation_id)
    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["key"] == key)

    assert rejection["status"] == 500 and applied["type"] == "ledger.deposited"
    assert document(dead)["reason"] == f"failed after {settings.max_deliveries} deliveries: ConnectionError"
    redis = ledger_service.resources.redis
    assert redis is not None
    attempts = int(await redis.get(f"{ledger_connections.redis_prefix}ledger:attempts:{failing.event_id}"))
    assert attempts == settings.max_deliveries * settings.retry_attempts
    assert redelivered._value.get() - redelivered_before >= settings.max_deliveries - 1
    assert await entries(ledger_service, key) == [(following.event_id, 2)]


async def test_same_event_id_delivered_twice_is_applied_once(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A command delivered twice with one event_id changes state once and yields one outcome."""
    key = account()
    command = Deposit(account=key, amount=3)
    marker = Deposit(account=key, amount=4)  # same partition: handled after both copies
    await send(ledger_connections, encode(command), encode(command), encode(marker), key=key)

    await ledger_watch.outcome(marker.correlation_id)

    assert await entries(ledger_service, key) == [(command.event_id, 3), (marker.event_id, 4)]
    outcomes = ledger_watch.matching(is_event(ledger_connections, "ledger.deposited", account=key, amount=3))
    assert len({document(r)["event_id"] for r in outcomes}) == 1


async def test_undecodable_payload_is_dead_lettered_and_consumption_goes_on(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """Bytes that are not a message land in the DLQ as a digest with the reason, and the next
    command is handled."""
    key = account()
    garbage = b"\x00\xffnot json {"
    following = Deposit(account=key, amount=9)
    await send(ledger_connections, garbage, encode(following), key=key)

    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["key"] == key
    )
    applied = await ledger_watch.outcome(following.correlation_id)

    assert document(dead)["reason"].startswith("undecodable: not JSON")
    assert document(dead)["payload"] is None
    assert document(dead)["payload_size"] == len(garbage)
    assert applied["type"] == "ledger.deposited"


async def test_json_nested_too_deep_to_parse_is_dead_lettered_not_failed(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A JSON object nested deeper than the parser's recursion limit is dead-lettered as undecodable,
    with no 500 rejection, and the next command is handled."""
    key = account()
    nested = b'{"type": "ledger.deposit", "body": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    following = Deposit(account=key, amount=3)
    await send(ledger_connections, nested, encode(following), key=key)

    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["key"] == key
    )
    applied = await ledger_watch.outcome(following.correlation_id)
    rejections = [r for r in ledger_watch.records if r.topic == ledger_connections.topic(EVENTS.name)
                  and r.key == key.encode() and document(r)["type"] == "command.rejected"]

    assert document(dead)["reason"] == "undecodable: not JSON: RecursionError"
    assert applied["type"] == "ledger.deposited"
    assert rejections == []


async def test_command_without_ids_takes_ids_from_its_position(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A valid command sent without event and correlation ids is applied under ids derived from its
    record's position, so its outcome can be found and a redelivery is recognised."""
    key = account()
    async with producer(ledger_connections.kafka_bootstrap) as client:
        sent = await client.send_and_wait(ledger_connections.topic(COMMANDS.name), json.dumps(
            {"type": "ledger.deposit", "account": key, "amount": 4}).encode(), key=key.encode())
    position = uuid.uuid5(uuid.NAMESPACE_URL, f"kafka:{sent.topic}/{sent.partition}/{sent.offset}")

    outcome = await ledger_watch.outcome(position)

    assert (outcome["type"], outcome["causation_id"]) == ("ledger.deposited", str(position))
    assert await entries(ledger_service, key) == [(position, 4)]


async def test_invalid_command_is_rejected_naming_the_field(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A command whose body breaks the contract gets a 400 naming the offending field, not a DLQ entry."""
    correlation_id = str(uuid.uuid4())
    body = {"type": "ledger.deposit", "correlation_id": correlation_id, "account": "x", "amount": "lots"}
    await send(ledger_connections, json.dumps(body).encode())

    rejection = await ledger_watch.outcome(correlation_id)

    assert (rejection["status"], rejection["code"], rejection["field"]) == (400, "invalid_command", "amount")
    assert "lots" not in json.dumps(rejection)


async def test_refusal_becomes_a_rejection_with_its_status(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A domain refusal reaches the caller as `command.rejected` with the refusal's status, code and text."""
    command = Deposit(account=account(), amount=1, behaviour="refuse")
    await send(ledger_connections, encode(command), key=command.account)

    rejection = await ledger_watch.outcome(command.correlation_id)

    assert (rejection["status"], rejection["code"], rejection["message"]) == (
        404, "account_not_found", "Account not found"
    )
    assert rejection["causation_id"] == str(command.event_id)


async def test_unknown_type_is_rejected_and_dead_lettered(
    ledger_service: Service, ledger_connections: ConnectionSettings, ledger_watch: TopicWatcher
) -> None:
    """A message type the topic does not carry is answered with a 400 and kept in the DLQ."""
    correlation_id = str(uuid.uuid4())
    await send(ledger_connections, json.dumps({"type": "ledger.withdraw", "correlation_id": correlation_id}).encode())

    rejection = await ledger_watch.outcome(correlation_id)
    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["payload"]
        and document(r)["payload"].get("correlation_id") == correlation_id
    )

    assert (rejection["status"], rejection["code"]) == (400, "unknown_message_type")
    assert document(dead)["reason"].startswith("unknown type")


async def test_failed_message_is_not_skipped_when_a_later_one_succeeds(
    ledger_service: Service,
    ledger_connections: ConnectionSettings,
    ledger_watch: TopicWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When settling a record fails transiently (its dead letter cannot be made), the record is
    delivered again before the next one on its partition is committed (FastStream issue #2618)."""
    key = account()
    poison = Deposit(account=key, amount=1, behaviour="poison")
    following = Deposit(account=key, amount=2)
    pipeline = ledger_service.pipeline
    real_settle = pipeline.settle
    failures = []

    def settle_failing_once(record, envelope, error):
        if not failures:
            failures.append(record.offset)
            raise ConnectionError("dead letter unavailable")
        return real_settle(record, envelope, error)

    monkeypatch.setattr(pipeline, "settle", settle_failing_once)
    await send(ledger_connections, encode(poison), encode(following), key=key)

    rejection = await ledger_watch.outcome(poison.correlation_id)
    [dead] = await ledger_watch.wait_for(
        lambda r: is_dead_letter(ledger_connections)(r) and document(r)["key"] == key
    )
    applied = await ledger_watch.outcome(following.correlation_id)

    assert len(failures) == 1 and document(dead)["offset"] == failures[0]
    assert rejection["status"] == 500
    assert applied["type"] == "ledger.deposited"
    order = [document(r)["correlation_id"] for r in ledger_watch.records if r.topic.endswith(EVENTS.name)]
    assert order.index(str(poison.correlation_id)) < order.index(str(following.correlation_id))
