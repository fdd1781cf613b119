"""`command.rejected`: the one outcome of a command that was refused or could not be handled."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from signgate_contracts.envelope import Event

RejectionStatus = Literal[400, 401, 403, 404, 409, 429, 500]


class CommandRejected(Event):
    """A command was refused; ``status`` is the HTTP status the source API returns for the case."""

    type: Literal["command.rejected"] = "command.rejected"
    status: RejectionStatus
    code: str = Field(description="Stable, machine-readable reason, e.g. `document_not_found`.")
    message: str = Field(description="Human-readable text; the source API's text where it has one.")
    command_type: str | None = Field(default=None, description="`type` of the refused command.")
    field: str | None = Field(default=None, description="The offending field of an invalid body.")
    command_event_id: UUID | None = None
    retry_after_seconds: int | None = Field(
        default=None, ge=0, description="For a 429: seconds until the caller may try again."
    )
