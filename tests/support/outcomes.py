"""Whether each command had exactly one outcome, as a caller reads it: of the events carrying its
correlation id on its outcome topic, those the client takes as the answer
(`signgate_client.routing.answers_command`), and no `command.rejected` after a success."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from signgate_client.routing import answers_command
from signgate_contracts import CommandRejected, decode
from signgate_contracts.topics import AUTHENTICATION_EVENTS


def answers_to(values: Iterable[bytes], correlation_id: Any) -> list[str]:
    """The types of the records (values on the authentication events topic) that answer the command
    of ``correlation_id``, in order: a caller's client takes the first as its outcome."""
    return [m.type for m in _correlated(values, correlation_id) if answers_command(m)]


def outcome_findings(values: Iterable[bytes], correlation_ids: Iterable[Any]) -> list[str]:
    """For each command: a finding when it has not exactly one answer, or a rejection follows a
    success (whatever the client reads as an answer)."""
    values = list(values)
    findings = []
    for correlation_id in correlation_ids:
        messages = _correlated(values, correlation_id)
        answered = [m.type for m in messages if answers_command(m)]
        if len(answered) != 1:
            findings.append(f"{correlation_id}: {len(answered)} answers {answered}")
        succeeded = [i for i, m in enumerate(messages) if not isinstance(m, CommandRejected)]
        after = messages[succeeded[0] :] if succeeded else []
        if any(isinstance(m, CommandRejected) for m in after):
            findings.append(
                f"{correlation_id}: a rejection after a success {[m.type for m in messages]}"
            )
    return findings


def _correlated(values: Iterable[bytes], correlation_id: Any) -> list[Any]:
    messages = (decode(AUTHENTICATION_EVENTS, value) for value in values)
    return [m for m in messages if str(m.correlation_id) == str(correlation_id)]
