"""Environment variables (TRIGGER_API.md §10), stored per environment slug and injected into
task processes started afterwards. Any project ref is accepted: the daemon has one project
per machine, so the ref only has to be well formed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequestError
from .common import body_doc, ok, read_json, require_key, services_of
from .errors import JsonErrorRoute

router = APIRouter(route_class=JsonErrorRoute, tags=["envvars"])

SLUGS = ("dev", "staging", "prod", "preview")
BASE = "/api/v1/projects/{project_ref}/envvars/{slug}"


def _slug(request: Request, slug: str) -> str:
    require_key(request, services_of(request))
    if slug not in SLUGS:
        raise BadRequestError(f"Invalid environment slug {slug!r}: use one of {', '.join(SLUGS)}")
    return slug


def _flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"{key} must be true or false")
    return value


def _redacted(var: dict[str, Any]) -> dict[str, Any]:
    return {**var, "value": "<redacted>"} if var["isSecret"] else var


@router.get(BASE)
async def list_vars(project_ref: str, slug: str, request: Request) -> Response:
    env = _slug(request, slug)
    return ok([_redacted(v) for v in await services_of(request).engine.queries.env_vars.all(env)])


@router.post(BASE, openapi_extra=body_doc({"name": {"type": "string"}, "value": {"type": "string"},
                                          "isSecret": {"type": "boolean"}}))
async def create_var(project_ref: str, slug: str, request: Request) -> Response:
    env = _slug(request, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    if not isinstance(body.get("name"), str) or not isinstance(body.get("value"), str):
        raise BadRequestError("Invalid request body: name and value must be strings")
    await svc.engine.set_env_vars(env, {body["name"]: body["value"]},
                                  is_secret=_flag(body, "isSecret"))
    return ok({"success": True})


@router.post(f"{BASE}/import", openapi_extra=body_doc({"variables": {"type": "object"},
                                                     "override": {"type": "boolean"}}))
async def import_vars(project_ref: str, slug: str, request: Request) -> Response:
    env = _slug(request, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    variables = body.get("variables")
    if not isinstance(variables, dict):
        raise BadRequestError("Invalid request body: variables must be an object of name: value")
    await svc.engine.set_env_vars(env, variables, is_secret=_flag(body, "isSecret"),
                                  override=bool(_flag(body, "override")))
    return ok({"success": True})


@router.get(BASE + "/{name}")
async def get_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    env = _slug(request, slug)
    return ok(_redacted(await services_of(request).engine.env_var(env, name)))


@router.put(BASE + "/{name}", openapi_extra=body_doc({"value": {"type": "string"}}))
async def update_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    env = _slug(request, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    if not isinstance(body.get("value"), str):
        raise BadRequestError("Invalid request body: value must be a string")
    await svc.engine.env_var(env, name)  # 404 for a variable that does not exist
    await svc.engine.set_env_vars(env, {name: body["value"]})
    return ok({"success": True})


@router.delete(BASE + "/{name}")
async def delete_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    env = _slug(request, slug)
    await services_of(request).engine.delete_env_var(env, name)
    return ok({"success": True})
