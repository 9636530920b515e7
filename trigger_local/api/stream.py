"""`GET /api/v1/local/stream`: the daemon's events as server-sent events.

Built on the durable events table, not on the hub: the hub only says "something was written",
and we then read rows after our cursor. So a client that reconnects with `Last-Event-ID` (or
`?after=seq`) gets exactly what it missed, and one that is slow never loses an event. A
`run.logs` row (one per log burst and run) is expanded here into its lines.

Filters: `run_id`, `task`, `tag` (each comma-separated). With any of them, only events of
matching runs are sent; without, waitpoint, queue and version events come too. `project`
(comma-separated refs; a project key's own project, always) keeps only events of those
projects' runs, queues and versions. `types` keeps
only events whose type starts with one of the given prefixes (e.g. `run.,queue.`); `exclude`
drops those whose type starts with one of its prefixes (the dashboard's all-runs stream sends
`exclude=run.logs`: at hundreds of runs a second, log lines are most of the bytes, and reading
them is work the daemon need not do for a client that shows none).

`session=1` with one `project` makes the stream a dev session of that project: the project is
online while the stream is open (engine/projects.py). `trigger-local dev` holds one, so when
dev stops, or its process dies and the kernel closes the connection, the project goes offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import StreamingResponse

from ..engine.events import Event, StreamAppended
from ..errors import BadRequestError
from ..store.models import StoredEvent
from ..strict_json import dumps_js
from .common import int_param, require_key, services_of
from .errors import JsonErrorRoute
from .local import event_json
from .runs_list import parse_project_refs
from .services import DaemonServices
from .traces import log_json

router = APIRouter(route_class=JsonErrorRoute, tags=["local"])

PAGE = 500
#: a comment this often keeps proxies from closing the connection and lets us notice a gone client
KEEPALIVE_S = 10.0
MAX_LOG_LINES = 1000


def _csv(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


@dataclass
class StreamFilter:
    runs: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    types: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    projects: set[str] = field(default_factory=set)
    #: run id -> (task id, tags, project); fixed once a run has a project, so caching them is safe
    _known: dict[str, tuple[str, list[str], str | None]] = field(default_factory=dict)

    @property
    def by_run(self) -> bool:
        return bool(self.runs or self.tasks or self.tags)

    async def _run_facts(self, svc: DaemonServices,
                         run_id: str) -> tuple[str, list[str], str | None]:
        if run_id not in self._known:
            if len(self._known) > 10_000:
                self._known.clear()
            run = await svc.engine.queries.runs.get(run_id)
            facts = (run.task_id, list(run.tags or []), run.project) if run else ("", [], None)
            if run is None or run.project is None:
                return facts  # a run's project may still be decided: not cached
            self._known[run_id] = facts
        return self._known[run_id]

    async def _in_projects(self, svc: DaemonServices, event: StoredEvent) -> bool:
        project = event.data.get("project")
        if project is None and event.run_id is not None:
            project = (await self._run_facts(svc, event.run_id))[2]
        return project in self.projects

    async def accepts(self, svc: DaemonServices, event: StoredEvent) -> bool:
        if self.types and not event.type.startswith(self.types):
            return False
        if self.exclude and event.type.startswith(self.exclude):
            return False
        if self.projects and not await self._in_projects(svc, event):
            return False
        if not self.by_run:
            return True
        if event.run_id is None or (self.runs and event.run_id not in self.runs):
            return False
        if not (self.tasks or self.tags):
            return True
        task_id, tags, _ = await self._run_facts(svc, event.run_id)
        return (not self.tasks or task_id in self.tasks) \
            and (not self.tags or bool(self.tags & set(tags)))


def frame(event_type: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    body = dumps_js(data)
    return f"{head}event: {event_type}\ndata: {body}\n\n".encode()


async def _expand(svc: DaemonServices, event: StoredEvent) -> dict[str, Any]:
    body = event_json(event)
    if event.type == "run.logs" and event.run_id:
        count = min(int(event.data.get("count") or 0), MAX_LOG_LINES)
        after_id = int(event.data.get("after_id") or 0)
        entries = await svc.engine.queries.logs.for_run(event.run_id, after_id, count)
        body["logs"] = [log_json(e) for e in entries]
    return body


_ending: set[asyncio.Task[None]] = set()


def _end_session(svc: DaemonServices, ref: str) -> None:
    # its own task: the stream's task is being cancelled (the client went away) and would be
    # cancelled again at the first await of the transaction that records the project offline
    task = asyncio.get_running_loop().create_task(svc.engine.close_session(ref))
    _ending.add(task)
    task.add_done_callback(_ending.discard)


async def _events(svc: DaemonServices, after: int, flt: StreamFilter,
                  session: str | None) -> AsyncIterator[bytes]:
    read = svc.engine.queries
    woken = asyncio.Event()
    def wake(event: Event) -> None:  # stream chunks write no event row: nothing to read
        if not isinstance(event, StreamAppended):
            woken.set()

    # subscribe before the first read, so a commit between read and wait still wakes us
    unsubscribe = svc.engine.hub.subscribe(Event, wake)
    if session is not None:
        await svc.engine.open_session(session)
    try:
        yield frame("hello", {"after": after}, after)
        run_filter = next(iter(flt.runs)) if len(flt.runs) == 1 else None
        while True:  # Starlette cancels us (running `finally`) when the client goes
            woken.clear()
            found = await read.events.after(after, PAGE, run_filter)
            for event in found:
                after = event.seq
                if await flt.accepts(svc, event):
                    yield frame(event.type, await _expand(svc, event), event.seq)
            if len(found) == PAGE:
                continue
            if svc.engine.hub.draining.is_set():
                # the daemon is stopping: end the stream; the client reconnects with its cursor
                return
            try:
                await asyncio.wait_for(woken.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
    finally:
        unsubscribe()
        if session is not None:
            _end_session(svc, session)


@router.get("/api/v1/local/stream")
async def stream(request: Request, after: str | None = Query(None),
                 run_id: str | None = Query(None), task: str | None = Query(None),
                 tag: str | None = Query(None), types: str | None = Query(None),
                 exclude: str | None = Query(None), project: str | None = Query(None),
                 session: str | None = Query(None)) -> StreamingResponse:
    """Server-sent events from `after` (or `Last-Event-ID`); with neither, from now on.
    `session=1`: this stream is a `dev` session of its one `project` (see above)."""
    svc = services_of(request)
    caller = require_key(request, svc)
    projects = {caller.project} if caller.scoped and caller.project \
        else set(parse_project_refs(project, "project") or ())
    if session not in (None, "", "0", "1"):
        raise BadRequestError(f"session must be 1 or 0, not {session!r}")
    if session == "1" and len(projects) != 1:
        raise BadRequestError("A dev session (session=1) needs exactly one project: pass "
                              "project=REF")
    cursor = after if after is not None else request.headers.get("last-event-id")
    if cursor is None or cursor == "":
        start = await svc.engine.queries.events.last_seq()
    else:
        start = int_param(cursor, "after", 0, 0, 2**62)
    flt = StreamFilter(runs=_csv(run_id), tasks=_csv(task), tags=_csv(tag),
                       types=tuple(_csv(types)), exclude=tuple(_csv(exclude)), projects=projects)
    dev_of = next(iter(projects)) if session == "1" else None
    return StreamingResponse(_events(svc, start, flt, dev_of), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
