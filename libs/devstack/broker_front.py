"""A front for the embedded broker, which can do neither TLS nor SASL itself: TLS and SASL in, plaintext out.

Tansu 0.6 accepts ``--cert`` and ``--key`` but not both at once (clap puts them in one exclusive
group), and its listener never wraps a connection in its TLS acceptor; with ``--authentication``
it refuses everything but SASL until a client authenticates, yet its only storage engine here
(``memory://``) keeps no SCRAM credentials (storing one is a no-op, looking one up finds none) and
it offers no PLAIN. So the embedded stack's security is this front, on a loopback port:

- TLS (stdlib ``ssl``, TLS 1.2 or later), with a client certificate signed by a given CA
  required when one is given (mutual TLS). A refused handshake sends its alert before closing,
  so the client learns why, as it would from a Kafka broker.
- SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when users are given: it answers ApiVersions from
  the broker, SaslHandshake and SaslAuthenticate itself, closes the connection on any other
  request before authentication (as Kafka does), and refuses wrong credentials with Kafka's
  ``SASL_AUTHENTICATION_FAILED``.

Then it copies bytes both ways to the plaintext listener. The broker behind it advertises the
front's address, so every connection a client opens after the bootstrap one comes through it.

``python -m libs.devstack.broker_front --upstream 127.0.0.1:9092 [--listen 127.0.0.1:9093]
[--cert server.pem --key server-key.pem [--client-ca ca.pem]] [--user NAME=PASSWORD ...]``
runs one in the foreground.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from aiokafka.protocol.admin import (
    SaslAuthenticateRequest_v0,
    SaslAuthenticateResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeRequest_v0,
    SaslHandShakeResponse_v1,
)

from libs.devstack.sasl import (
    DIGESTS,
    MECHANISMS,
    SaslRefused,
    ScramCredential,
    ScramExchange,
    plain_user,
    scram_credential,
)
from libs.runtime.logging import get_logger

log = get_logger(__name__)

CHUNK = 64 * 1024
MAX_FRAME = 1024 * 1024  # before authentication nothing larger is sent
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58


def server_context(
    certfile: Path, keyfile: Path, client_cafile: Path | None = None
) -> ssl.SSLContext:
    """The front's TLS: its certificate, TLS 1.2 or later, and a client certificate signed by
    ``client_cafile`` required when that is given."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_cafile is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_cafile)
    return context


