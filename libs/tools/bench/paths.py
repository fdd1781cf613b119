"""The two ways in, loaded alike: ``python -m libs.tools.bench.paths JOB.json RESULT.json``.

One OTP verification per prepared recipient, sent open loop at ``rate`` per second (request i is
due at ``start + i / rate`` whatever happened before it, and its latency counts from then, so a
stalled path cannot hide its queue), either

- ``http``: SigningHub's Open Document via OTP, ``POST /v3/packages/{id}/workflow/{order}/
  authentication/otp`` with ``{"otp": …}`` and the recipient's invitation, to the gateway; or
- ``kafka``: the same `VerifyDocumentOtp` through `signgate_client`, awaiting its outcome as the
  gateway does (the verdict, and the document-access grant that follows a success).

Each answer is judged against the code sent: a right code must open the document (HTTP 200 with
the grant; the grant), a wrong one must be refused (HTTP 403; the failure event). Anything else, or
no answer, is an error. The result also says how late the generator itself sent (``send_late_p99_ms``:
on a busy machine it is a caller too) and the CPU it spent per request, the callers' side that the
bench's per-process figures leave out. Kafka security comes from the ``SIGNGATE_KAFKA_*``
environment, as for `loadgen`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import SecretStr

from libs.runtime.kafka_security import signgate_client_options
from libs.tools.bench.loadgen import run_job
from libs.tools.bench.stats import percentile, summarize
from signgate_client import OutcomeTimeout, SignGateClient
from signgate_contracts import authentication as auth

Verdict = Callable[[list], Awaitable[str]]
"""Sends one request (package id, order, invitation, code) and says what came back."""


class KeepAlive:
    """HTTP/1.1 POSTs over kept-alive connections, one request per connection at a time (a new
    connection when all are busy). Not httpx: at 200 requests/s it spent about 5 ms of CPU per
    request in this process, a core of the two the gateway and the services share, so the HTTP
    path would have been measured against its own caller."""

    def __init__(self, base_url: str) -> None:
        address = urlsplit(base_url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened: list[asyncio.StreamWriter] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened.append(writer)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        answer = await reader.readexactly(length)
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, answer

    def close(self) -> None:
        for writer in self.opened:
            writer.close()


def http_verdict(status: int, body: bytes) -> str:
    if status == 200:  # opened only with the grant; SigningHub's "method passed" text without one
        return "opened" if b'"access_grant":"' in body.replace(b" ", b"") else "passed, no grant"
    return "refused" if status == 403 else f"http {status}"


def kafka_verdict(event_type: str | None, granted: bool) -> str:
    if event_type == auth.RecipientAuthenticated.model_fields["type"].default and granted:
        return "opened"
    if event_type in (
        auth.RecipientAuthenticationFailed.model_fields["type"].default,
        auth.RecipientLockedOut.model_fields["type"].default,
    ):
        return "refused"
    return event_type or "no event"


async def run(job: dict) -> dict:
    requests: list[list] = job["requests"]  # [package id, order, invitation, code, expected]
    rate: float = job["rate"]
    timeout: float = job.get("timeout", 30.0)
    latencies: list[float] = []
    late: list[float] = []
    outcomes: Counter[str] = Counter()
    by_verdict: dict[str, list[float]] = {}
    errors = 0

    async def timed(send: Verdict, request: list, due: float) -> None:
        nonlocal errors
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(time.perf_counter() - due)
        try:
            verdict = await send(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, OutcomeTimeout) as error:
            verdict = type(error).__name__
        latencies.append(time.perf_counter() - due)  # a timeout too: the caller waited that long
        by_verdict.setdefault(verdict, []).append(latencies[-1])
        outcomes[verdict] += 1
        if verdict != request[4]:
            errors += 1

    caller_cpu = 0.0

    async def drive(send: Verdict) -> float:
        nonlocal caller_cpu
        start = time.perf_counter() + 0.05
        cpu_before = time.process_time()
        await asyncio.gather(
            *(timed(send, request, start + i / rate) for i, request in enumerate(requests))
        )
        caller_cpu = time.process_time() - cpu_before
        return time.perf_counter() - start

    if job["mode"] == "http":
        http = KeepAlive(job["gateway_url"])
        try:

            async def over_http(request: list) -> str:
                package_id, order, invitation, code, _ = request
                status, body = await asyncio.wait_for(
                    http.post(
                        f"/v3/packages/{package_id}/workflow/{order}/authentication/otp",
                        json.dumps({"otp": code}).encode(),
                        {"X-Recipient-Invitation": invitation},
                    ),
                    timeout,
                )
                return http_verdict(status, body)

            elapsed = await drive(over_http)
        finally:
            http.close()
    else:
        client = SignGateClient(
            job["bootstrap"],
            job["reply_topic"],
            topic_prefix=job["topic_prefix"],
            client_id=f"bench-kafka-{uuid.uuid4().hex[:8]}",
            fetch_max_wait_ms=job["fetch_max_wait_ms"],
            **signgate_client_options(),
        )
        async with client:

            async def over_kafka(request: list) -> str:
                package_id, order, invitation, code, _ = request
                outcome = await client.send(
                    auth.VerifyDocumentOtp(
                        package_id=package_id,
                        order=order,
                        invitation=SecretStr(invitation),
                        code=SecretStr(code),
                    ),
                    timeout=timeout,
                )
                event = outcome.event.type if outcome.event is not None else None
                return kafka_verdict(event, outcome.reply is not None)

            elapsed = await drive(over_kafka)
    return {
        **summarize(
            latencies, sent=len(requests), elapsed=elapsed, offered_rate=rate, outcomes=outcomes
        ).as_dict(),
        "errors": errors,
        "latencies_ms": [round(seconds * 1000, 3) for seconds in latencies],
        "send_late_p99_ms": percentile(late, 99) * 1000,
        "caller_cpu_us_per_message": caller_cpu / max(len(requests), 1) * 1e6,
        "p99_ms_by_verdict": {v: percentile(seen, 99) * 1000 for v, seen in by_verdict.items()},
    }


if __name__ == "__main__":
    sys.exit(run_job(run, sys.argv[1:]))
