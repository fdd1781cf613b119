"""The two kinds of failure the message pipeline tells apart: refusals and transient faults."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions
from aiokafka import errors as kafka_errors

from signgate_contracts.rejection import RejectionStatus


class Refusal(Exception):
    """A domain rule refused a command; the caller gets `command.rejected` with these fields.

    Each refusal family subclasses it with its own status; ``message`` is the source API's text
    where it has one.
    """

    status: RejectionStatus = 400
    code: str = "refused"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: RejectionStatus | None = None,
        field: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.field = field
        self.retry_after_seconds = retry_after_seconds


class BadRequest(Refusal):
    status, code = 400, "bad_request"


class Unauthorized(Refusal):
    status, code = 401, "unauthorized"


class Forbidden(Refusal):
    status, code = 403, "forbidden"


class NotFound(Refusal):
    status, code = 404, "not_found"


class Conflict(Refusal):
    status, code = 409, "conflict"


_TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,  # a cluster's failover: a replica is being promoted
    redis.exceptions.TryAgainError,  # a slot is migrating between masters
    redis.exceptions.SlotNotCoveredError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NotLeaderForPartitionError,
)


class TransientError(Exception):
    """Raised by code that knows a failure is worth retrying (a dependency is briefly away)."""


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same message later may succeed."""
    return isinstance(error, (TransientError, *_TRANSIENT))
