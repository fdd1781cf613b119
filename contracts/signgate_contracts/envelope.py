"""The envelope every signgate message carries, and the secret-string type for credentials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from signgate_contracts.text import unstorable_at

Secret = Annotated[
    SecretStr,
    PlainSerializer(lambda value: value.get_secret_value(), return_type=str, when_used="json"),
]
"""A credential in a command: hidden from ``repr`` and ``str``, sent in clear on the wire only."""


Clock = Callable[[], datetime]
"""What tells the time (`utc_now`, or a test's movable clock)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Fields shared by every command and event; unknown fields are ignored, models are frozen."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    #: Bumped when a message type changes in a way an upcaster must translate.
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; the dedupe key.")
    type: str
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: UUID = Field(
        default_factory=uuid4,
        description="Copied from the command to every message it causes.",
    )
    causation_id: UUID | None = Field(
        default=None, description="The event_id of the message that caused this one."
    )

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        """Refuse a NUL or a lone surrogate in any field, naming the field (`signgate_contracts.text`)."""
        path = unstorable_at(data)
        if path is not None:
            error = PydanticCustomError(
                "unstorable_text", "text must not contain a NUL character or a lone surrogate"
            )
            raise ValidationError.from_exception_data(
                cls.__name__, [InitErrorDetails(type=error, loc=path, input="")]
            )
        return data


class Command(Message):
    """A request to a service; it yields exactly one outcome with the same correlation id."""

    access_token: Secret | None = Field(
        default=None, description="The caller's bearer token, where the command needs one."
    )
    reply_to: str | None = Field(
        default=None,
        description="Topic for credentials issued to the caller (tokens, access grants).",
    )


class Event(Message):
    """A fact a service has recorded."""
