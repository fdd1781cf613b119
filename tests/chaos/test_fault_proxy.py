"""The fault proxy itself, in front of a loopback echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import until


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server, FaultProxy(f"127.0.0.1:{server.sockets[0].getsockname()[1]}") as faults:
        yield faults


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_bytes_pass_with_the_latency_added(proxy: FaultProxy) -> None:
    """With latency set, an echo comes back intact after at least the latency each way."""
    reader, writer = await connect(proxy)
    proxy.latency(0.1)
    started = time.monotonic()
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    assert time.monotonic() - started >= 0.2
    writer.close()


async def test_a_hang_holds_bytes_until_resumed(proxy: FaultProxy) -> None:
    """During a hang the connection stays open and silent; on resume what was held arrives."""
    reader, writer = await connect(proxy)
    proxy.hang()
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)  # silence is the fault being shown
    assert proxy.open_connections == 1
    proxy.resume()
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
    writer.close()


async def test_a_reset_aborts_every_connection(proxy: FaultProxy) -> None:
    """A reset ends every open connection with a RST, and new connections work."""
    reader, _ = await connect(proxy)
    await asyncio.wait_for(_echoed(proxy), 5)
    await until(lambda: _opened(proxy, 1), timeout=5, what="the proxy linking the connection")
    assert proxy.reset() >= 1
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    await asyncio.wait_for(_echoed(proxy), 5)


async def test_a_slow_close_silences_then_closes_with_a_fin(proxy: FaultProxy) -> None:
    """Connections closed slowly go silent, then end with an orderly EOF after the delay."""
    reader, writer = await connect(proxy)
    await until(lambda: _opened(proxy, 1), timeout=5, what="the proxy linking the connection")
    assert proxy.close_slowly(0.3) == 1
    writer.write(b"lost")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started >= 0.25
    await asyncio.wait_for(_echoed(proxy), 5)


async def _echoed(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"echo")
    assert await reader.readexactly(4) == b"echo"
    writer.close()


async def _opened(proxy: FaultProxy, count: int) -> bool:
    return proxy.open_connections >= count
