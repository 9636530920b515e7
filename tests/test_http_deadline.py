"""A request head that does not come in time closes its connection (trigger_local/
http_deadline.py): a connection that sent nothing, or half a head, used to stay open forever
and hold one of the daemon's file descriptors. A request whose head came is never cut by it,
however long its answer takes, and neither is an idle kept-alive connection (uvicorn's
keep-alive timeout governs those). A real uvicorn server (the daemon's HttpServer) on a real
socket, raw HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from trigger_local import http_deadline
from trigger_local.http_server import HttpServer, bind

DEADLINE_S = 0.3


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(3 * DEADLINE_S)
    return JSONResponse({"ok": True})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


APP = Starlette(routes=[Route("/slow", slow), WebSocketRoute("/echo", echo)])


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(http_deadline, "HEAD_DEADLINE_S", DEADLINE_S)
    sock = bind("127.0.0.1", 0)
    http = HttpServer(APP, sock)
    await http.start()
    yield sock.getsockname()[1]
    await http.drain(0.5)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server ends the connection (EOF or reset) within `seconds`."""
    try:
        data = await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return data == b""


@pytest.mark.parametrize("sent", [b"", b"GET /slow HTTP/1.1\r\nHost: da"])
async def test_a_connection_without_a_whole_head_is_closed(port: int, sent: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    assert await closed_within(reader, 10 * DEADLINE_S)
    writer.close()


async def test_a_request_whose_head_came_is_answered_however_long_it_takes(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):  # and the kept-alive connection idles past the deadline, still open
        writer.write(b"GET /slow HTTP/1.1\r\nHost: daemon\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert await reader.readexactly(length) == b'{"ok":true}'
        assert not await closed_within(reader, 2 * DEADLINE_S)
    writer.close()


async def test_a_websocket_outlives_the_deadline(port: int) -> None:
    # a shared task process's channel (runtime/channel.py) is a WebSocket: its upgrade request
    # had its head, and the connection, no longer HTTP, is never cut by the deadline
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/echo") as ws:
        for word in ("one", "two"):
            await asyncio.sleep(3 * DEADLINE_S)
            await ws.send(word)
            assert await asyncio.wait_for(ws.recv(), 10) == word
