"""The daemon's HTTP server stack (trigger_local/http_server.py, issue #13): no proxy stands
before the daemon, so it reads no X-Forwarded-* header (uvicorn's proxy-headers layer let a
local client name any peer address, and cost every request a call) and writes no `server`
header. A real HttpServer on a real socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from trigger_local.http_server import HttpServer, bind


async def echo_peer(scope: dict[str, Any], receive: Callable[..., Any],
                    send: Callable[..., Any]) -> None:
    """Answers with the peer address and scheme the server put in the scope."""
    body = json.dumps({"client": scope["client"][0], "scheme": scope["scheme"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    sock = bind("127.0.0.1", 0)
    http = HttpServer(echo_peer, sock)
    await http.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    await http.drain(1.0)


async def test_forwarded_headers_do_not_change_the_peer(server: str) -> None:
    headers = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.get("/", headers=headers)
    assert r.status_code == 200
    assert r.json() == {"client": "127.0.0.1", "scheme": "http"}


async def test_an_answer_has_no_server_header(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.get("/")
    assert r.status_code == 200
    assert "server" not in r.headers
    assert "date" in r.headers  # what a client may read stays
