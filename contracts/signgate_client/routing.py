"""Where a command goes, under which key, and what answers it: pure rules over the topic registry."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeGuard

from signgate_contracts import authentication, identity, workflow
from signgate_contracts.envelope import Command, Event, Message
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import BY_NAME, OUTCOME_TOPIC, TOPICS, Topic


class Answer(Enum):
    """What completes a command's outcome."""

    EVENT = "event"
    """The domain event (or the rejection) on the service's events topic."""
    EVENT_AND_REPLY = "event and reply"
    """The event, and a reply to the caller that always comes with it (a user token or the reasons,
    the recipients' invitations)."""
    EVENT_AND_GRANT = "event and, after a success, a grant"
    """The event; after a success, a document-access grant once every required method has passed."""
    REPLY = "reply"
    """A query: the answer on the reply topic (or the rejection on the events topic)."""


_ANSWERS: dict[type[Command], Answer] = {
    identity.AuthenticateUser: Answer.EVENT_AND_REPLY,
    identity.IssueApiKey: Answer.EVENT_AND_REPLY,
    identity.ListApiKeys: Answer.REPLY,
    identity.ExchangeApiKey: Answer.EVENT_AND_REPLY,
    identity.EnrolAuthenticator: Answer.EVENT_AND_REPLY,
    identity.ConfirmAuthenticator: Answer.EVENT_AND_REPLY,
    identity.RegenerateRecoveryCodes: Answer.EVENT_AND_REPLY,
    authentication.OpenDocumentWithPassword: Answer.EVENT_AND_GRANT,
    authentication.VerifyDocumentOtp: Answer.EVENT_AND_GRANT,
    authentication.VerifyDocumentTotp: Answer.EVENT_AND_GRANT,
    authentication.GetRecipientAuthenticationStatus: Answer.REPLY,
    workflow.GetRecipientAuthentication: Answer.REPLY,
    workflow.GetWorkflowHistory: Answer.REPLY,
    workflow.ShareWorkflow: Answer.EVENT_AND_REPLY,
    workflow.IssueRecipientInvitation: Answer.REPLY,
}

_KEYS: dict[str, Callable[[Any], str]] = {
    "signgate.identity.commands": identity.command_key,
    "signgate.workflow.commands": lambda command: command.package_id,
    "signgate.authentication.commands": lambda command: command.package_id,
    "signgate.otp.requests": lambda command: str(command.challenge_id),
}
"""Each command topic's record key: the natural key its records keep their order by."""

_COMMAND_TOPICS: dict[type[Message], Topic] = {
    message: topic for topic in TOPICS if topic.answers_commands for message in topic.messages
}


@dataclass(frozen=True)
class Route:
    """How one command travels: its topic and key, where its outcome and any reply are published."""

    topic: Topic
    key: str
    outcome: Topic
    replies: Topic | None
    """The service's replies topic: which messages a reply to this command can be."""
    answer: Answer


def route(command: Command) -> Route:
    """The route of ``command``; ValueError for a message no signgate topic takes as a command."""
    topic = _COMMAND_TOPICS.get(type(command))
    if topic is None:
        raise ValueError(f"{type(command).__name__} is not a command of any signgate topic")
    replies = BY_NAME.get(topic.name.rsplit(".", 1)[0] + ".replies")
    return Route(
        topic,
        _KEYS[topic.name](command),
        OUTCOME_TOPIC[topic.name],
        replies,
        Answer.EVENT_AND_REPLY
        if workflow.provisions_totp(command)  # the new secret's URI, to the caller only
        else _ANSWERS.get(type(command), Answer.EVENT),
    )


def command_types() -> dict[str, type[Command]]:
    """Every command signgate takes, by its ``type``."""
    return {message.model_fields["type"].default: message for message in _COMMAND_TOPICS}  # type: ignore[misc]


def parse_command(document: dict[str, Any]) -> Command:
    """A command from its JSON document, by ``type``; envelope fields left out get their defaults."""
    kind = document.get("type")
    model = command_types().get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"no signgate command has type {kind!r}")
    return model.model_validate(document)


def answers_command(message: Message) -> TypeGuard[Event]:
    """Whether an event on a command's outcome topic, carrying its correlation id, is its outcome:
    every event is but the facts that follow one (`authentication.AFTER_OUTCOME`: a code the request
    was answered with went another way, or nowhere), so a late fact never stands as the answer."""
    return isinstance(message, Event) and not isinstance(message, authentication.AFTER_OUTCOME)


class Progress(Enum):
    """Where a command's outcome stands after what has arrived so far."""

    WAITING = "waiting"
    """Something the caller is owed has not arrived."""
    GRANT_MAY_FOLLOW = "a grant may follow"
    """A success arrived; a grant follows it if this was the recipient's last required method."""
    COMPLETE = "complete"


def progress(
    answer: Answer,
    event: Message | None,
    reply: Message | None,
    *,
    reply_expected: bool = True,
    effects: Collection[str] = (),
    seen: Collection[str] = (),
) -> Progress:
    """Whether the outcome is complete, given the event and reply so far and the effects awaited.

    ``reply_expected`` is False when the caller's replies go elsewhere (or it does not want them).
    """
    if isinstance(event, CommandRejected):
        return Progress.COMPLETE  # a refused command has no effects to wait for
    if not set(effects) <= set(seen):
        return Progress.WAITING
    if answer is Answer.REPLY:
        return Progress.COMPLETE if reply is not None else Progress.WAITING
    if event is None:
        return Progress.WAITING
    if reply is not None or not reply_expected:
        return Progress.COMPLETE
    if answer is Answer.EVENT_AND_REPLY:
        return Progress.WAITING
    if answer is Answer.EVENT_AND_GRANT and isinstance(
        event, authentication.RecipientAuthenticated
    ):
        return Progress.GRANT_MAY_FOLLOW
    return Progress.COMPLETE
