"""The daemon's HTTP protocol answers a small request with one write (trigger_local/http_writes.py,
issue #13): uvicorn writes a response's head and body apart, two sends and two wake-ups of the
client per answer. A real uvicorn server with the daemon's protocol, a real socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from trigger_local.http_writes import HeadHoldingTransport, OneWriteHttp


class Counting:
    """The socket's transport, counting the writes that reach it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.writes = transport, 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


transports: list[Counting] = []


class Recorded(OneWriteHttp):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transports.append(Counting(transport))
        super().connection_made(transports[-1])  # type: ignore[arg-type]


async def small(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "body": (await request.body()).decode()})


async def streamed(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        await asyncio.sleep(0.01)
        yield b"two\n"
    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())
    await websocket.close()


APP = Starlette(routes=[Route("/small", small, methods=["POST"]), Route("/streamed", streamed),
                        WebSocketRoute("/ws", echo)])


@pytest.fixture
async def server() -> AsyncIterator[str]:
    transports.clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    config = uvicorn.Config(APP, log_level="warning", lifespan="off", http=Recorded)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    deadline = asyncio.get_running_loop().time() + 30
    while not srv.started:
        assert not task.done() and asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    await asyncio.wait_for(task, 30)


async def test_a_small_answer_is_one_write(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for n in range(3):  # keep-alive: each answer on the same connection
            r = await client.post("/small", content=f"body {n}")
            assert r.status_code == 200 and r.json() == {"ok": True, "body": f"body {n}"}
    assert len(transports) == 1
    assert transports[0].writes == 3


async def test_a_streamed_answer_keeps_its_order_and_its_head_is_not_held_back(
        server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.get("/streamed")
    assert r.status_code == 200 and r.text == "one\ntwo\n"


async def test_a_websocket_through_the_wrapped_transport(server: str) -> None:
    from websockets.asyncio.client import connect
    async with connect(server.replace("http", "ws") + "/ws", proxy=None) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 30) == "HELLO"


class FakeTransport:
    """Records writes (the edge: the real one is the socket)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_a_head_goes_with_the_body_written_after_it() -> None:
    fake = FakeTransport()
    t = HeadHoldingTransport(fake)  # type: ignore[arg-type]
    t.write(HEAD)
    assert fake.sent == []
    t.write(b"{}")
    assert fake.sent == [HEAD + b"{}"]
    t.write(b"other")  # not a head: straight through
    assert fake.sent == [HEAD + b"{}", b"other"]
    await asyncio.sleep(0)
    assert len(fake.sent) == 2  # nothing was left to flush


async def test_a_head_alone_goes_out_on_the_next_loop_turn_or_at_close() -> None:
    fake = FakeTransport()
    t = HeadHoldingTransport(fake)  # type: ignore[arg-type]
    t.write(HEAD)
    await asyncio.sleep(0)
    assert fake.sent == [HEAD]
    t.write(HEAD)
    t.close()
    assert fake.sent == [HEAD, HEAD] and fake.closed
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's
