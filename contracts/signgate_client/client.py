"""`SignGateClient`: publish a command, and get back its outcome and any reply, by correlation id.

One producer and one consumer per client. The consumer has no group: it is assigned every
partition of the four outcome topics and of the client's own reply topic, positioned at their
ends when the client starts, and hands each record whose correlation id a `send` is waiting for
to that `send`. The reply topic is the caller's own (created when missing, 1 partition, records
kept 15 minutes); the client sets it as every command's ``reply_to``, so tokens, grants and query
answers come back only to it. It must be named under the deployment's caller reply prefix
(``<topic_prefix>signgate.replies.``): services refuse any other ``reply_to`` with 400
``invalid_reply_to``. Reply topics are not deleted on close: a service that has published to one
would create it again on its next metadata refresh. Give a long-lived caller a stable
``reply_topic``; a generated one (``signgate.replies.client.<uuid>``) holds nothing after its
retention, and an operator removes such empty topics with ``kafka-topics --delete``.

On a secured cluster, give the client its security as keyword arguments (aiokafka's names):
``security_protocol`` (``PLAINTEXT``, the default, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``);
``sasl_mechanism`` (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, ``OAUTHBEARER``) with
``sasl_username`` and ``sasl_password``, or ``sasl_oauth_token_provider`` for OAUTHBEARER; and for
TLS either an ``ssl_context`` or ``ssl_cafile`` (the CAs of the brokers' certificates; the system's
when unset) with ``ssl_certfile`` and ``ssl_keyfile`` for mutual TLS. Host names are verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Generic, TypeVar, overload

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from signgate_client.routing import Answer, Progress, Route, answers_command, progress, route
from signgate_client.security import kafka_security, start_checked
from signgate_client.stream import assign, correlation_of, partitions_of
from signgate_contracts import authentication, identity, workflow
from signgate_contracts.codec import decode, encode
from signgate_contracts.envelope import Command, Event, Message
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import BY_NAME, CALLER_REPLY_PREFIX, OUTCOME_TOPIC, Topic, TopicKind

REPLY_RETENTION = timedelta(minutes=15)
"""How long the broker keeps a reply topic the client creates: replies carry credentials."""


ReplyT = TypeVar("ReplyT", bound=Message, covariant=True)
"""What a reply to the command can be: `SignGateClient.send` names it for each command that has one."""


@dataclass(frozen=True)
class Outcome(Generic[ReplyT]):
    """What a command caused: its event (the domain event or `command.rejected`), its reply to
    the caller (a token, a grant, a query's answer) and any effects the caller asked to see.

    ``Outcome[AuthenticationSucceeded | AuthenticationFailed]`` is what an `AuthenticateUser`
    gets; a command without a reply gets ``Outcome[Message]`` with ``reply`` None."""

    command: Command
    event: Event | None
    reply: ReplyT | None = None
    effects: dict[str, Message] = field(default_factory=dict)

    @property
    def rejection(self) -> CommandRejected | None:
        return self.event if isinstance(self.event, CommandRejected) else None

    @property
    def rejected(self) -> bool:
        return self.rejection is not None

    @property
    def result(self) -> Event | ReplyT | None:
        """The message that answers the command: its event (or rejection), else a query's reply."""
        return self.event if self.event is not None else self.reply

    def accepted(self) -> Outcome[ReplyT]:
        """This outcome, or `Rejected` when the command was refused."""
        if self.rejection is not None:
            raise Rejected(self.rejection)
        return self


class Rejected(Exception):
    """A command was refused; carries the `command.rejected` event."""

    def __init__(self, rejection: CommandRejected) -> None:
        super().__init__(
            f"{rejection.command_type} rejected: {rejection.status} {rejection.code}: {rejection.message}"
        )
        self.rejection = rejection


class OutcomeTimeout(TimeoutError):
    """No complete outcome arrived in time; ``partial`` holds what did."""

    def __init__(self, partial: Outcome[Message], timeout: float) -> None:
        super().__init__(
            f"no outcome for {partial.command.type} ({partial.command.correlation_id}) within {timeout}s"
        )
        self.partial = partial


@dataclass
class _Pending:
    command: Command
    route: Route
    wants_reply: bool
    effects: frozenset[str]
    event: Event | None = None
    reply: Message | None = None
    seen: dict[str, Message] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def outcome(self) -> Outcome[Message]:
        return Outcome(self.command, self.event, self.reply, dict(self.seen))

    def progress(self) -> Progress:
        return progress(
            self.route.answer,
            self.event,
            self.reply,
            reply_expected=self.wants_reply,
            effects=self.effects,
            seen=self.seen,
        )


class SignGateClient:
    """``async with SignGateClient(bootstrap) as client: outcome = await client.send(command)``."""

    def __init__(
        self,
        bootstrap: str,
        reply_topic: str | None = None,
        topic_prefix: str = "",
        *,
        grant_wait: float = 2.0,
        client_id: str = "signgate-client",
        fetch_max_wait_ms: int = 500,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str = "PLAIN",
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        sasl_oauth_token_provider: AbstractTokenProvider | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ssl_cafile: str | Path | None = None,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self._security = kafka_security(
            security_protocol,
            sasl_mechanism,
            sasl_username,
            sasl_password,
            sasl_oauth_token_provider,
            ssl_context,
            ssl_cafile,
            ssl_certfile,
            ssl_keyfile,
        )
        self.topic_prefix = topic_prefix
        self.reply_topic = (
            reply_topic or f"{topic_prefix}{CALLER_REPLY_PREFIX}client.{uuid.uuid4().hex}"
        )
        self.grant_wait = grant_wait
        """How long to wait for a document-access grant after a success (none comes while the
        recipient still owes another method)."""
        self._client_id = client_id
        self._fetch_max_wait_ms = fetch_max_wait_ms
        """Longest the broker may hold the reader's fetch while nothing arrives (a broker that
        holds it whole, as the embedded one does, delays every outcome by up to this)."""
        self._pending: dict[str, _Pending] = {}
        self._watchers: dict[str, list[Callable[[Message], None]]] = {}
        self._authentic: Callable[[ConsumerRecord, Topic], bool] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SignGateClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def deployed(self, registry_name: str) -> str:
        return f"{self.topic_prefix}{registry_name}"

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=self._client_id, **self._security
        )
        await start_checked(admin, self.bootstrap, self._security)
        try:
            if self.reply_topic not in await admin.list_topics():
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                self.reply_topic,
                                1,
                                1,
                                topic_configs={
                                    "retention.ms": str(int(REPLY_RETENTION.total_seconds() * 1000))
                                },
                            )
                        ]
                    )
            outcome_topics = {self.deployed(topic.name) for topic in OUTCOME_TOPIC.values()}
            partitions = await partitions_of(admin, [*sorted(outcome_topics), self.reply_topic])
        finally:
            await admin.close()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self._client_id,
            enable_auto_commit=False,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            **self._security,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self._client_id,
            acks="all",
            **self._security,
        )
        await self._consumer.start()
        await self._producer.start()
        await assign(self._consumer, partitions)
        self._reader = asyncio.create_task(self._read(), name="signgate-client-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for part in (self._producer, self._consumer):
            if part is not None:
                await part.stop()

    async def ping(self) -> bool:
        """Whether the client can serve: its reader runs and a broker answers a metadata request."""
        if self._producer is None or self._reader is None or self._reader.done():
            return False
        await self._producer.client.fetch_all_metadata()
        return True

    # The commands a reply answers, with what the reply can be; any other command's outcome
    # has no reply (its ``reply`` is None) and is typed ``Outcome[Message]``.
    @overload
    async def send(
        self,
        command: identity.AuthenticateUser,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[identity.AuthenticationSucceeded | identity.AuthenticationFailed]: ...
    @overload
    async def send(
        self,
        command: identity.EnrolAuthenticator,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[identity.AuthenticatorEnrolment]: ...
    @overload
    async def send(
        self,
        command: identity.ConfirmAuthenticator | identity.RegenerateRecoveryCodes,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[identity.RecoveryCodesIssued]: ...
    @overload
    async def send(
        self,
        command: authentication.OpenDocumentWithPassword
        | authentication.VerifyDocumentOtp
        | authentication.VerifyDocumentTotp,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[authentication.DocumentAccessGranted]: ...
    @overload
    async def send(
        self,
        command: authentication.GetRecipientAuthenticationStatus,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[authentication.RecipientAuthenticationStatus]: ...
    @overload
    async def send(
        self,
        command: workflow.GetRecipientAuthentication,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[workflow.RecipientAuthenticationDescribed]: ...
    @overload
    async def send(
        self,
        command: workflow.GetWorkflowHistory,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[workflow.WorkflowHistoryListed]: ...
    @overload
    async def send(
        self,
        command: workflow.ShareWorkflow,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[workflow.RecipientInvitationsIssued]: ...
    @overload
    async def send(
        self,
        command: workflow.IssueRecipientInvitation,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[workflow.RecipientInvitationIssued]: ...
    @overload
    async def send(
        self,
        command: Command,
        *,
        timeout: float = ...,
        reply: bool | None = ...,
        effects: Collection[str] = ...,
    ) -> Outcome[Message]: ...
    async def send(
        self,
        command: Command,
        *,
        timeout: float = 10.0,
        reply: bool | None = None,
        effects: Collection[str] = (),
    ) -> Outcome[Message]:
        """Publish ``command`` and return its outcome once complete.

        ``reply``: wait for a reply to the caller (default: as the command's kind says — always
        for AuthenticateUser and queries, after a success for document opening). ``effects``:
        message types the command causes further on (e.g.
        ``authentication.recipient_authentication_cleared`` after a reset) to wait for too; a
        refused command causes none, so its rejection completes the outcome at once. Raises `OutcomeTimeout` when the outcome is not complete within ``timeout`` seconds.
        """
        if self._producer is None or self._reader is None:
            raise RuntimeError("the client is not started: use `async with SignGateClient(...)`")
        if command.reply_to is None:
            command = command.model_copy(update={"reply_to": self.reply_topic})
        correlation_id = str(command.correlation_id)
        if correlation_id in self._pending:
            raise ValueError(f"a command with correlation id {correlation_id} is already waiting")
        path = route(command)
        wants_reply = reply is not False and command.reply_to == self.reply_topic
        if path.answer is Answer.REPLY and not wants_reply:
            raise ValueError(
                f"{command.type} is answered only on its reply_to: the client must read it"
            )
        pending = _Pending(command, path, wants_reply, frozenset(effects))
        self._pending[correlation_id] = pending
        try:
            await self._producer.send_and_wait(
                self.deployed(path.topic.name),
                encode(command),
                key=path.key.encode(),
                headers=[
                    ("type", command.type.encode()),
                    ("correlation_id", correlation_id.encode()),
                    ("content-type", b"application/json"),
                ],
            )
            await self._settle(pending, timeout, reply)
            return pending.outcome()
        finally:
            del self._pending[correlation_id]

    async def _settle(self, pending: _Pending, timeout: float, reply: bool | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = pending.progress()
            if state is Progress.COMPLETE or (
                state is Progress.GRANT_MAY_FOLLOW and reply is False
            ):
                return
            if self._reader is not None and self._reader.done():
                self._reader.result()  # the reader's error, if it failed
                raise RuntimeError("the client's reader stopped")
            wait = deadline - loop.time()
            if state is Progress.GRANT_MAY_FOLLOW and reply is None:
                wait = min(wait, self.grant_wait)
            pending.arrived.clear()
            try:
                async with asyncio.timeout(max(wait, 0)):
                    await pending.arrived.wait()
            except TimeoutError:
                if state is Progress.GRANT_MAY_FOLLOW and reply is None:
                    return  # no grant: the recipient still owes another method
                raise OutcomeTimeout(pending.outcome(), timeout) from None

    def watch(
        self,
        message_type: str,
        callback: Callable[[Message], None],
        *,
        authentic: Callable[[ConsumerRecord, Topic], bool],
    ) -> None:
        """Call ``callback`` with every event of ``message_type`` on the outcome topics, whoever
        caused it (a fact the caller acts on, such as a revoked API key); it must not block.
        ``authentic`` says whether a record carries its topic writer's proof of origin: one that
        does not has no effect (the client holds no service's public keys; its caller does)."""
        self._watchers.setdefault(message_type, []).append(callback)
        self._authentic = authentic

    async def _read(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            correlation_id = correlation_of(record)
            pending = self._pending.get(correlation_id) if correlation_id else None
            if pending is not None:
                self._take(pending, record)
            if self._watchers:
                self._tell_watchers(record)

    def _tell_watchers(self, record: ConsumerRecord) -> None:
        value = record.value or b""
        if not any(f'"{kind}"'.encode() in value for kind in self._watchers):
            return  # most records: not decoded at all
        registry = BY_NAME.get(record.topic.removeprefix(self.topic_prefix))
        if registry is None or registry.kind is not TopicKind.EVENTS:
            return
        if self._authentic is None or not self._authentic(record, registry):
            return
        message = _decoded(registry, record)
        for callback in self._watchers.get(message.type, []) if message else []:
            callback(message)  # type: ignore[arg-type]

    def _take(self, pending: _Pending, record: ConsumerRecord) -> None:
        path = pending.route
        if record.topic == self.reply_topic:
            if path.replies is None or pending.reply is not None:
                return
            message = _decoded(path.replies, record)
            if message is not None:
                pending.reply = message
        else:
            registry = BY_NAME.get(record.topic.removeprefix(self.topic_prefix))
            if registry is None or registry.kind is not TopicKind.EVENTS:
                return
            message = _decoded(registry, record)
            if message is None:
                return
            if registry is path.outcome and pending.event is None and answers_command(message):
                pending.event = message
            elif message.type in pending.effects:
                pending.seen.setdefault(message.type, message)
        pending.arrived.set()


def _decoded(topic: Topic, record: ConsumerRecord) -> Message | None:
    """The record as a message, or None for one this version of the contracts cannot read."""
    try:
        return decode(topic, record.value or b"")
    except ValueError:  # undecodable, an unknown type, or invalid (pydantic's ValidationError)
        return None
