"""The single trigger route is answered before FastAPI's router (api/hot_routes.py, issue #13)
with the same answers and errors as the route FastAPI describes; other paths are FastAPI's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, InProcessServices
from trigger_local.api.app import create_app, create_served_app
from trigger_local.api.hot_routes import HotRoutes, trigger_task_id
from trigger_local.store.models import Version


@pytest.fixture
async def counted(services: InProcessServices,
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """A client of the app, and the paths that reached FastAPI's router."""
    app = create_app(services)
    routed: list[str] = []
    router_app = app.router.__call__

    async def router(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await router_app(scope, receive, send)

    app.middleware_stack = None  # rebuilt around the counting router at the first request
    app.router = _Wrapped(app.router, router)  # type: ignore[assignment]
    transport = httpx.ASGITransport(app=HotRoutes(app))  # as create_served_app
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon.test",
                                 headers={"Authorization": f"Bearer {SECRET}"}) as client:
        yield client, routed


class _Wrapped:
    """The router, with its ASGI call counted (everything else is the router's)."""

    def __init__(self, inner: Any, call: Any) -> None:
        self._inner, self._call = inner, call

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._call(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_which_paths_are_triggers() -> None:
    assert trigger_task_id("/api/v1/tasks/hello/trigger") == "hello"
    assert trigger_task_id("/api/v1/tasks/email/send/trigger") == "email/send"
    assert trigger_task_id("/api/v1/tasks/batch") is None
    assert trigger_task_id("/api/v1/tasks/trigger") is None
    assert trigger_task_id("/api/v2/tasks/hello/trigger") is None
    assert trigger_task_id("/engine/v1/runs/run_1/trigger") is None


async def test_a_trigger_does_not_go_through_the_router_and_answers_as_before(
        counted: tuple[httpx.AsyncClient, list[str]], indexed: Version) -> None:
    api, routed = counted
    r = await api.post("/api/v1/tasks/hello/trigger", json={"payload": {"name": "Ada"}},
                       headers={"x-trigger-request-idempotency-key": "req-1"})
    assert r.status_code == 200, r.text
    assert r.json()["id"].startswith("run_") and r.json()["isCached"] is False
    assert r.headers["x-trigger-jwt"]
    again = await api.post("/api/v1/tasks/hello/trigger", json={"payload": {"name": "Ada"}},
                           headers={"x-trigger-request-idempotency-key": "req-1"})
    assert again.json()["id"] == r.json()["id"]
    assert routed == []
    run = await api.get(f"/api/v3/runs/{r.json()['id']}")  # any other path: FastAPI's
    assert run.status_code == 200 and routed == [f"/api/v3/runs/{r.json()['id']}"]


async def test_a_triggers_errors_are_the_apis_json_errors(
        counted: tuple[httpx.AsyncClient, list[str]], indexed: Version) -> None:
    api, routed = counted
    missing = await api.post("/api/v1/tasks/nope/trigger", json={})
    assert missing.status_code == 404 and missing.json()["code"] == "task_not_found"
    bad = await api.post("/api/v1/tasks/hello/trigger", content=b"[1, 2]",
                         headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]
    unauthorized = await api.post("/api/v1/tasks/hello/trigger", json={},
                                  headers={"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401 and "error" in unauthorized.json()
    wrong_method = await api.get("/api/v1/tasks/hello/trigger")  # not a trigger: FastAPI's 405
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "http_405"
    assert routed == ["/api/v1/tasks/hello/trigger"]


async def test_the_served_app_answers_a_trigger_before_fastapis_stack(
        services: InProcessServices, indexed: Version) -> None:
    """The daemon serves `create_served_app`: a trigger never enters FastAPI (its middleware
    stack is built on the first request that does); every other request does."""
    served = create_served_app(services)
    assert isinstance(served, HotRoutes)
    fastapi_app = served.app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served),
                                 base_url="http://daemon.test",
                                 headers={"Authorization": f"Bearer {SECRET}"}) as api:
        r = await api.post("/api/v1/tasks/hello/trigger", json={"payload": {"name": "Ada"}})
        assert r.status_code == 200 and r.headers["x-trigger-jwt"], r.text
        assert fastapi_app.middleware_stack is None  # type: ignore[attr-defined]
        missing = await api.post("/api/v1/tasks/nope/trigger", json={})
        assert missing.status_code == 404 and missing.json()["code"] == "task_not_found"
        assert fastapi_app.middleware_stack is None  # type: ignore[attr-defined]
        run = await api.get(f"/api/v3/runs/{r.json()['id']}")
        assert run.status_code == 200 and run.json()["status"] in ("QUEUED", "PENDING_VERSION")
        assert fastapi_app.middleware_stack is not None  # type: ignore[attr-defined]
