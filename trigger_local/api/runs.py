"""One run: retrieve (§5.2), cancel, replay, reschedule and metadata (§5.4–§5.7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import packet_store
from ..engine import Engine, TriggerRequest
from ..errors import BadRequestError, NotFoundError, ValidationError
from ..statuses import RunStatus
from ..store.models import Run
from .auth import ADMIN, Caller
from .common import base_url, body_doc, ok, read_json, require_key, services_of
from .errors import JsonErrorRoute
from .options import payload_packet, trigger_request
from .packets import check_payload_packets
from .present import run_retrieve

router = APIRouter(route_class=JsonErrorRoute, tags=["runs"])


async def get_run(engine: Engine, run_id: str, caller: Caller = ADMIN) -> Run:
    """The run, or 404 (also for a run of another project than a project key's)."""
    run = await engine.queries.runs.get(run_id)
    if run is None or not caller.sees(run.project):
        raise NotFoundError("Run not found", run_id=run_id)
    return run


async def retrieve_body(engine: Engine, run: Run) -> dict[str, Any]:
    read = engine.queries
    parent = await read.runs.get(run.parent_run_id) if run.parent_run_id else None
    root = None
    if run.root_run_id:
        root = parent if parent is not None and parent.id == run.root_run_id \
            else await read.runs.get(run.root_run_id)
    schedule = await read.schedules.get(run.schedule_id) if run.schedule_id else None
    body = run_retrieve(run, engine.clock.now(), attempts=await read.attempts.for_run(run.id),
                        parent=parent, root=root,
                        children=await read.runs.children(run.id), schedule=schedule,
                        status_reason=engine.projects.status_reason(run))
    body["retryPolicy"] = (await engine.retry_policy(run)).to_json()  # ours: the policy in effect
    return body


@router.get("/api/v3/runs/{run_id}")
async def retrieve_run(run_id: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc, f"read:runs:{run_id}")
    run = await get_run(svc.engine, run_id, caller)
    body = await retrieve_body(svc.engine, run)
    if run.payload_type == packet_store.STORE and run.payload:  # §2.3: the SDK fetches it itself
        body["payloadPresignedUrl"] = packet_store.presigned_url(base_url(request, svc),
                                                                 svc.secret_key, run.payload)
    return ok(body)


@router.post("/api/v2/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> Response:
    """Cancel; a run that already ended is left as it is (still 200, Trigger.dev's answer). The
    body also says which happened: `status` (the run's, after the call) and `alreadyFinal`
    (true: it had ended before, with that status; nothing changed)."""
    svc = services_of(request)
    caller = require_key(request, svc, f"write:runs:{run_id}")
    before = await get_run(svc.engine, run_id, caller)
    try:
        run = await svc.engine.cancel(run_id)
    except NotFoundError as exc:
        raise NotFoundError("Run not found", run_id=run_id) from exc
    already_final = before.is_final or run.status != RunStatus.CANCELED  # ended meanwhile
    return ok({"id": run.id, "status": str(run.status), "alreadyFinal": already_final})


_REPLAY_OVERRIDES = ("payload", "payloadType", "metadata", "tags", "queue", "concurrencyKey",
                     "machine", "delay", "ttl", "idempotencyKey", "idempotencyKeyTTL",
                     "maxAttempts", "maxDuration", "priority")


def _replay_request(run: Run, body: dict[str, Any]) -> TriggerRequest:
    """The original run's options with the 4.8.3 client's overrides on top."""
    options = {k: body[k] for k in _REPLAY_OVERRIDES
               if k in body and k not in ("payload", "payloadType")}
    if isinstance(options.get("queue"), str):
        options["queue"] = {"name": options["queue"]}
    req = trigger_request(run.task_id, {"options": options})
    if "payload" in body:
        req.payload, req.payload_type = payload_packet(body["payload"], body.get("payloadType"))
    else:
        req.payload, req.payload_type = run.payload, run.payload_type
    defaults: dict[str, Any] = {"queue": run.queue, "concurrency_key": run.concurrency_key,
                                "max_attempts": run.max_attempts,
                                "max_duration": run.max_duration_s, "machine": run.machine,
                                "metadata": run.metadata}
    for name, value in defaults.items():
        if getattr(req, name) is None:
            setattr(req, name, value)
    req.tags = req.tags if "tags" in body else list(run.tags)
    req.is_test, req.project = run.is_test, run.project
    return req


@router.post("/api/v1/runs/{run_id}/replay",
             openapi_extra=body_doc({"payload": {}, "payloadType": {"type": "string"},
                                     "tags": {"type": "array", "items": {"type": "string"}},
                                     "queue": {"type": "string"}, "metadata": {"type": "object"}}))
async def replay_run(run_id: str, request: Request) -> Response:
    """A new run of the same task and payload; the body (optional) overrides options."""
    svc = services_of(request)
    caller = require_key(request, svc)
    body = await read_json(request, svc)
    run = await get_run(svc.engine, run_id, caller)
    if not any(k in body for k in _REPLAY_OVERRIDES):
        new = await svc.engine.replay(run.id)
    else:
        req = _replay_request(run, body)
        await check_payload_packets(svc, caller, [req])
        new = (await svc.engine.trigger(req)).run
    return ok({"id": new.id})


@router.post("/api/v1/runs/{run_id}/reschedule",
             openapi_extra=body_doc({"delay": {"type": "string"}}, ["delay"]))
async def reschedule_run(run_id: str, request: Request) -> Response:
    """Move a DELAYED run's start; answers the full run (§5.6)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    body = await read_json(request, svc)
    delay = body.get("delay")
    if not isinstance(delay, str | int | float) or isinstance(delay, bool) or delay == "":
        raise BadRequestError("Invalid request body: delay must be a duration (1h) or an ISO date")
    await get_run(svc.engine, run_id, caller)
    try:
        run = await svc.engine.reschedule(run_id, delay)
    except ValidationError as exc:  # Trigger.dev answers 400 for these
        raise BadRequestError(exc.message) from exc
    return ok(await retrieve_body(svc.engine, run))


def _operations(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    ops = body.get(key)
    if ops is None:
        return []
    if not isinstance(ops, list) \
            or not all(isinstance(op, dict) and isinstance(op.get("type"), str) for op in ops):
        raise BadRequestError(f"{key} must be a list of operations like "
                              f"{{\"type\": \"set\", \"key\", \"value\"}}")
    for op in ops:
        key_name = str(op.get("key") or "")
        if any(part in key_name for part in ("__proto__", "constructor", "prototype")):
            raise BadRequestError(f"Invalid metadata key {key_name!r}")
    return ops


@router.put("/api/v1/runs/{run_id}/metadata",
            openapi_extra=body_doc({"metadata": {"type": "object"},
                                    "operations": {"type": "array", "items": {"type": "object"}}}))
async def update_metadata(run_id: str, request: Request) -> Response:
    """Replace and/or apply operations; parent/root operations go to those runs."""
    svc = services_of(request)
    caller = require_key(request, svc)
    body = await read_json(request, svc)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequestError("metadata must be a JSON object")
    ops = _operations(body, "operations")
    parent_ops = _operations(body, "parentOperations")
    root_ops = _operations(body, "rootOperations")
    run = await get_run(svc.engine, run_id, caller)
    if run.is_final:
        raise ValidationError("Cannot update metadata for a completed run")
    value = await svc.engine.update_metadata(run.id, metadata, ops)
    for target, target_ops in ((run.parent_run_id, parent_ops),
                               (run.root_run_id or run.parent_run_id, root_ops)):
        if target and target_ops:
            await svc.engine.update_metadata(target, None, target_ops)
    return ok({"metadata": value})


@router.get("/api/v1/runs/{run_id}/metadata")
async def get_metadata(run_id: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc, f"read:runs:{run_id}")
    run = await get_run(svc.engine, run_id, caller)
    return ok({"metadata": run.metadata or {}, "metadataType": "application/json"})
