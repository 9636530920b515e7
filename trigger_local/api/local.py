"""Routes of our own under `/api/v1/local/…` (versions, tasks, status, the event long-poll)
and `/healthz`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..config import check_default_machine, check_max_duration, check_retry
from ..durations import iso
from ..engine.events import Event, StreamAppended
from ..errors import BadRequestError, NotFoundError
from ..store.models import ProjectDefaults, StoredEvent, TaskDef, Version
from .auth import Caller
from .common import body_doc, float_param, int_param, ok, read_json, require_key, services_of
from .errors import JsonErrorRoute
from .projects import registration_project
from .services import DaemonServices

router = APIRouter(route_class=JsonErrorRoute, tags=["local"])

MAX_EVENT_WAIT_S = 60.0


def task_json(task: TaskDef, project: str | None = None) -> dict[str, Any]:
    out = {"project": project} if project else {}
    return out | {"id": task.task_id, "queue": task.queue, "file": task.file,
                  "exportName": task.export_name, "retry": task.retry,
                  "maxDuration": task.max_duration_s, "machine": task.machine,
                  "schema": task.schema, "queueConcurrencyLimit": task.queue_concurrency_limit,
                  "queueIsCustom": task.queue_is_custom}


def version_json(version: Version) -> dict[str, Any]:
    defaults = version.defaults
    return {"id": version.id, "project": version.project, "projectDir": version.project_dir,
            "createdAt": iso(version.created_at),
            "python": version.python, "dirs": version.dirs,
            "tasks": [task_json(t) for t in version.tasks],
            "image": version.env.get("TRIGGER_LOCAL_IMAGE"),
            "defaults": {"retry": defaults.retry, "machine": defaults.machine,
                         "maxDuration": defaults.max_duration_s}}


def event_json(event: StoredEvent) -> dict[str, Any]:
    return {"seq": event.seq, "runId": event.run_id, "type": event.type, "at": iso(event.at),
            "data": event.data}


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """200 while every background loop of the daemon runs and none is failing; 503 otherwise,
    naming the loops that are not (docs/configuration.md, "Health"). Needs no key."""
    health = services_of(request).health()
    body: dict[str, Any] = {"ok": bool(health["ok"]), "version": __version__, **health}
    if health["ok"]:
        return ok(body)
    bad = [f"{name}: {state['error'] or 'not running'}" for name, state in health["loops"].items()
           if state["failing"] or not state["running"]]
    body["error"] = "; ".join(bad or [str(health.get("fatal") or "unhealthy")])
    body["code"] = "unhealthy"
    return ok(body, 503)


@router.post("/api/v1/local/versions",
             openapi_extra=body_doc({"projectDir": {"type": "string"},
                                     "dirs": {"type": "array", "items": {"type": "string"}},
                                     "python": {"type": "string"}, "env": {"type": "object"},
                                     "image": {"type": "string"}, "project": {"type": "string"},
                                     "dev": {"type": "boolean"}, "defaults": {"type": "object"}},
                                    ["projectDir"]))
async def create_version(request: Request) -> Response:
    """Index a project (`{"projectDir", "dirs", "python"?, "env"?, "image"?, "project"?, "dev"?,
    "defaults"?}`) and make it its project's current version (with `image`, the tasks are
    indexed inside that image and runs are locked to it); 422 with the traceback when a module
    fails to import. `project`: its ref (default: the project key's, else trigger.toml's in
    projectDir, else one derived from the directory; a project key registers its own project
    only: a `project`, or a config in projectDir, naming another is 403); `dev`: a
    `trigger-local dev` will hold a session, and the project runs only while one is open
    (docs/architecture.md, "Projects");
    `defaults`: trigger.toml's retry, machine and maxDuration for tasks that set none."""
    svc = services_of(request)
    caller = require_key(request, svc)
    body = await read_json(request, svc)
    project_dir, dirs = body.get("projectDir"), body.get("dirs", ["trigger"])
    python, env = body.get("python"), body.get("env") or {}
    if not isinstance(project_dir, str) or not project_dir:
        raise BadRequestError("projectDir (the project's root directory) is required")
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise BadRequestError("dirs must be a list of directories relative to projectDir")
    if python is not None and not isinstance(python, str):
        raise BadRequestError("python must be the path of a Python interpreter")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise BadRequestError("env must be an object of string values")
    image = body.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise BadRequestError("image must be the name of a Docker image built by `trigger-local "
                              "deploy`")
    defaults = project_defaults(body.get("defaults"))
    ref, dev = registration_project(body, caller, project_dir), body.get("dev", False)
    if not isinstance(dev, bool):
        raise BadRequestError("dev must be true or false")
    svc.engine.projects.check_dir(ref, project_dir)  # before the cost of indexing
    version = await svc.index_project(project_dir, dirs, python, env, image=image, project=ref,
                                      dev=dev, defaults=defaults)
    return ok(version_json(version))


