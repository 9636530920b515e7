"""Queues (§7): list with offset pages, retrieve by id, task or custom name, pause/resume and
the concurrency override."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..engine import Engine
from ..errors import BadRequestError, NotFoundError
from ..limits import MAX_CONCURRENCY_LIMIT, MAX_PAGE
from ..store.models import Queue
from ..strict_json import shown
from .auth import ADMIN, Caller
from .common import body_doc, int_param, ok, read_json, require_key, services_of
from .errors import JsonErrorRoute
from .present import queue_item

router = APIRouter(route_class=JsonErrorRoute, tags=["queues"])

_TYPES = ("id", "task", "custom")
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)


def base_limit(engine: Engine, queue: Queue) -> int | None:
    """The limit its project's current version declares for the queue (what `reset` goes back
    to)."""
    version = engine.projects.current_of(queue.project)
    for task in version.tasks if version else []:
        if task.queue == queue.name:
            return task.queue_concurrency_limit
    return None


def _matches(queue: Queue, name: str, type_: str | None) -> bool:
    if type_ == "id":
        return queue.id == name
    if type_ == "task":
        return queue.name in (name if name.startswith("task/") else f"task/{name}", name)
    if type_ == "custom":
        return queue.name == name
    return name in (queue.id, queue.name, f"task/{name}")


async def find_queue(engine: Engine, value: str, type_: str | None,
                     caller: Caller = ADMIN) -> Queue:
    """The queue `value` names, in the caller's project (with none named: the one project that
    has it; 400 when several have). The SDK encodes `/` as `%2F` and then URL-encodes the path:
    the router undid the second step, this undoes the first."""
    if type_ is not None and type_ not in _TYPES:
        raise BadRequestError(f"type must be one of {', '.join(_TYPES)}, not {type_!r}")
    name = _ENCODED_SLASH.sub("/", value)
    if not name.strip():  # a 400, as an empty or blank options.queue.name is, not a 404
        raise BadRequestError("A queue name (a task id, a custom queue's name or a queue_… id) "
                              "is required, not an empty or blank one", field="name")
    # a queue id is one queue of one project: the daemon's key reaches it whatever project
    # the request's header names (the dashboard lists every project's and acts on one by id)
    within = None if type_ == "id" and not caller.scoped else caller.project
    found = [q for q in await engine.queries.queues.all(within) if _matches(q, name, type_)]
    if len(found) > 1:
        raise engine.projects.ambiguous_error(f"Queue {name!r}", sorted({q.project for q in found}))
    if not found:
        raise NotFoundError("queue-not-found", queue=name)
    return found[0]


def item(engine: Engine, queue: Queue) -> dict[str, Any]:
    return queue_item(queue, base_limit(engine, queue))


@router.get("/api/v1/queues")
async def list_queues(request: Request, page: str | None = Query(None),
                      per_page: str | None = Query(None, alias="perPage")) -> Response:
    """Every project's queues (each names its `project`); a project key sees its own."""
    svc = services_of(request)
    caller = require_key(request, svc)
    number = int_param(page, "page", 1, 1, MAX_PAGE)
    size = int_param(per_page, "perPage", 25, 1, 100)
    queues = await svc.engine.queries.queues.all(caller.project if caller.scoped else None)
    chunk = queues[(number - 1) * size:number * size]
    return ok({"data": [item(svc.engine, q) for q in chunk],
               "pagination": {"currentPage": number,
                              "totalPages": max(1, math.ceil(len(queues) / size)),
                              "count": len(queues)}})


async def _body_type(request: Request) -> tuple[dict[str, Any], str | None]:
    body = await read_json(request, services_of(request))
    type_ = body.get("type", request.query_params.get("type"))
    return body, type_ if isinstance(type_, str) else None


@router.post("/api/v1/queues/{value:path}/pause",
             openapi_extra=body_doc({"type": {"type": "string"}, "action": {"type": "string"}}))
async def pause_queue(value: str, request: Request) -> Response:
    """Body `{"type", "action": "pause"|"resume"}`: paused queues accept runs and start none."""
    svc = services_of(request)
    caller = require_key(request, svc)
    body, type_ = await _body_type(request)
    action = body.get("action", "pause")
    if action not in ("pause", "resume"):
        raise BadRequestError(f"action must be pause or resume, not {action!r}")
    queue = await find_queue(svc.engine, value, type_, caller)
    paused = await svc.engine.set_queue_paused(queue.name, action == "pause", queue.project)
    return ok(item(svc.engine, paused))


@router.post("/api/v1/queues/{value:path}/concurrency/override",
             openapi_extra=body_doc({"type": {"type": "string"},
                                     "concurrencyLimit": {"type": "integer"}},
                                    ["concurrencyLimit"]))
async def override_limit(value: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc)
    body, type_ = await _body_type(request)
    limit = body.get("concurrencyLimit")
    if isinstance(limit, bool) or not isinstance(limit, int) \
            or not 0 <= limit <= MAX_CONCURRENCY_LIMIT:
        raise BadRequestError("concurrencyLimit must be a whole number from 0 to "
                              f"{MAX_CONCURRENCY_LIMIT}, not {shown(limit)}")
    queue = await find_queue(svc.engine, value, type_, caller)
    return ok(item(svc.engine, await svc.engine.set_queue_limit(queue.name, limit, queue.project)))


@router.post("/api/v1/queues/{value:path}/concurrency/reset",
             openapi_extra=body_doc({"type": {"type": "string"}}))
async def reset_limit(value: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc)
    _, type_ = await _body_type(request)
    queue = await find_queue(svc.engine, value, type_, caller)
    limit = base_limit(svc.engine, queue)
    return ok(item(svc.engine, await svc.engine.set_queue_limit(queue.name, limit, queue.project)))


@router.get("/api/v1/queues/{value:path}")
async def retrieve_queue(value: str, request: Request,
                         type: str | None = Query(None)) -> Response:  # noqa: A002
    svc = services_of(request)
    caller = require_key(request, svc)
    return ok(item(svc.engine, await find_queue(svc.engine, value, type, caller)))
