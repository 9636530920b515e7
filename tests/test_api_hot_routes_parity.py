"""The trigger route answered before FastAPI's router (api/hot_routes.py) and the same route
answered by FastAPI (the app without `HotRoutes`) say the same to the same odd requests: the
same status, JSON body and headers (run ids and tokens aside)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import SECRET, InProcessServices
from trigger_local.api.app import create_app
from trigger_local.api.hot_routes import HotRoutes
from trigger_local.store.models import Version

JSON = {"content-type": "application/json"}
P = "/api/v1/tasks/hello/trigger"

#: (what, path, body, headers): each sent to both apps
CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("no key", P, b'{"payload":{}}', {**JSON, "authorization": ""}),
    ("wrong key", P, b'{"payload":{}}', {**JSON, "authorization": "Bearer tr_dev_wrong"}),
    ("not bearer", P, b'{"payload":{}}', {**JSON, "authorization": "Basic eDp5"}),
    ("unknown task", "/api/v1/tasks/nope/trigger", b'{"payload":{}}', JSON),
    ("a slash in the id", "/api/v1/tasks/a/b/trigger", b"{}", JSON),
    ("an encoded name", "/api/v1/tasks/h%65llo/trigger", b"{}", JSON),
    ("an encoded space", "/api/v1/tasks/he%20llo/trigger", b"{}", JSON),
    ("no id", "/api/v1/tasks//trigger", b"{}", JSON),
    ("a long id", "/api/v1/tasks/" + "a" * 500 + "/trigger", b"{}", JSON),
    ("a query string", P + "?x=1&y=%ZZ", b'{"payload":{}}', JSON),
    ("no body", P, b"", JSON),
    ("null", P, b"null", JSON),
    ("a list", P, b"[]", JSON),
    ("invalid UTF-8", P, b'{"payload":"\xff\xfe"}', JSON),
    ("cut JSON", P, b'{"payload":', JSON),
    ("too deep", P, b'{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON),
    ("1e400", P, b'{"payload":1e400}', JSON),
    ("NaN", P, b'{"payload":NaN}', JSON),
    ("no content type", P, b'{"payload":{}}', {}),
    ("text/plain", P, b'{"payload":{}}', {"content-type": "text/plain"}),
    ("options not an object", P, b'{"payload":{},"options":"x"}', JSON),
    ("a bad delay", P, b'{"payload":{},"options":{"delay":"soon"}}', JSON),
    ("over the payload limit", P, b'{"payload":"' + b"x" * (4 << 20) + b'"}', JSON),
    ("a long request key", P, b"{}", {**JSON, "x-trigger-request-idempotency-key": "k" * 3000}),
]


@pytest.fixture
async def clients(services: InProcessServices, indexed: Version,
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    hot = HotRoutes(create_app(services))  # as the daemon serves it (create_served_app)
    routed = create_app(services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hot),
                                 base_url="http://daemon.test",
                                 headers={"Authorization": f"Bearer {SECRET}"}) as a, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=routed),
                              base_url="http://daemon.test",
                              headers={"Authorization": f"Bearer {SECRET}"}) as b:
        yield a, b


def _seen(response: httpx.Response) -> tuple[int, str, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-trigger-jwt",
                                                                      "content-length")}
    return response.status_code, re.sub(r"run_[0-9a-z]+", "run_X", response.text), headers


@pytest.mark.parametrize(("what", "path", "body", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_the_hot_trigger_route_answers_odd_requests_as_fastapis_route_does(
        clients: tuple[httpx.AsyncClient, httpx.AsyncClient], what: str, path: str,
        body: bytes, headers: dict[str, str]) -> None:
    hot, routed = clients
    answers = [_seen(await c.post(path, content=body, headers=headers)) for c in (hot, routed)]
    assert answers[0] == answers[1], what
    assert answers[0][0] != 500, answers[0]
