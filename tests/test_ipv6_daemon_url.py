"""A daemon on an IPv6 address (`up --host ::1`) is reached at the URL it announces: its
`daemon.json` (which the CLI and SDK read) and its task processes' TRIGGER_API_URL came from
DaemonSettings.url, `http://::1:8030` unbracketed, which no client can use ("its port ':1:8030'
is not a number up to 65535. Check TRIGGER_LOCAL_HOST", with TRIGGER_LOCAL_HOST unset). A real
server on the IPv6 loopback, reached over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trigger_local.config import DaemonSettings
from trigger_local.home import write_info
from trigger_local.http_server import HttpServer, bind
from trigger_local.sdk.client import resolve_endpoint


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"pong": True})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = bind("::1", 0)
    http = HttpServer(Starlette(routes=[Route("/ping", ping)]), sock)
    await http.start()
    yield sock.getsockname()[1]
    await http.drain(0.5)


async def test_the_url_an_ipv6_daemon_announces_reaches_it(
        port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DaemonSettings(home=tmp_path, host="::1", port=port)
    assert settings.url == f"http://[::1]:{port}"
    write_info(settings)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path))
    for name in ("TRIGGER_API_URL", "TRIGGER_LOCAL_HOST", "TRIGGER_LOCAL_PORT"):
        monkeypatch.delenv(name, raising=False)
    endpoint = resolve_endpoint()
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{endpoint.base_url}/ping")
    assert answer.json() == {"pong": True}


def test_an_ipv4_or_named_host_is_left_as_it_is(tmp_path: Path) -> None:
    assert DaemonSettings(home=tmp_path, host="127.0.0.1", port=8030).url == \
        "http://127.0.0.1:8030"
    assert DaemonSettings(home=tmp_path, host="localhost", port=1).url == "http://localhost:1"
