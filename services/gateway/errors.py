"""The vendors' error shapes, and the one exception every refusal of the gateway is raised as.

A route, a middleware or an exception handler raises or renders `GatewayError`; the shape of its
body is the vendor's whose path it is (`shape_for`): SigningHub's ``{"Message": "..."}``,
AssureSign's SOAP Fault. Texts
are the seeds' where a seed has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi.responses import JSONResponse
from starlette.responses import Response

from services.gateway import assuresign

INTERNAL_ERROR = "An internal server error occurred while processing the request"
"""SigningHub's 500 text: every unexpected failure is answered with it, never with a trace."""
MALFORMED_JSON = "The request body is not valid JSON"
BODY_TOO_LARGE = "The request body is too large"
OUTCOME_TIMEOUT = "The request could not be completed in time; try again"
RATE_LIMITED = "Too many requests; try again later"
NOT_FOUND = "The requested resource was not found"
METHOD_NOT_ALLOWED = "The requested method is not allowed for this resource"


class GatewayError(Exception):
    """A request answered with ``status`` and ``message`` in its vendor's error shape."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


ErrorShape = Callable[[int, str, Mapping[str, str]], Response]
"""(status, message, headers) -> the vendor's error response."""


def signinghub_error(status: int, message: str, headers: Mapping[str, str]) -> Response:
    """SigningHub v3: ``{"Message": "<text>"}``."""
    return JSONResponse({"Message": message}, status_code=status, headers=dict(headers))


SHAPES: dict[str, ErrorShape] = {
    "/v3/": signinghub_error,
    assuresign.PATH: assuresign.soap_error,
}
"""Each vendor's error shape, by the path prefix of its routes."""

DEFAULT_SHAPE: ErrorShape = signinghub_error
"""For paths of no vendor (probes, the OpenAPI document, unknown paths)."""


def shape_for(path: str) -> ErrorShape:
    """The error shape of the vendor whose routes ``path`` is under."""
    for prefix, shape in SHAPES.items():
        if path.startswith(prefix):
            return shape
    return DEFAULT_SHAPE


def error_response(path: str, error: GatewayError) -> Response:
    return shape_for(path)(error.status, error.message, error.headers)
