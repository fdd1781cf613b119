"""What a request FastAPI could not validate is answered with: one line naming the first field."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from services.gateway.errors import MALFORMED_JSON

BODY_REQUIRED = "The request body is required"


def validation_message(error: RequestValidationError) -> str:
    """The first problem: malformed JSON, a missing body, or ``<field>: <why>`` as the services
    name a field (``body.authentication.sms_otp.mobile_number``, a path parameter by its name);
    never the value that was sent."""
    problems = error.errors()
    if not problems:
        return MALFORMED_JSON
    first = problems[0]
    if first.get("type") == "json_invalid":
        return MALFORMED_JSON
    location = [str(part) for part in first.get("loc", ())]
    if location == ["body"] and first.get("type") == "missing":
        return BODY_REQUIRED
    if location and location[0] in ("path", "query", "header", "cookie"):
        location = location[1:]
    field = ".".join(location)
    message = str(first.get("msg", "invalid"))
    return f"{field}: {message}" if field else message
