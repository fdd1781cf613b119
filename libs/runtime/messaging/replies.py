"""Where a service may send a reply: the one rule for every service's ``reply_to``.

A reply carries what only its caller may hold (a user's token, a document-access grant, a
recipient's status), and whoever names the topic chooses who reads it. So a reply goes to the
service's own replies topic, or to a caller's topic under the caller reply prefix
(``SIGNGATE_CALLER_REPLY_PREFIX``, default ``signgate.replies.``, after the deployment's topic
prefix), where nothing but callers' reply topics lives and Kafka ACLs can give each caller its
own. Anything else (an events topic, a command topic, a dead-letter topic, a name the broker
would create) is refused with 400 ``invalid_reply_to`` before the use case runs: before any
credential is issued, any counter moved or any code sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from libs.runtime.errors import BadRequest

MAX_TOPIC_NAME = 249
"""Kafka's longest topic name."""

_LEGAL = re.compile(r"[A-Za-z0-9._-]+")


class InvalidReplyTo(BadRequest):
    code = "invalid_reply_to"


class ReplyRule:
    """Checks a command's ``reply_to`` against the deployed names it may take."""

    def __init__(self, own_replies: Iterable[str], caller_prefix: str) -> None:
        self.own_replies = frozenset(own_replies)
        self.caller_prefix = caller_prefix

    def allows(self, reply_to: str) -> bool:
        if reply_to in self.own_replies:
            return True
        name = reply_to.removeprefix(self.caller_prefix)
        return (
            name != reply_to
            and len(reply_to) <= MAX_TOPIC_NAME
            and _LEGAL.fullmatch(name) is not None
            and name.strip(".") != ""
        )

    def check(self, reply_to: str | None) -> None:
        """Refuse a ``reply_to`` the rule does not allow (None: the service's replies topic)."""
        if reply_to is not None and not self.allows(reply_to):
            raise InvalidReplyTo(
                f"reply_to must be this service's replies topic or a topic under {self.caller_prefix}",
                field="reply_to",
            )
