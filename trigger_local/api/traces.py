"""What a UI draws for one run: its log lines and spans (`/logs?after=N`, for following) and
the whole trace (attempts, snapshots, spans, child runs, waits)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from ..durations import iso
from ..engine import history
from ..store.interface import StoreReader
from ..store.models import LogEntry, Run, RunStep, StoredEvent, Waitpoint
from .common import int_param, ok, require_key, services_of
from .errors import JsonErrorRoute
from .present import attempt_items, decode_or_raw, list_item
from .runs import get_run, retrieve_body

router = APIRouter(route_class=JsonErrorRoute, tags=["runs"])

_WAIT_EVENTS = ("run.waiting",)
#: the durable records of waits: each names its waitpoint, also when the wait blocked nothing
#: (its child had ended, its token was done: the daemon answered `continue`, no `run.waiting`)
_WAIT_RECORDS = ("wait.for", "wait.until", "wait.token", "trigger_and_wait", "batch_and_wait")


def log_json(entry: LogEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry.id, "at": iso(entry.at), "level": entry.level,
                           "message": entry.message, "attributes": entry.attributes,
                           "kind": entry.kind, "attempt": entry.attempt}
    if entry.parent_span_id:
        # a log line's enclosing span, or a span's parent
        out["parentSpanId"] = entry.parent_span_id
    if entry.kind == "span":
        out.update(spanId=entry.span_id, endedAt=iso(entry.ended_at),
                   durationMs=int((entry.ended_at - entry.at) * 1000) if entry.ended_at else None)
    return out


def snapshots_json(run: Run, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's snapshots, oldest first. Compaction (engine/retention.py) deletes a finished
    run's snapshots: its current one is shown from the run row (a final status's reason, e.g.
    a cancel's, is the run's error message)."""
    if not any(s["id"] == run.snapshot_id for s in rows):
        reason = (run.error or {}).get("message") if run.is_final else None
        rows = [*rows, {"id": run.snapshot_id, "run_id": run.id, "kind": run.snapshot_kind,
                        "status": run.status, "at": run.completed_at or run.updated_at,
                        "description": str(reason or "")}]
    return [{**s, "at": iso(s.get("at"))} for s in rows]


def wait_json(wp: Waitpoint) -> dict[str, Any]:
    return {"id": wp.id, "type": wp.type, "status": wp.status, "createdAt": iso(wp.created_at),
            "completedAt": iso(wp.completed_at), "completeAfter": iso(wp.complete_after),
            "timeoutAt": iso(wp.timeout_at), "ownerRunId": wp.owner_run_id, "batchId": wp.batch_id,
            "outputIsError": wp.output_is_error,
            "output": decode_or_raw(wp.output, wp.output_type) if wp.output is not None else None}


def record_json(step: RunStep) -> dict[str, Any]:
    """A durable record (docs/durability.md), without its result."""
    return {"seq": step.seq, "kind": step.kind, "name": step.name, "status": step.status,
            "attempt": step.attempt, "waitpointId": step.waitpoint_id,
            "childRunId": step.child_run_id, "batchId": step.batch_id,
            "createdAt": iso(step.created_at), "completedAt": iso(step.completed_at)}


#: how a run's waiting attempt resumed, by the event that says so
_RESUMES = {"run.restored": "restored", "run.adopted": "adopted", "run.replayed": "replayed"}


def resumes(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """Each time the run resumed after losing its place in memory: restored from a checkpoint,
    its process adopted by a restarted daemon, or replayed from its records."""
    out = []
    for e in events:
        how = _RESUMES.get(e.type)
        if how is None:
            continue
        item: dict[str, Any] = {"how": how, "at": iso(e.at)}
        for key, name in (("attempt", "attempt"), ("records", "records"),
                          ("checkpoint_id", "checkpointId"), ("restore_ms", "restoreMs"),
                          ("worker_id", "workerId")):
            if e.data.get(key) is not None:
                item[name] = e.data[key]
        out.append(item)
    return out


async def _waits(read: StoreReader, events: list[StoredEvent],
                 records: list[RunStep]) -> list[Waitpoint]:
    """Every wait the run made, oldest first: those it blocked on (`run.waiting`) and those its
    records name, so a `trigger_and_wait` whose child ended before the wait reached the daemon
    shows its wait all the same (docs/waits.md, "A wait in the trace")."""
    named = [str(e.data["waitpoint_id"]) for e in events
             if e.type in _WAIT_EVENTS and e.data.get("waitpoint_id")]
    named += [r.waitpoint_id for r in records if r.kind in _WAIT_RECORDS and r.waitpoint_id]
    found = [await read.waitpoints.get(w) for w in dict.fromkeys(named)]
    return sorted((wp for wp in found if wp is not None), key=lambda wp: wp.created_at)


@router.get("/api/v1/runs/{run_id}/logs")
async def run_logs(run_id: str, request: Request, after: str | None = Query(None),
                   limit: str | None = Query(None)) -> Response:
    """`{"data": [entries], "next": id}`: pass `next` as `after` to get only newer lines."""
    svc = services_of(request)
    caller = require_key(request, svc, f"read:runs:{run_id}")
    start = int_param(after, "after", 0, 0, 2**62)
    size = int_param(limit, "limit", 1000, 1, 5000)
    await get_run(svc.engine, run_id, caller)
    entries = await svc.engine.queries.logs.for_run(run_id, start, size)
    return ok({"data": [log_json(e) for e in entries],
               "next": entries[-1].id if entries else start})


@router.get("/api/v1/runs/{run_id}/trace")
async def run_trace(run_id: str, request: Request) -> Response:
    svc = services_of(request)
    caller = require_key(request, svc, f"read:runs:{run_id}")
    engine = svc.engine
    read = engine.queries
    run = await get_run(engine, run_id, caller)
    events = await read.events.after(0, 10_000, run_id)
    records = await engine.records.listed(run_id)
    waits = await _waits(read, events, records)
    logs = await read.logs.for_run(run_id, 0, 10_000)
    now = engine.clock.now()
    return ok({
        "run": await retrieve_body(engine, run),
        "attempts": attempt_items(await read.attempts.for_run(run_id)),
        "snapshots": snapshots_json(run, await history.snapshots(read, run, events)),
        "spans": [log_json(e) for e in logs if e.kind == "span"],
        "logs": [log_json(e) for e in logs if e.kind != "span"],
        "children": [list_item(c, now) for c in await read.runs.children(run_id)],
        "waits": [wait_json(wp) for wp in waits],
        "events": [{"seq": e.seq, "type": e.type, "at": iso(e.at), "data": e.data} for e in events],
        "records": [record_json(r) for r in records],
        "resumes": resumes(events),
        "checkpoints": [{**c.to_dict(), "created_at": iso(c.created_at),
                         "restored_at": iso(c.restored_at)}
                        for c in await read.checkpoints.for_run(run_id)],
    })
