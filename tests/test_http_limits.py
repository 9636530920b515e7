"""A request head past the daemon's limits (trigger_local/http_limits.py) is refused with 431
and its connection closes: a 200 KB header, 5,000 headers, or a header line that never ends
(sent in pieces) used to be accepted, and held. A head within them is served as before. A real
uvicorn server (the daemon's HttpServer) on a real socket, raw HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trigger_local.http_limits import MAX_HEAD_BYTES, MAX_HEADERS
from trigger_local.http_server import HttpServer, bind


async def headers(request: Request) -> JSONResponse:
    return JSONResponse({"count": len(request.headers)})


APP = Starlette(routes=[Route("/headers", headers)])


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = bind("127.0.0.1", 0)
    http = HttpServer(APP, sock)
    await http.start()
    yield sock.getsockname()[1]
    await http.drain(0.5)


async def answer_to(port: int, pieces: list[bytes]) -> bytes:
    """What the server sends back (until it closes) to a request written in `pieces`; the
    writing stops once an answer comes (the server closes without reading the rest)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            try:  # each piece its own read on the server's side
                received = await asyncio.wait_for(reader.read(65536), 0.05)
            except TimeoutError:
                continue
            break
        received += await asyncio.wait_for(reader.read(), 10)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return received


def request(*lines: bytes) -> bytes:
    return b"GET /headers HTTP/1.1\r\nHost: daemon\r\nConnection: close\r\n" \
        + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@pytest.mark.parametrize("head", [
    request(b"X-Big: " + b"a" * 200_000),
    request(*(b"X-%d: 1" % n for n in range(5000))),
    request(*(b"X-%d: 1" % n for n in range(MAX_HEADERS))),  # with Host and Connection
], ids=["a 200 KB header", "5,000 headers", "one header too many"])
async def test_a_head_past_the_limits_is_refused_431(port: int, head: bytes) -> None:
    received = await answer_to(port, [head])
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]
    assert received.endswith(b"for the target and headers together."), received[-200:]


async def test_a_header_line_that_never_ends_is_refused_431(port: int) -> None:
    pieces = [b"GET /headers HTTP/1.1\r\nX-Endless: "] + [b"a" * 16384] * 20
    received = await answer_to(port, pieces)
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


async def test_a_head_within_the_limits_is_served(port: int) -> None:
    head = request(*(b"X-%d: " % n + b"a" * 500 for n in range(MAX_HEADERS - 2)))
    assert MAX_HEAD_BYTES // 2 < len(head) < MAX_HEAD_BYTES
    received = await answer_to(port, [head])
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    assert received.endswith(b'{"count":%d}' % MAX_HEADERS), received[-200:]