def project_defaults(value: Any) -> ProjectDefaults:
    """`defaults` of a version: `{"retry", "machine", "maxDuration"}` from the project's
    trigger.toml, checked by the rules `trigger.toml` itself is checked by (422 naming the key)."""
    if value is None:
        return ProjectDefaults()
    if not isinstance(value, dict):
        raise BadRequestError("defaults must be an object of retry, machine and maxDuration")
    unknown = sorted(set(value) - {"retry", "machine", "maxDuration"})
    if unknown:
        raise BadRequestError(f"Unknown defaults: {', '.join(unknown)} (known: maxDuration, "
                              "machine, retry)")
    return ProjectDefaults(retry=check_retry(value.get("retry"), "defaults.retry"),
                           machine=check_default_machine(value.get("machine"), "defaults.machine"),
                           max_duration_s=check_max_duration(value.get("maxDuration"),
                                                             "defaults.maxDuration"))


@router.get("/api/v1/local/versions/current")
async def current_version(request: Request) -> Response:
    """The caller's project's current version (with no project named: the newest of any project)."""
    svc = services_of(request)
    version = _current(svc, require_key(request, svc))
    if version is None:
        raise NotFoundError("No version is indexed yet: run `trigger-local dev` in your project")
    return ok(version_json(version))


@router.get("/api/v1/local/tasks")
async def list_tasks(request: Request) -> Response:
    """The caller's project's tasks; with no project named, every project's (each task names
    its `project`; `version` is then the newest version of any project)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    version = _current(svc, caller)
    versions = [version] if caller.project else sorted(svc.engine.projects.current.values(),
                                                       key=lambda v: v.project)
    tasks = [task_json(t, v.project) for v in versions if v is not None for t in v.tasks]
    return ok({"data": tasks, "version": version.id if version else None})


@router.get("/api/v1/local/status")
async def status(request: Request) -> Response:
    """The daemon, and each project (`projects`: its `currentVersion` and `taskIds`, among
    others). The top-level `current_version` and `tasks` are the caller's project's (with no
    project named: the newest version of any project's); they stay for one version, for clients
    that read them, and are replaced by `projects`."""
    svc = services_of(request)
    caller = require_key(request, svc)
    out = dict(svc.status())
    out.setdefault("runs", await svc.engine.queries.runs.count_by_status())
    out["channels"] = len(request.app.state.channels)  # shared processes on their channel
    out["channelFrames"] = dict(request.app.state.channel_frames)  # received, by kind
    out["channelSent"] = dict(request.app.state.channel_sent)  # messages and their frames
    if caller.project is not None:
        version = _current(svc, caller)
        out["current_version"] = version.id if version else None
        out["tasks"] = [t.task_id for t in version.tasks] if version else []
    out["projects"] = [p for p in svc.engine.projects.summaries() if caller.sees(p["ref"])]
    return ok(out)


def _current(svc: DaemonServices, caller: Caller) -> Version | None:
    if caller.project:
        return svc.engine.projects.current_of(caller.project)
    return svc.engine.current_version


@router.get("/api/v1/local/events")
async def events(request: Request, after: str | None = Query(None),
                 wait_s: str | None = Query(None), run_id: str | None = Query(None),
                 limit: str | None = Query(None)) -> Response:
    """Events after `after` (a seq); with `wait_s`, waits for the next one when there is none."""
    svc = services_of(request)
    caller = require_key(request, svc)
    seq = int_param(after, "after", 0, 0, 2**62)
    wait = float_param(wait_s, "wait_s", 0.0, MAX_EVENT_WAIT_S)
    size = int_param(limit, "limit", 500, 1, 5000)
    read = svc.engine.queries
    found = await read.events.after(seq, size, run_id or None)
    if not found and wait > 0 and not svc.engine.hub.draining.is_set():  # draining: answer now
        woken = asyncio.Event()
        # any publish may have written an event row; re-reading is cheap, missing one is not
        def wake(event: Event) -> None:
            if isinstance(event, StreamAppended):  # stream chunks write no event row
                return
            if not run_id or event.subject_run in (None, run_id):
                woken.set()

        unsubscribe = svc.engine.hub.subscribe(Event, wake)
        try:
            found = await read.events.after(seq, size, run_id or None)
            if not found:
                try:
                    await asyncio.wait_for(woken.wait(), wait)
                except TimeoutError:
                    pass
                found = await read.events.after(seq, size, run_id or None)
        finally:
            unsubscribe()
    # a project key: its own project's
    shown = [e for e in found if caller.sees(e.data.get("project"))]
    return ok({"data": [event_json(e) for e in shown], "next": found[-1].seq if found else seq})
