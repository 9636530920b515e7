"""Environment variables (TRIGGER_API.md §10), stored per project (the path's ref) and
environment slug, and injected into that project's task processes started afterwards. The
daemon's key reaches every project's; a project key only its own (another ref is 404, as is
a ref no project has: register the project first, with `trigger-local dev`; variables stored
under such a ref can still be listed, read and deleted)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequestError, NotFoundError
from ..projects import check_project_ref
from .common import body_doc, ok, read_json, require_key, require_known_ref, services_of
from .errors import JsonErrorRoute

router = APIRouter(route_class=JsonErrorRoute, tags=["envvars"])

SLUGS = ("dev", "staging", "prod", "preview")
BASE = "/api/v1/projects/{project_ref}/envvars/{slug}"


def _scope(request: Request, project_ref: str, slug: str) -> tuple[str, str]:
    """(project, env) the route means: the path's ref, which a project key must own, and which
    a project must have (a typo in the ref would store values no task process ever gets)."""
    project, env = _stored_scope(request, project_ref, slug)
    require_known_ref(services_of(request), project, _FIX)
    return project, env


_FIX = "fix the project ref in the path"


def _stored_scope(request: Request, project_ref: str, slug: str) -> tuple[str, str]:
    """`_scope` for reads and deletes, which also reach a ref no project has: variables
    stored under one (before such writes were refused, or a project renamed since) can be
    listed and deleted. Whether anything is stored there decides between the variables and
    `_scope`'s 404 (`_orphans_or_404`)."""
    caller = require_key(request, services_of(request))
    ref = check_project_ref(project_ref, "project ref")
    if not caller.sees(ref):
        raise NotFoundError(f"Project {ref} not found", project=ref)
    if slug not in SLUGS:
        raise BadRequestError(f"Invalid environment slug {slug[:40]!r}: use one of "
                              f"{', '.join(SLUGS)}")
    return ref, slug


def _orphans_or_404(request: Request, project: str, found: bool) -> None:
    """Nothing stored under `project`: the 404 naming the known projects, unless one has it."""
    if not found:
        require_known_ref(services_of(request), project, _FIX)


def _flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"{key} must be true or false")
    return value


def _redacted(var: dict[str, Any]) -> dict[str, Any]:
    return {**var, "value": "<redacted>"} if var["isSecret"] else var


@router.get(BASE)
async def list_vars(project_ref: str, slug: str, request: Request) -> Response:
    project, env = _stored_scope(request, project_ref, slug)
    variables = await services_of(request).engine.queries.env_vars.all(project, env)
    _orphans_or_404(request, project, bool(variables))
    return ok([_redacted(v) for v in variables])


@router.post(BASE, openapi_extra=body_doc({"name": {"type": "string"}, "value": {"type": "string"},
                                          "isSecret": {"type": "boolean"}}))
async def create_var(project_ref: str, slug: str, request: Request) -> Response:
    project, env = _scope(request, project_ref, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    if not isinstance(body.get("name"), str) or not isinstance(body.get("value"), str):
        raise BadRequestError("Invalid request body: name and value must be strings")
    await svc.engine.set_env_vars(project, env, {body["name"]: body["value"]},
                                  is_secret=_flag(body, "isSecret"))
    return ok({"success": True})


@router.post(f"{BASE}/import", openapi_extra=body_doc({"variables": {"type": "object"},
                                                     "override": {"type": "boolean"}}))
async def import_vars(project_ref: str, slug: str, request: Request) -> Response:
    project, env = _scope(request, project_ref, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    variables = body.get("variables")
    if not isinstance(variables, dict):
        raise BadRequestError("Invalid request body: variables must be an object of name: value")
    await svc.engine.set_env_vars(project, env, variables, is_secret=_flag(body, "isSecret"),
                                  override=bool(_flag(body, "override")))
    return ok({"success": True})


@router.get(BASE + "/{name}")
async def get_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    project, env = _stored_scope(request, project_ref, slug)
    engine = services_of(request).engine
    _orphans_or_404(request, project, await engine.queries.env_vars.get(project, env, name)
                    is not None)
    return ok(_redacted(await engine.env_var(project, env, name)))


@router.put(BASE + "/{name}", openapi_extra=body_doc({"value": {"type": "string"}}))
async def update_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    project, env = _scope(request, project_ref, slug)
    svc = services_of(request)
    body = await read_json(request, svc)
    if not isinstance(body.get("value"), str):
        raise BadRequestError("Invalid request body: value must be a string")
    await svc.engine.env_var(project, env, name)  # 404 for a variable that does not exist
    await svc.engine.set_env_vars(project, env, {name: body["value"]})
    return ok({"success": True})


@router.delete(BASE + "/{name}")
async def delete_var(project_ref: str, slug: str, name: str, request: Request) -> Response:
    project, env = _stored_scope(request, project_ref, slug)
    engine = services_of(request).engine
    _orphans_or_404(request, project, await engine.queries.env_vars.get(project, env, name)
                    is not None)
    await engine.delete_env_var(project, env, name)
    return ok({"success": True})
