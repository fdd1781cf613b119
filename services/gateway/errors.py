"""The vendors' error shapes, and the one exception every refusal of the gateway is raised as.

A route, a middleware or an exception handler raises or renders `GatewayError`; the shape of its
body is the vendor's whose path it is (`shape_for`): SigningHub's ``{"Message": "..."}``,
AssureSign's SOAP 1.1 Fault. Texts are the seeds' where a seed has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from fastapi.responses import JSONResponse
from starlette.responses import Response

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


def boldsign_error(status: int, message: str, headers: Mapping[str, str]) -> Response:
    """BoldSign v1: its ``ErrorResult``, ``{"error": "<text>"}``."""
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers))


# -- AssureSign: SOAP 1.1 Faults --

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
CONTENT_TYPE_XML = "text/xml; charset=utf-8"
_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

FaultCode = Literal["Client", "Server", "VersionMismatch"]


class SoapFault(Exception):
    """A request answered with a SOAP Fault: its code, its text, the HTTP status and headers."""

    def __init__(
        self,
        text: str,
        *,
        code: FaultCode = "Client",
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status
        self.headers = dict(headers or {})


def render_fault(fault: SoapFault) -> bytes:
    """A SOAP 1.1 Fault (always enveloped: a Fault exists only in a SOAP Body)."""
    return document(
        enveloped_in_soap(
            "<soap:Fault>\n"
            f"            <faultcode>soap:{fault.code}</faultcode>\n"
            f"            <faultstring>{escape(fault.text)}</faultstring>\n"
            "        </soap:Fault>"
        )
    )


def enveloped_in_soap(element: str) -> str:
    """``element`` in a SOAP 1.1 Envelope's Body."""
    return (
        f"<soap:Envelope xmlns:soap={quoteattr(SOAP_ENVELOPE)}>\n"
        f"    <soap:Body>\n        {element}\n    </soap:Body>\n"
        "</soap:Envelope>"
    )


def document(element: str) -> bytes:
    """An XML document of ``element``, with its declaration, in UTF-8."""
    return (_DECLARATION + element + "\n").encode()


def fault_response(fault: SoapFault) -> Response:
    return Response(
        render_fault(fault),
        status_code=fault.status,
        headers=fault.headers,
        media_type=CONTENT_TYPE_XML,
    )


def soap_error(status: int, message: str, headers: Mapping[str, str]) -> Response:
    """The gateway's own refusals (413, 429, 404, 405, 500) on this path, as SOAP Faults."""
    return fault_response(
        SoapFault(
            message, code="Client" if status < 500 else "Server", status=status, headers=headers
        )
    )


SHAPES: dict[str, ErrorShape] = {
    "/v3/": signinghub_error,
    "/v1/": boldsign_error,
    "/Services/DocumentNOW/": soap_error,
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
