"""A request head or body that does not come in time closes its connection (trigger_local/
http_deadline.py; a late body is answered 408 first): a connection that sent nothing, half a
head, or a head and then a trickling body, used to stay open forever and hold one of the
daemon's file descriptors. A request whose head came is never cut by it,
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


async def length(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


APP = Starlette(routes=[Route("/slow", slow), WebSocketRoute("/echo", echo),
                       Route("/length", length, methods=["POST"])])


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(http_deadline, "HEAD_DEADLINE_S", DEADLINE_S)
    monkeypatch.setattr(http_deadline, "BODY_DEADLINE_S", 2 * DEADLINE_S)
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


async def test_a_body_that_trickles_in_is_answered_408_and_its_connection_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /length HTTP/1.1\r\nHost: daemon\r\nContent-Length: 100\r\n\r\n")
    answer = b""
    try:
        async with asyncio.timeout(20 * DEADLINE_S):
            for _ in range(100):  # a byte every DEADLINE_S / 3: past the body's deadline
                writer.write(b"x")
                await writer.drain()
                try:
                    answer += await asyncio.wait_for(reader.read(1000), DEADLINE_S / 3)
                except TimeoutError:
                    continue
                if not answer or answer.endswith(b"in time."):
                    break
            answer += await reader.read()
    except ConnectionResetError:
        pass
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert answer.endswith(b"The request body did not arrive in time."), answer
    writer.close()


async def test_a_big_body_that_comes_in_time_is_read_whole(port: int) -> None:
    body = b"x" * (3 * 1024 * 1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /length HTTP/1.1\r\nHost: daemon\r\nContent-Length: %d\r\n\r\n"
                 % len(body))
    for start in range(0, len(body), 64 * 1024):  # in pieces, each after a pause
        writer.write(body[start:start + 64 * 1024])
        await writer.drain()
        await asyncio.sleep(0.002)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b'"length":3145728' in await asyncio.wait_for(reader.read(100), 10)
    writer.close()


async def test_a_body_that_keeps_coming_past_the_deadline_is_read_whole(port: int) -> None:
    # a big payload from another host (`up --host 0.0.0.0`, a payload limit up to 512 MiB) can
    # take longer than BODY_DEADLINE_S on a slow link: it was cut at the deadline with a 408
    # however fast it came; what is cut is a body slower than BODY_MIN_BYTES_PER_S
    piece = 64 * 1024
    body = b"x" * (40 * piece)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /length HTTP/1.1\r\nHost: daemon\r\nContent-Length: %d\r\n\r\n"
                 % len(body))
    started = asyncio.get_running_loop().time()
    for start in range(0, len(body), piece):  # ~1.6 MiB/s, over 4 body deadlines in all
        writer.write(body[start:start + piece])
        await writer.drain()
        await asyncio.sleep(http_deadline.BODY_DEADLINE_S / 10)
    assert asyncio.get_running_loop().time() - started > 2 * http_deadline.BODY_DEADLINE_S
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b'"length":%d' % len(body) in await asyncio.wait_for(reader.read(100), 10)
    writer.close()
