"""`POST /api/v1/tasks/{taskId}/trigger`, and the request-idempotency cache it shares with
batch creation: a client retrying after a lost response gets the run it already created."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .common import jwt_header, ok, read_json, require_key, services_of
from .errors import JsonErrorRoute
from .options import trigger_request
from .services import DaemonServices

router = APIRouter(route_class=JsonErrorRoute, tags=["runs"])

REQUEST_CACHE_S = 24 * 3600
_BODY_DOC = {"requestBody": {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"payload": {}, "options": {"type": "object"}}}}}}}


def request_cache_key(request: Request, scope: str) -> str | None:
    header = request.headers.get("x-trigger-request-idempotency-key")
    return f"{scope}:{header}" if header else None


async def cached_response(svc: DaemonServices, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    since = svc.engine.clock.now() - REQUEST_CACHE_S
    return await svc.engine.store.read().get_cached_response(key, since)


async def remember_response(svc: DaemonServices, key: str | None, response: dict[str, Any]) -> None:
    if key is None:
        return
    async with svc.engine.store.tx() as ops:
        await ops.put_cached_response(key, svc.engine.clock.now(), response)


@router.post("/api/v1/tasks/{task_id}/trigger", openapi_extra=_BODY_DOC)
async def trigger_task(task_id: str, request: Request) -> Response:
    """Create a run of `task_id` (Trigger.dev §3): `{"id", "isCached"}` plus `x-trigger-jwt`."""
    svc = services_of(request)
    caller = require_key(request, svc, f"trigger:tasks:{task_id}")
    body = await read_json(request, svc)
    cache_key = request_cache_key(request, f"trigger:{task_id}")
    cached = await cached_response(svc, cache_key)
    if cached is not None:
        return ok({"id": cached["id"], "isCached": False}, headers=jwt_header(svc, [f"read:runs:{cached['id']}"]))
    req = trigger_request(task_id, body, request.headers)
    req.project = caller.project  # None: the one project that has the task (engine/projects.py)
    result = await svc.engine.trigger(req)
    run_id = result.run.id
    await remember_response(svc, cache_key, {"id": run_id})
    return ok({"id": run_id, "isCached": result.cached}, headers=jwt_header(svc, [f"read:runs:{run_id}"]))
