"""Real delivery servers on loopback for OTP tests: an SMTP server (aiosmtpd) and an HTTP SMS gateway."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

CODE = re.compile(r"\b(\d{6,9})\b")


def code_in(text: str) -> str:
    """The OTP in a delivered text."""
    match = CODE.search(text)
    assert match, "no code in the message"
    return match.group(1)


def text_body(message: EmailMessage) -> str:
    """A delivered email's plain-text body (beside which an HTML body may have come)."""
    body = message.get_body(("plain",))
    assert body is not None, "no plain-text body in the message"
    return str(body.get_content())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SmtpSink:
    """Accepts every message except to addresses in ``refuse`` (answered 550) or ``defer`` (451)."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.attempts.append(address)
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[SmtpSink, int]]:
    """An aiosmtpd server on a free loopback port (its own thread and event loop)."""
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class GatewayRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class SmsGateway:
    """An HTTP SMS gateway on loopback: records every POST; answers 200 with an id, or the
    status set in ``statuses`` for a destination number (to play a gateway that is down)."""

    def __init__(self) -> None:
        self.requests: list[GatewayRequest] = []
        self.statuses: dict[str, int] = {}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                gateway.requests.append(GatewayRequest(self.path, dict(self.headers), body))
                status = gateway.statuses.get(body.get("to"), 200)
                answer = json.dumps({"id": f"gw-{len(gateway.requests)}"} if status == 200 else {"error": "down"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/messages"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmsGateway:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def to(self, number: str) -> list[GatewayRequest]:
        return [r for r in self.requests if r.body.get("to") == number]


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
