"""The runtime's lean HTTP/1.1 transport: keep-alive reuse, chunked bodies, connections the
daemon closed, and a full worker loop over it."""

from __future__ import annotations

import asyncio
import socket

import pytest
from test_runtime_daemon_stub import (
    DaemonStub,
    served_stub,  # noqa: F401 (the stub fixture)
)

from trigger_local.errors import DaemonUnreachableError
from trigger_local.runtime.http11 import StreamTransport
from trigger_local.runtime.worker import RAN, Worker
from trigger_local.sdk import registry
from trigger_local.sdk.registry import task
from trigger_local.sdk.worker_client import WorkerClient


class RawServer:
    """Answers each request with the next canned response; `close_after` closes the
    connection after answering (as a daemon's keep-alive timeout would)."""

    def __init__(self, responses: list[bytes], close_after: bool = False) -> None:
        self.responses, self.close_after = responses, close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")]
                body = await reader.readexactly(length[0]) if length else b""
                self.requests.append(head + body)
                writer.write(self.responses.pop(0))
                await writer.drain()
                if self.close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    async def __aenter__(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.server = await asyncio.start_server(self.handle, sock=sock)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_requests_reuse_one_connection_and_send_json() -> None:
    raw = RawServer([ok(b'{"a":1}'), ok(b'{"b":2}')])
    async with raw as url:
        client = WorkerClient(url, transport=StreamTransport(url))
        assert await client.run_call("POST", "run_1", "logs", "tok", {"x": [1]}) == {"a": 1}
        assert await client.next_assignment("w1", "wtok", wait_s=3) == {"b": 2}
        await client.aclose()
    assert raw.connections == 1
    first, second = raw.requests
    assert first.startswith(b"POST /engine/v1/runs/run_1/logs HTTP/1.1\r\n")
    assert b"Authorization: Bearer tok\r\n" in first and first.endswith(b'{"x":[1]}')
    assert second.startswith(b"GET /engine/v1/workers/w1/next?wait_s=3 HTTP/1.1\r\n")


async def test_chunked_bodies_are_decoded() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    async with RawServer([chunked, ok(b"{}")]) as url:
        transport = StreamTransport(url)
        assert await transport.send("GET", "/x", {}, None, 5) == (200, b'{"a":1}')
        assert await transport.send("GET", "/y", {}, None, 5) == (200, b"{}")
        await transport.aclose()


async def test_a_connection_the_daemon_closed_is_replaced_transparently() -> None:
    raw = RawServer([ok(b"{}"), ok(b'{"again":true}')], close_after=True)
    async with raw as url:
        transport = StreamTransport(url)
        await transport.send("GET", "/one", {}, None, 5)
        assert await transport.send("POST", "/two", {}, b"{}", 5) == (200, b'{"again":true}')
        await transport.aclose()
    assert raw.connections == 2


async def test_connection_close_is_honoured() -> None:
    raw = RawServer([ok(b"{}", b"Connection: close\r\n"), ok(b"{}")])
    async with raw as url:
        transport = StreamTransport(url)
        await transport.send("GET", "/one", {}, None, 5)
        await transport.send("GET", "/two", {}, None, 5)
        await transport.aclose()
    assert raw.connections == 2


async def test_nothing_listening_is_retried_until_the_orphan_timeout() -> None:
    client = WorkerClient("http://127.0.0.1:9", orphan_timeout=0.2,
                          transport=StreamTransport("http://127.0.0.1:9"))
    with pytest.raises(DaemonUnreachableError, match="unreachable"):
        await client.next_assignment("w", "t", wait_s=1)


async def test_worker_loop_over_the_stream_transport(stub: DaemonStub) -> None:
    registry.clear()

    @task(id="noop")
    async def noop(payload, ctx):
        return payload

    for i in range(20):
        stub.assign(f"run_{i}", "noop", str(i))
    worker = Worker(WorkerClient(stub.url, transport=StreamTransport(stub.url)), "w", "t", wait_s=1)
    for _ in range(20):
        assert await worker.tick() == RAN
    await worker.client.aclose()
    registry.clear()
    assert [body["output"] for _, body in stub.completions] == [str(i) for i in range(20)]
