"""`POST /api/v1/tasks/{taskId}/trigger`, and the request key it shares with batch creation: a
client retrying after a lost response gets the run it already created (the engine checks and
records the key in the transaction that creates the run)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..limits import MAX_IDEMPOTENCY_KEY_LENGTH, check_name
from .common import jwt_header, ok, read_json, require_key, require_known_project, services_of
from .errors import JsonErrorRoute
from .options import trigger_request
from .packets import check_payload_packets

router = APIRouter(route_class=JsonErrorRoute, tags=["runs"])

_BODY_DOC = {"requestBody": {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"payload": {}, "options": {"type": "object"}}}}}}}


def request_cache_key(request: Request, scope: str) -> str | None:
    """The engine's `request_key` for this request: its `x-trigger-request-idempotency-key`
    within `scope` (the route), or None without the header."""
    header = request.headers.get("x-trigger-request-idempotency-key")
    if header:  # stored with the runs it made: bounded like an idempotency key
        check_name(header, "x-trigger-request-idempotency-key", MAX_IDEMPOTENCY_KEY_LENGTH)
    return f"{scope}:{header}" if header else None


# `:path`: a task id may hold "/" (Trigger.dev allows it; its SDKs send it as %2F, which the
# server decodes before routing)
@router.post("/api/v1/tasks/{task_id:path}/trigger", openapi_extra=_BODY_DOC)
async def trigger_task(task_id: str, request: Request) -> Response:
    """Create a run of `task_id` (Trigger.dev §3): `{"id", "isCached"}` plus `x-trigger-jwt`.
    The same request key again answers with the same run (also when sent concurrently)."""
    svc = services_of(request)
    caller = require_key(request, svc, f"trigger:tasks:{task_id}")
    require_known_project(svc, caller)
    body = await read_json(request, svc, required=True)  # an empty body: 400, not a None payload
    req = trigger_request(task_id, body, request.headers)
    req.project = caller.project  # None: the one project that has the task (engine/projects.py)
    await check_payload_packets(svc, caller, [req])
    request_key = request_cache_key(request, f"trigger:{task_id}")
    result = await svc.engine.trigger(req, request_key=request_key)
    run_id = result.run.id
    return ok({"id": run_id, "isCached": result.cached},
              headers=jwt_header(svc, [f"read:runs:{run_id}"]))
