"""The daemon's HTTP drain lets go of keep-alive connections so a client can tell whether its
request was received (trigger_local/http_drain.py): a request that comes on an idle connection
once the drain began is answered, with `Connection: close`; after a moment the connection is
half-closed, and a request that crosses that is never read — its client sees the connection end
(no reset). A real uvicorn server (the daemon's HttpServer) on a real socket, raw HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trigger_local import http_drain
from trigger_local.http_server import HttpServer, bind

seen: list[str] = []


async def hello(request: Request) -> JSONResponse:
    seen.append(request.url.path)
    return JSONResponse({"ok": True})


APP = Starlette(routes=[Route("/hello", hello)])


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, int]]:
    seen.clear()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    http = HttpServer(APP, sock)
    await http.start()
    yield http, port
    await http.drain(0.5)


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
              path: str = "/hello") -> tuple[int, dict[str, str]]:
    """One request on a kept-alive connection; its status and headers (the body is read)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: daemon\r\n\r\n".encode())
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode()
    lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    headers = {k.lower(): v for k, v in headers.items()}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers


async def drained(port: int) -> None:
    """Until the server stopped accepting: uvicorn has then told every connection to drain."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.close()
        assert asyncio.get_running_loop().time() < deadline, "the server kept accepting"
        await asyncio.sleep(0.005)


async def test_a_request_on_an_idle_connection_in_a_drain_is_answered_with_close(
        server: tuple[HttpServer, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_drain, "IDLE_S", 30.0)  # the request surely comes within it
    http, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, headers = await ask(reader, writer)
    assert status == 200 and headers.get("connection") != "close"  # kept alive
    draining = asyncio.create_task(http.drain(0.5))
    await drained(port)
    # the client had just sent its next request on the kept connection: it is answered
    status, headers = await ask(reader, writer)
    assert (status, headers.get("connection")) == (200, "close")
    assert await asyncio.wait_for(reader.read(), 30) == b""  # then the connection ends
    assert seen == ["/hello", "/hello"]
    writer.close()
    await draining


async def test_an_idle_connection_is_half_closed_and_a_late_request_never_read(
        server: tuple[HttpServer, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_drain, "IDLE_S", 0.01)
    monkeypatch.setattr(http_drain, "HALF_CLOSED_S", 30.0)
    http, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await ask(reader, writer))[0] == 200
    [connection] = http.server.server_state.connections
    draining = asyncio.create_task(http.drain(0.5))
    assert await asyncio.wait_for(reader.read(), 30) == b""  # the server's end (FIN)
    # a request that crossed it: the server does not read it, and does not reset
    writer.write(b"GET /hello HTTP/1.1\r\nHost: daemon\r\n\r\n")
    await writer.drain()
    writer.write_eof()
    deadline = asyncio.get_running_loop().time() + 30
    while not connection.transport.is_closing():  # it saw the request's bytes, then the end
        assert asyncio.get_running_loop().time() < deadline, "the connection stayed open"
        await asyncio.sleep(0.005)
    assert not http.server.server_state.connections  # the drain did not wait for it
    assert seen == ["/hello"]
    writer.close()
    await draining
