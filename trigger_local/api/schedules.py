"""Schedules (TRIGGER_API.md §8): `/api/v1/schedules` CRUD, activate/deactivate, offset
pages, and `GET /api/v1/timezones` (no auth, as the SDK sends it without a key)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..durations import iso
from ..engine.cron import timezones
from ..engine.schedules import DECLARATIVE, ScheduleSpec
from ..errors import BadRequestError, NotFoundError
from ..limits import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_NAME_LENGTH, MAX_PAGE, check_name
from ..store.models import Schedule
from .common import (
    body_doc,
    int_param,
    ok,
    read_json,
    require_key,
    require_known_project,
    services_of,
)
from .errors import JsonErrorRoute
from .present import cron_generator

router = APIRouter(route_class=JsonErrorRoute, tags=["schedules"])

#: Trigger.dev shows one environment; ours is the local development one
ENVIRONMENT = {"id": "env_local", "type": "DEVELOPMENT", "userName": None}
_BODY = body_doc({"task": {"type": "string"}, "cron": {"type": "string"},
                  "timezone": {"type": "string"}, "externalId": {"type": "string"},
                  "deduplicationKey": {"type": "string"},
                  "missedPolicy": {"type": "string", "enum": ["latest", "all", "skip"]}},
                 ["task", "cron"])


def schedule_object(s: Schedule) -> dict[str, Any]:
    """Trigger.dev's ScheduleObject, plus our `missedPolicy` and `project` (`window` omitted: we
    have none)."""
    return {"id": s.id, "type": s.type, "task": s.task_id, "active": s.active,
            "deduplicationKey": None if s.type == DECLARATIVE else s.deduplication_key,
            "externalId": s.external_id,
            "generator": cron_generator(s.cron),
            "timezone": s.timezone, "nextRun": iso(s.next_run_at) if s.active else None,
            "nextRunEffectiveAt": iso(s.next_run_at) if s.active else None,
            "lastRun": iso(s.last_run_at), "missedPolicy": s.missed_policy,
            "environments": [ENVIRONMENT], "project": s.project}


def _spec(body: dict[str, Any], with_key: bool) -> ScheduleSpec:
    """Shape checks (400 with `issues`, as Trigger.dev's zod errors); meaning is the engine's
    (422)."""
    issues = []
    for name in ("task", "cron"):
        if not isinstance(body.get(name), str) or not body[name]:
            issues.append({"path": [name],
                           "message": "Required" if name not in body else "Expected string"})
    optional = ["timezone", "externalId", "missedPolicy"]
    optional += ["deduplicationKey"] if with_key else []
    for name in optional:
        if body.get(name) is not None and not isinstance(body[name], str):
            issues.append({"path": [name], "message": "Expected string"})
    if issues:
        raise BadRequestError("Invalid request body", issues=issues)
    for name in ("externalId", "deduplicationKey", "timezone"):
        if body.get(name):  # shown in tables and completions: no control characters
            check_name(body[name], name, MAX_IDEMPOTENCY_KEY_LENGTH if name == "externalId"
                       else MAX_NAME_LENGTH)
    return ScheduleSpec(task_id=body["task"], cron=body["cron"],
                        timezone=body.get("timezone") or "UTC", external_id=body.get("externalId"),
                        deduplication_key=body.get("deduplicationKey") if with_key else None,
                        missed_policy=body.get("missedPolicy") or "latest")


@router.post("/api/v1/schedules", openapi_extra=_BODY)
async def create_schedule(request: Request) -> Response:
    """In the caller's project (with none named: the one project whose version has the task)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    require_known_project(svc, caller)
    spec = _spec(await read_json(request, svc), with_key=True)
    spec.project = caller.project
    return ok(schedule_object(await svc.engine.create_schedule(spec)))


@router.get("/api/v1/schedules")
async def list_schedules(request: Request, page: str | None = Query(None),
                         per_page: str | None = Query(None, alias="perPage")) -> Response:
    """Every project's schedules (each names its `project`); a project key sees its own."""
    svc = services_of(request)
    caller = require_key(request, svc)
    number = int_param(page, "page", 1, 1, MAX_PAGE)
    size = int_param(per_page, "perPage", 25, 1, 100)
    filters = {"project": caller.project} if caller.scoped else {}
    items, total = await svc.engine.list_schedules(number, size, **filters)
    return ok({"data": [schedule_object(s) for s in items],
               "pagination": {"currentPage": number, "totalPages": max(1, math.ceil(total / size)),
                              "count": total}})


async def _visible(request: Request, schedule_id: str) -> None:
    """404 for a schedule of another project than a project key's."""
    svc = services_of(request)
    caller = require_key(request, svc)
    if caller.scoped and not caller.sees((await svc.engine.get_schedule(schedule_id)).project):
        raise NotFoundError("Schedule not found")


@router.get("/api/v1/schedules/{schedule_id}")
async def retrieve_schedule(schedule_id: str, request: Request) -> Response:
    await _visible(request, schedule_id)
    return ok(schedule_object(await services_of(request).engine.get_schedule(schedule_id)))


@router.put("/api/v1/schedules/{schedule_id}", openapi_extra=_BODY)
async def update_schedule(schedule_id: str, request: Request) -> Response:
    await _visible(request, schedule_id)
    svc = services_of(request)
    spec = _spec(await read_json(request, svc), with_key=False)
    return ok(schedule_object(await svc.engine.update_schedule(schedule_id, spec)))


@router.delete("/api/v1/schedules/{schedule_id}")
async def delete_schedule(schedule_id: str, request: Request) -> Response:
    await _visible(request, schedule_id)
    schedule = await services_of(request).engine.delete_schedule(schedule_id)
    return ok({"id": schedule.id})


@router.post("/api/v1/schedules/{schedule_id}/activate")
async def activate_schedule(schedule_id: str, request: Request) -> Response:
    await _visible(request, schedule_id)
    engine = services_of(request).engine
    return ok(schedule_object(await engine.set_schedule_active(schedule_id, True)))


@router.post("/api/v1/schedules/{schedule_id}/deactivate")
async def deactivate_schedule(schedule_id: str, request: Request) -> Response:
    await _visible(request, schedule_id)
    engine = services_of(request).engine
    return ok(schedule_object(await engine.set_schedule_active(schedule_id, False)))


@router.get("/api/v1/timezones")
async def list_timezones(exclude_utc: str | None = Query(None, alias="excludeUtc")) -> Response:
    return ok({"timezones": timezones(exclude_utc == "true")})
