"""The topic registry: every topic, what its key is, how it is kept, and which messages it carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from signgate_contracts import authentication, identity, otp, workflow
from signgate_contracts.envelope import Message


class TopicKind(StrEnum):
    COMMANDS = "commands"
    EVENTS = "events"
    REPLIES = "replies"
    REQUESTS = "requests"


@dataclass(frozen=True)
class Topic:
    """One Kafka topic of signgate."""

    name: str
    kind: TopicKind
    key: str
    """What the record key is; records with one key keep their order."""
    partitions: int
    retention: timedelta
    messages: tuple[type[Message], ...]
    description: str
    writer: str | None = None
    """The one service that writes this topic, and signs every record on it; None for a command
    topic, which upstream callers write (their authority is the token a command carries)."""

    @property
    def dlq(self) -> str:
        """Where messages of this topic that cannot be parsed or handled are set aside."""
        return f"{self.name}.dlq"

    @property
    def answers_commands(self) -> bool:
        """Whether a message here is a command owed exactly one outcome."""
        return self.kind in (TopicKind.COMMANDS, TopicKind.REQUESTS)


# Command topics carry passwords, access codes and tokens in clear: keep them briefly.
_COMMAND_RETENTION = timedelta(hours=1)
_EVENT_RETENTION = timedelta(days=7)
_REPLY_RETENTION = timedelta(minutes=15)
DLQ_RETENTION = timedelta(days=14)
DLQ_PARTITIONS = 1

IDENTITY_COMMANDS = Topic(
    "signgate.identity.commands",
    TopicKind.COMMANDS,
    "normalised user name",
    6,
    _COMMAND_RETENTION,
    identity.COMMANDS,
    "Commands to the identity service.",
)
IDENTITY_EVENTS = Topic(
    "signgate.identity.events",
    TopicKind.EVENTS,
    "user id; for a failed authentication or a rejection, the keyed digest of the user name given",
    6,
    _EVENT_RETENTION,
    identity.EVENTS,
    "Facts about API users; never a credential.",
    writer="identity",
)
IDENTITY_REPLIES = Topic(
    "signgate.identity.replies",
    TopicKind.REPLIES,
    "normalised user name",
    3,
    _REPLY_RETENTION,
    identity.REPLIES,
    "Tokens for callers that gave no reply_to.",
    writer="identity",
)
WORKFLOW_COMMANDS = Topic(
    "signgate.workflow.commands",
    TopicKind.COMMANDS,
    "package_id",
    6,
    _COMMAND_RETENTION,
    workflow.COMMANDS,
    "Commands to the workflow service.",
)
WORKFLOW_EVENTS = Topic(
    "signgate.workflow.events",
    TopicKind.EVENTS,
    "package_id",
    6,
    _EVENT_RETENTION,
    workflow.EVENTS,
    "Facts about packages, recipients and their settings.",
    writer="workflow",
)
WORKFLOW_REPLIES = Topic(
    "signgate.workflow.replies",
    TopicKind.REPLIES,
    "package_id",
    3,
    _REPLY_RETENTION,
    workflow.REPLIES,
    "Answers to queries for callers that gave no reply_to.",
    writer="workflow",
)
AUTHENTICATION_COMMANDS = Topic(
    "signgate.authentication.commands",
    TopicKind.COMMANDS,
    "package_id",
    6,
    _COMMAND_RETENTION,
    authentication.COMMANDS,
    "Commands to the authentication service.",
)
AUTHENTICATION_EVENTS = Topic(
    "signgate.authentication.events",
    TopicKind.EVENTS,
    "package_id",
    6,
    _EVENT_RETENTION,
    authentication.EVENTS,
    "Facts about recipient authentication.",
    writer="authentication",
)
AUTHENTICATION_REPLIES = Topic(
    "signgate.authentication.replies",
    TopicKind.REPLIES,
    "package_id",
    3,
    _REPLY_RETENTION,
    authentication.REPLIES,
    "Document-access grants for callers that gave no reply_to.",
    writer="authentication",
)
OTP_REQUESTS = Topic(
    "signgate.otp.requests",
    TopicKind.REQUESTS,
    "challenge id",
    6,
    _COMMAND_RETENTION,
    otp.REQUESTS,
    "Requests to deliver a one-time password.",
    writer="authentication",
)
OTP_EVENTS = Topic(
    "signgate.otp.events",
    TopicKind.EVENTS,
    "challenge id",
    6,
    _EVENT_RETENTION,
    otp.EVENTS,
    "Facts about OTP deliveries; destinations masked.",
    writer="otp_dispatch",
)

TOPICS: tuple[Topic, ...] = (
    IDENTITY_COMMANDS,
    IDENTITY_EVENTS,
    IDENTITY_REPLIES,
    WORKFLOW_COMMANDS,
    WORKFLOW_EVENTS,
    WORKFLOW_REPLIES,
    AUTHENTICATION_COMMANDS,
    AUTHENTICATION_EVENTS,
    AUTHENTICATION_REPLIES,
    OTP_REQUESTS,
    OTP_EVENTS,
)
BY_NAME: dict[str, Topic] = {topic.name: topic for topic in TOPICS}

CALLER_REPLY_PREFIX = "signgate.replies."
"""Callers' own reply topics are named under this prefix (after any deployment prefix); a
service sends a reply only there or to its own replies topic (`libs.runtime.messaging.replies`)."""

OUTCOME_TOPIC: dict[str, Topic] = {
    IDENTITY_COMMANDS.name: IDENTITY_EVENTS,
    WORKFLOW_COMMANDS.name: WORKFLOW_EVENTS,
    AUTHENTICATION_COMMANDS.name: AUTHENTICATION_EVENTS,
    OTP_REQUESTS.name: OTP_EVENTS,
}
"""Where the outcome of each command (its event or its `command.rejected`) is published."""
