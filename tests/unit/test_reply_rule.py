"""The one reply rule: a reply goes to the service's own replies topic or under the caller prefix."""

from __future__ import annotations

import pytest

from libs.runtime.messaging.replies import InvalidReplyTo, ReplyRule
from signgate_contracts.topics import TOPICS

RULE = ReplyRule(own_replies=["t1.signgate.identity.replies"], caller_prefix="t1.signgate.replies.")


@pytest.mark.parametrize("topic", [
    *(f"t1.{t.name}" for t in TOPICS if t.name != "signgate.identity.replies"),
    *(f"t1.{t.dlq}" for t in TOPICS),
    "signgate.identity.replies",  # another deployment's (no prefix)
    "t1.signgate.replies.",  # the prefix alone
    "t1.signgate.replies...",
    "t1.signgate.replies.a/b", "t1.signgate.replies.a b", "t1.signgate.replies.é",
    "t1.signgate.replies." + "x" * 240,  # longer than Kafka allows
    "portal.replies.42", "__consumer_offsets", "",
])
def test_every_other_topic_is_refused_with_400_naming_the_field(topic: str) -> None:
    with pytest.raises(InvalidReplyTo) as refused:
        RULE.check(topic)
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_reply_to", "reply_to")


@pytest.mark.parametrize("topic", [
    None, "t1.signgate.identity.replies", "t1.signgate.replies.portal", "t1.signgate.replies.cli.ana-1",
    "t1.signgate.replies.client.0f3a_B",
])
def test_the_own_replies_topic_and_topics_under_the_caller_prefix_are_allowed(topic: str | None) -> None:
    RULE.check(topic)