class BrokerFront:
    """``async with BrokerFront(upstream, tls=context, users={...}) as front: front.address``."""

    def __init__(
        self,
        upstream: str,
        *,
        tls: ssl.SSLContext | None = None,
        users: Mapping[str, str] | None = None,
        mechanisms: Iterable[str] = MECHANISMS,
        listen: str = "127.0.0.1:0",
    ) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        listen_host, _, listen_port = listen.rpartition(":")
        self._listen = (listen_host, int(listen_port))
        self.tls = tls
        self.users = dict(users) if users is not None else None
        self.mechanisms = [m for m in mechanisms if m in MECHANISMS]
        self._credentials: dict[str, dict[str, ScramCredential]] = {
            mechanism: {
                user: scram_credential(digest, password)
                for user, password in (self.users or {}).items()
            }
            for mechanism, digest in DIGESTS.items()
            if mechanism in self.mechanisms
        }
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.peers: list[str] = []
        """The common name of each TLS client's certificate ("" without one), in order."""
        self.principals: list[str] = []
        """The user each SASL client authenticated as, in order."""

    @property
    def address(self) -> str:
        """``host:port`` the front listens on."""
        if self._server is None:
            raise RuntimeError("the broker front is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, *self._listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> BrokerFront:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, EOFError, ssl.SSLError, SaslRefused, ValueError, struct.error):
            pass  # either side went away or broke the protocol: this connection alone ends
        finally:
            writer.close()
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client: _Stream = _Plain(reader, writer)
        if self.tls is not None:
            tls = _Tls(self.tls, reader, writer)
            if not await tls.handshake():
                return
            self.peers.append(_common_name(tls.peer_certificate()))
            client = tls
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as error:
            log.warning("broker front: upstream unreachable", error=str(error))
            return
        try:
            pending = b""
            if self.users is not None:
                authenticated = await self._authenticate(client, up_reader, up_writer)
                if authenticated is None:
                    return
                pending = authenticated
            if pending:
                up_writer.write(pending)
            await _pipe(client, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _authenticate(
        self, client: _Stream, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
    ) -> bytes | None:
        """Answer SASL until the client has authenticated; returns the bytes it sent beyond
        that, or None when it is refused (or asks for anything else first)."""
        frames = _Frames(client)
        mechanism: str | None = None
        exchange: ScramExchange | None = None
        while True:
            request = await frames.next()
            if request is None:
                return None
            api_key, version, correlation_id = struct.unpack_from(">hhi", request)
            body = request[10 + max(struct.unpack_from(">h", request, 8)[0], 0) :]
            if api_key == API_VERSIONS:
                up_writer.write(_frame(request))
                await up_writer.drain()
                await client.write(_frame(await _read_frame(up_reader)))
            elif api_key == SASL_HANDSHAKE:
                mechanism = SaslHandShakeRequest_v0.decode(body).mechanism
                offered = mechanism in self.mechanisms
                await client.write(
                    _response(
                        correlation_id,
                        SaslHandShakeResponse_v1(
                            0 if offered else UNSUPPORTED_SASL_MECHANISM, self.mechanisms
                        ).encode(),
                    )
                )
                if not offered:
                    return None
            elif api_key == SASL_AUTHENTICATE and mechanism is not None:
                token = SaslAuthenticateRequest_v0.decode(body).sasl_auth_bytes
                try:
                    if mechanism == "PLAIN":
                        user, reply = plain_user(token, self.users or {}), b""
                    elif exchange is None:
                        exchange = ScramExchange(mechanism, self._credentials[mechanism])
                        user, reply = None, exchange.first(token)
                    else:
                        user, reply = exchange.user, exchange.final(token)
                except SaslRefused as refused:
                    log.info("broker front: SASL refused", mechanism=mechanism, reason=str(refused))
                    message = (
                        "Authentication failed during authentication due to invalid credentials "
                        f"with SASL mechanism {mechanism}"
                    )
                    await client.write(
                        _authenticated(version, correlation_id, SASL_AUTHENTICATION_FAILED, message)
                    )
                    return None
                await client.write(_authenticated(version, correlation_id, 0, None, reply))
                if user is not None:
                    self.principals.append(user)
                    return frames.rest
            else:
                return None  # anything else before authentication: Kafka closes the connection


class _Stream(Protocol):
    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class _Plain:
    """A connection without TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        return await self._reader.read(CHUNK)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()


class _Tls:
    """The server side of one TLS connection over memory buffers: unlike asyncio's own TLS
    transport, which drops a connection whose handshake fails, this sends the alert first (a
    refused client certificate is reported to the client, as a Kafka broker reports it)."""

    def __init__(
        self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._reader, self._writer = reader, writer

    def peer_certificate(self) -> dict | None:
        return self._tls.getpeercert()

    async def handshake(self) -> bool:
        """Complete the handshake (True), or send the alert and give up (False)."""
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return False
            except ssl.SSLError as error:
                await self._flush()  # the alert that says why
                log.info("broker front: TLS handshake refused", reason=error.reason)
                return False
            else:
                await self._flush()
                return True

    async def read(self) -> bytes:
        """Decrypted bytes from the client; b"" once it has closed."""
        while True:
            try:
                return self._tls.read(CHUNK)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _fill(self) -> bool:
        data = await self._reader.read(CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True


class _Frames:
    """Kafka requests (size-prefixed frames) read from a client."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self.rest = b""
        """What has been read beyond the last frame returned."""

    async def _want(self, size: int) -> bool:
        while len(self.rest) < size:
            chunk = await self._stream.read()
            if not chunk:
                return False
            self.rest += chunk
        return True

    async def next(self) -> bytes | None:
        if not await self._want(4):
            return None
        (size,) = struct.unpack_from(">i", self.rest)
        if not 10 <= size <= MAX_FRAME or not await self._want(4 + size):
            return None
        frame, self.rest = self.rest[4 : 4 + size], self.rest[4 + size :]
        return frame


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _response(correlation_id: int, body: bytes) -> bytes:
    return _frame(struct.pack(">i", correlation_id) + body)


def _authenticated(
    version: int, correlation_id: int, error: int, message: str | None, token: bytes = b""
) -> bytes:
    if version == 0:
        body = SaslAuthenticateResponse_v0(error, message, token).encode()
    else:
        body = SaslAuthenticateResponse_v1(error, message, token, 0).encode()
    return _response(correlation_id, body)


def _common_name(certificate: dict | None) -> str:
    for field in (certificate or {}).get("subject", ()):
        for key, value in field:
            if key == "commonName":
                return str(value)
    return ""


async def _pipe(
    client: _Stream, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
) -> None:
    """Bytes both ways until either side closes: Kafka has no use for a half-close."""

    async def to_broker() -> None:
        while chunk := await client.read():
            up_writer.write(chunk)
            await up_writer.drain()

    async def to_client() -> None:
        while chunk := await up_reader.read(CHUNK):
            await client.write(chunk)

    pipes = [asyncio.create_task(to_broker()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def _serve_forever(args: argparse.Namespace) -> None:
    tls = server_context(args.cert, args.key, args.client_ca) if args.cert else None
    users = dict(user.split("=", 1) for user in args.user) if args.user else None
    async with BrokerFront(args.upstream, tls=tls, users=users, listen=args.listen) as front:
        print(f"{front.address} -> {args.upstream}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the plaintext listener, host:port")
    parser.add_argument("--listen", default="127.0.0.1:9093")
    parser.add_argument("--cert", type=Path, help="server certificate (PEM): serve TLS")
    parser.add_argument("--key", type=Path, help="its private key (PEM)")
    parser.add_argument("--client-ca", type=Path, help="require client certificates of this CA")
    parser.add_argument("--user", action="append", help="NAME=PASSWORD: require SASL")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(parser.parse_args()))


if __name__ == "__main__":
    main()
