"""`GET /api/v1/local/projects` (each project the daemon serves, with its key), and which project
a version registration belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..config import named_project_ref, project_ref_of
from ..errors import ForbiddenError
from ..projects import check_project_ref
from ..tokens import project_key
from .auth import Caller
from .common import ok, require_key, services_of
from .errors import JsonErrorRoute

router = APIRouter(route_class=JsonErrorRoute, tags=["local"])


def registration_project(body: dict[str, Any], caller: Caller, project_dir: str) -> str:
    """The ref a registration is for: the body's `project`, else the project key's, else the one
    the project directory's trigger.toml names (or derives from the directory's name). The
    directory is what is indexed, so the header of a client's current directory plays no part."""
    named = body.get("project")
    if named is not None:
        check_project_ref(named, "project")
    if caller.scoped:
        assert caller.project is not None
        other = named if named is not None else _named_in_config(Path(project_dir))
        if other is not None and other != caller.project:
            where = "" if named is not None else f" (the `project` {project_dir}'s config names)"
            raise ForbiddenError(f"This key is project {caller.project}'s; it cannot register "
                                 f"project {other}{where}. Use that project's key, or the "
                                 "daemon's.", type="authorization")
        return caller.project
    return named if named is not None else project_ref_of(Path(project_dir))


def _named_in_config(project_dir: Path) -> str | None:
    """The ref the directory's config names, None when it names none (its ref would be derived
    from the directory's name, which a project key's ref then replaces). A config that names
    the derived ref — `init` writes it — names it all the same (review rv9e)."""
    return named_project_ref(project_dir)


@router.get("/api/v1/local/projects")
async def list_projects(request: Request) -> Response:
    """`{"data": [{ref, projectDir, currentVersion, online, dev, devSessions, leftAt, tasks,
    taskIds, key}]}`; `key` is the project's own secret key (a project key sees only its
    project)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    data = [p | {"key": project_key(svc.secret_key, p["ref"])}
            for p in svc.engine.projects.summaries() if caller.sees(p["ref"])]
    return ok({"data": data})
