"""signgate's message contracts: envelopes, commands, events and the topic registry."""

from signgate_contracts.codec import UndecodableMessage, UnknownMessageType, decode, encode
from signgate_contracts.envelope import Command, Event, Message, Secret
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import BY_NAME, TOPICS, Topic, TopicKind

__all__ = [
    "BY_NAME",
    "TOPICS",
    "Command",
    "CommandRejected",
    "Event",
    "Message",
    "Secret",
    "Topic",
    "TopicKind",
    "UndecodableMessage",
    "UnknownMessageType",
    "decode",
    "encode",
]
