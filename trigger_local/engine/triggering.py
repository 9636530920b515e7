"""Creating runs: a checked request (engine/options.py) becomes a run — or the run its
idempotency key, its debounce key or its request key points at — with its queue and, for a
parent that waits, its RUN waitpoint."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import packets
from ..durable_calls import COMPLETED, PENDING, Call
from ..errors import NotFoundError, TaskNotFoundError
from ..ids import new_id
from ..store.catalog_areas import VersionReader
from ..store.models import (
    CRASHED,
    DELAYED,
    EXPIRED,
    FAILED,
    PENDING_VERSION,
    QUEUED,
    SYSTEM_FAILURE,
    TIMED_OUT,
    WP_RUN,
    WP_WAITING,
    Batch,
    Run,
    TaskDef,
    Version,
    Waitpoint,
)
from . import batches, debounce, durable, queues, waitpoints
from .new_runs import NewRuns
from .options import TriggerOptions, TriggerRequest, task_default, validate, validate_payload_schema
from .runs import created
from .states import kind_for
from .unit import EngineContext, Tx
from .versions import locked_version, registered_meanwhile

#: a key reused after a run ended like this starts a new run (Trigger.dev's rule)
_RETRIGGER_AFTER = {FAILED, CRASHED, SYSTEM_FAILURE, TIMED_OUT, EXPIRED}


@dataclass(frozen=True, slots=True)
class TriggerResult:
    run: Run
    #: the run existed already (an idempotency, debounce or request key pointed at it)
    cached: bool
    waitpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request checked before its transaction: its options and its task (None: no project
    has it yet; the run waits as PENDING_VERSION)."""

    req: TriggerRequest
    options: TriggerOptions
    task: TaskDef | None


def prepare(ctx: EngineContext, req: TriggerRequest, now: float,
            parent: Run | None = None) -> Prepared:
    """Check `req`'s options, resolve its project and task, and check its payload against the
    task's schema. `parent`: the run `req.parent_run_id` names (None: no such run); a child run
    goes to its parent's project when the request names none, and a parent of another project
    is not found, as one that does not exist (its runs are not this caller's to see). Sets
    `req.project`."""
    options = validate(req, now, ctx.settings)
    if req.project is None and parent is not None:
        req.project = parent.project
    if req.lock_to_version is not None:  # its version names the project and the task, not
        task = None                      # the current one (create_run: `locked_version`)
    else:
        req.project, task = ctx.projects.resolve_task(req.task_id, req.project)
    if req.parent_run_id and (parent is None or parent.project != req.project):
        raise NotFoundError(f"Parent run {req.parent_run_id[:64]} not found in project "
                            f"{req.project}", run_id=req.parent_run_id[:64])
    if task is not None:
        validate_payload_schema(task, req)
    return Prepared(req, options, task)


async def prepare_current(ctx: EngineContext, req: TriggerRequest, now: float,
                          parent: Run | None, versions: VersionReader,
                          reload: Callable[[], Awaitable[None]]) -> Prepared:
    """`prepare`, and when the task is not found, again after `reload` if the store's current
    versions are not the ones in memory: another daemon sharing the database registered one a
    moment ago, and its notification (store/postgres/daemons.py) has not arrived yet."""
    try:
        prepared = prepare(ctx, req, now, parent)
        if prepared.task is not None or req.lock_to_version is not None:
            return prepared
    except TaskNotFoundError:
        pass
    if {v.id for v in await versions.current()} != ctx.projects.current_ids():
        await reload()
    return prepare(ctx, req, now, parent)


#: writes a trigger's lone new QUEUED run, started at once if it may (engine/starting.py)
Inserter = Callable[[Tx, Run], Awaitable[None]]


async def create_runs(tx: Tx, prepared: Sequence[Prepared], *, wait: bool,
                      request_key: str | None, starts: Inserter | None = None
                      ) -> list[TriggerResult]:
    """The runs of prepared requests; `request_key` (a client's request idempotency key, scoped
    by the route and here by the project the runs go to): a request sent again gets the runs
    the first one made, with the first answer's `cached`."""
    scope = request_scope([p.req for p in prepared])
    known = await replayed_request(tx, request_key, scope)
    if known is not None:
        return known
    results = [await create_run(tx, p, wait, starts=starts) for p in prepared]
    await remember(tx, request_key, scope, {"runs": [[r.run.id, r.cached] for r in results]})
    return results


async def create_run(tx: Tx, prepared: Prepared, wait: bool,
                     new: NewRuns | None = None, starts: Inserter | None = None) -> TriggerResult:
    """The run of a prepared request (or the one its idempotency or debounce key points at);
    with `wait`, also its RUN waitpoint, which the parent then waits on. `new`: a batch's new
    runs, where a plain run waits for the batch's one INSERT (engine/new_runs.py)."""
    req = prepared.req
    if new is not None and (req.record is not None or req.idempotency_key or req.debounce):
        await new.flush(tx)  # this request looks runs up, or makes rows that name its run
        new = None
    if req.record is not None and req.parent_run_id:
        child = await _recorded_child(tx, req.parent_run_id, req.record, wait)
        if child is not None:
            return child
    result = await _create_run(tx, prepared, wait, new, starts)
    if req.record is not None and req.parent_run_id:
        # a fire-and-forget child is done with once made; a waited one when its run ends
        await durable.bind(tx, req.parent_run_id, req.record.attempt, req.record,
                           child_run_id=result.run.id, waitpoint_id=result.waitpoint_id,
                           status=PENDING if wait else COMPLETED)
    return result


async def _recorded_child(tx: Tx, parent_run_id: str, call: Call,
                          wait: bool) -> TriggerResult | None:
    """The child a replayed `trigger` / `trigger_and_wait` made the first time."""
    found = await durable.recorded(tx, parent_run_id, call)
    child = await tx.runs.get(found.child_run_id) if found and found.child_run_id else None
    if child is None:
        return None
    wp_id = found.waitpoint_id if found and found.waitpoint_id else None
    if wait and wp_id is None:
        wp_id = await run_waitpoint(tx, child)
    return TriggerResult(child, cached=True, waitpoint_id=wp_id)


async def _create_run(tx: Tx, prepared: Prepared, wait: bool, new: NewRuns | None,
                      starts: Inserter | None = None) -> TriggerResult:
    req, options, task = prepared.req, prepared.options, prepared.task
    if req.idempotency_key:
        existing = await tx.runs.find_by_idempotency_key(req.task_id, req.idempotency_key,
                                                         req.project)
        if existing is not None:
            expired = existing.idempotency_expires_at is not None \
                and existing.idempotency_expires_at <= tx.now
            if not expired and existing.status not in _RETRIGGER_AFTER:
                wp_id = await run_waitpoint(tx, existing) if wait else None
                return TriggerResult(existing, cached=True, waitpoint_id=wp_id)
            await tx.runs.update(existing.id, None, idempotency_key=None)
    if req.debounce:
        pending = await debounce.pending_run(tx, req.project, req.task_id, req.debounce,
                                             req.payload, req.payload_type)
        if pending is not None:
            return TriggerResult(pending, cached=True)
        options = replace(options, delay_until=debounce.delayed_until(tx.now, req.debounce,
                                                                      options.delay_until))
    version = tx.ctx.projects.current_of(req.project)
    if req.lock_to_version is not None:
        version, task = await locked_version(tx.ctx, tx.versions, req)
        validate_payload_schema(task, req)
    elif task is None and (found := await registered_meanwhile(tx.versions, req.task_id,
                                                               req.project)) is not None:
        version, task = found
        req.project = version.project
        validate_payload_schema(task, req)
    queue = await queues.of_request(tx, req, task, None if new is None else new.ensured)
    run = await _new_run(tx, req, options, task, queue, version)
    if new is not None:
        new.add(run)
        return TriggerResult(run, cached=False)
    if starts is not None and run.status == QUEUED and not req.debounce:  # created: QUEUED
        await created(tx, run)
        await starts(tx, run)
        return TriggerResult(run, cached=False, waitpoint_id=await run_waitpoint(tx, run)
                             if wait else None)
    await tx.runs.insert(run)
    if req.debounce:
        await debounce.remember(tx, req.project, req.task_id, req.debounce, run)
    await created(tx, run)
    wp_id = await run_waitpoint(tx, run) if wait else None
    return TriggerResult(run, cached=False, waitpoint_id=wp_id)


async def _new_run(tx: Tx, req: TriggerRequest, options: TriggerOptions, task: TaskDef | None,
                   queue: str, version: Version | None) -> Run:
    delay_until = options.delay_until
    if delay_until is not None and delay_until > tx.now:
        status = DELAYED
    elif task is None:
        status = PENDING_VERSION
    else:
        status = QUEUED
    delayed = status == DELAYED
    parent = await tx.runs.get(req.parent_run_id) if req.parent_run_id else None
    # a delayed run's ttl starts when its delay ends (Trigger.dev's rule)
    ttl_from = delay_until if delayed and delay_until is not None else tx.now
    return Run(
        id=new_id("run"), task_id=req.task_id, status=status, snapshot_id=new_id("snapshot"),
        snapshot_kind=kind_for(status), queue=queue, created_at=tx.now, updated_at=tx.now,
        queued_at=tx.now - options.priority, payload=req.payload,
        payload_type=req.payload_type or packets.JSON,
        concurrency_key=None if req.concurrency_key is None else str(req.concurrency_key),
        delay_until=delay_until if delayed else None,
        expires_at=(ttl_from + options.ttl_s) if options.ttl_s else None,
        idempotency_key=req.idempotency_key, idempotency_key_user=req.idempotency_key_user,
        idempotency_expires_at=(tx.now + options.key_ttl_s) if req.idempotency_key else None,
        tags=list(options.tags), max_attempts=req.max_attempts,
        max_duration_s=options.max_duration_s or task_default(version, task, "max_duration_s"),
        priority=options.priority, machine=req.machine or task_default(version, task, "machine"),
        metadata=dict(options.metadata), parent_run_id=req.parent_run_id,
        root_run_id=(parent.root_run_id or parent.id) if parent else None,
        batch_id=req.batch_id, resume_parent=req.resume_parent, is_test=req.is_test,
        depth=(parent.depth + 1) if parent else 0, schedule_id=req.schedule_id,
        project=req.project, version_id=req.lock_to_version)


def again(run: Run) -> TriggerRequest:
    """A request for a new run like `run`: its task, payload and options (a replay)."""
    return TriggerRequest(task_id=run.task_id, payload=run.payload, payload_type=run.payload_type,
                          queue=run.queue, concurrency_key=run.concurrency_key, tags=run.tags,
                          max_attempts=run.max_attempts, max_duration=run.max_duration_s,
                          machine=run.machine, metadata=run.metadata, is_test=run.is_test,
                          project=run.project)


async def run_waitpoint(tx: Tx, run: Run) -> str:
    """The RUN waitpoint of `run` (made on first need), completed already if the run ended."""
    if run.waitpoint_id:
        return run.waitpoint_id
    wp = Waitpoint(id=new_id("waitpoint"), type=WP_RUN, status=WP_WAITING, created_at=tx.now,
                   owner_run_id=run.id)
    await tx.waitpoints.insert(wp)
    await tx.runs.update(run.id, None, waitpoint_id=wp.id)
    run.waitpoint_id = wp.id
    if run.is_final:
        await waitpoints.complete_run_waitpoint(tx, run)
    return wp.id


# -- request keys ---------------------------------------------------------------------------
#: how long a request's `x-trigger-request-idempotency-key` answers with what it made
REQUEST_CACHE_S = 24 * 3600


def request_scope(reqs: Sequence[TriggerRequest]) -> str | None:
    """The project(s) resolved requests go to, which scope their request key (None: no project
    has their task yet)."""
    return "+".join(sorted({req.project or "" for req in reqs})) or None


def scoped_request_key(request_key: str, scope: str | None) -> str:
    """The request cache's key: unscoped for runs of no project yet (and rows of before
    projects); the API's keys never start with `@`, refs never hold `:`."""
    return request_key if scope is None else f"@{scope}:{request_key}"


async def remembered(tx: Tx, request_key: str | None, scope: str | None) -> dict[str, Any] | None:
    """What the request `request_key` answered in `scope` within the last day, or None."""
    if request_key is None:
        return None
    return await tx.requests.get(scoped_request_key(request_key, scope), tx.now - REQUEST_CACHE_S)


async def remember(tx: Tx, request_key: str | None, scope: str | None,
                   answer: dict[str, Any]) -> None:
    if request_key is not None:
        await tx.requests.put(scoped_request_key(request_key, scope), tx.now, answer)


async def replayed_request(tx: Tx, request_key: str | None,
                           scope: str | None) -> list[TriggerResult] | None:
    """The runs `request_key` made before in `scope`, or None. A request answered while no
    project had its task (its runs waited without one) counts for the project they went to, as
    a run idempotency key of no project matches any project."""
    if request_key is None:
        return None
    keys = [scoped_request_key(request_key, scope)]
    if scope is not None:  # then unscoped: one read for both (a round trip on PostgreSQL)
        keys.append(scoped_request_key(request_key, None))
    found = await tx.requests.first(keys, tx.now - REQUEST_CACHE_S)
    if found is None:
        return None
    key, known = found
    results = await _replayed(tx, known)
    if key == keys[0]:
        return results
    return results if all(r.run.project in (None, scope) for r in results) else None


async def _replayed(tx: Tx, known: dict[str, Any]) -> list[TriggerResult]:
    pairs = known.get("runs") or [[known.get("id"), False]]  # {"id"}: rows of before
    runs = {r.id: r for r in await tx.runs.get_many([str(run_id) for run_id, _ in pairs])}
    missing = [run_id for run_id, _ in pairs if run_id not in runs]
    if missing:
        raise NotFoundError(f"The run {missing[0]} this request made before is gone; send it "
                            "without its x-trigger-request-idempotency-key to make a new one")
    return [TriggerResult(runs[run_id], cached=bool(cached)) for run_id, cached in pairs]


# -- batches -------------------------------------------------------------------------------
async def create_batch(tx: Tx, run_count: int, *, parent_run_id: str | None, wait: bool,
                       idempotency_key: str | None, request_key: str | None,
                       scope: str | None) -> tuple[Batch, bool]:
    """A new batch, or (with True) the one its idempotency key, or its request key within
    `scope`, made before. In the caller's transaction: concurrent requests with the same key
    get the same batch."""
    known = await _requested(tx, request_key, scope)
    if known is not None:
        return known, True
    project = scope
    if parent_run_id:  # as prepare's rule: another project's run is not this caller's to see
        parent = await tx.runs.get(parent_run_id)
        if parent is None or (scope is not None and parent.project != scope):
            raise NotFoundError(f"Parent run {parent_run_id[:64]} not found"
                                + (f" in project {scope}" if scope else ""),
                                run_id=parent_run_id[:64])
        project = parent.project
    batch, cached = await batches.create(tx, run_count, parent_run_id, wait, idempotency_key,
                                         project)
    await remember(tx, request_key, scope, {"batch": batch.id})
    return batch, cached


async def trigger_batch(tx: Tx, prepared: Sequence[Prepared], *, parent_run_id: str | None,
                        wait: bool, idempotency_key: str | None, request_key: str | None,
                        record: Call | None = None) -> tuple[Batch, list[TriggerResult], bool]:
    """A batch and all its runs (True: an existing batch, by its idempotency key, by its
    request key within the items' project, or by the parent's durable record `record`, whose
    runs are returned as they are)."""
    scope = request_scope([p.req for p in prepared])
    batch = await _requested(tx, request_key, scope)
    if batch is None and record is not None and parent_run_id:
        rec = await durable.recorded(tx, parent_run_id, record)
        batch = await tx.batches.get(rec.batch_id) if rec and rec.batch_id else None
    cached = batch is not None
    if batch is None:
        projects = {p.req.project for p in prepared}  # the batch's: its items' one project
        batch, cached = await batches.create(tx, len(prepared), parent_run_id, wait,
                                             idempotency_key,
                                             projects.pop() if len(projects) == 1 else None)
    if cached:
        found = await tx.runs.get_many(batch.run_ids)
        return batch, [TriggerResult(r, cached=True) for r in found], True
    for p in prepared:
        p.req.batch_id = batch.id
        if parent_run_id:
            p.req.parent_run_id = parent_run_id
            p.req.resume_parent = batch.waitpoint_id is not None
    new = NewRuns()
    results = [await create_run(tx, p, False, new) for p in prepared]
    await new.flush(tx)
    await batches.add_runs(tx, batch, [r.run.id for r in results])
    await remember(tx, request_key, scope, {"batch": batch.id})
    if parent_run_id and record is not None:
        await durable.bind(tx, parent_run_id, record.attempt, record, batch_id=batch.id,
                           waitpoint_id=batch.waitpoint_id,
                           status=PENDING if wait else COMPLETED)
    return batch, results, False


async def fill_batch(tx: Tx, batch: Batch, prepared: Mapping[int, Prepared]) -> dict[str, str]:
    """The runs of a two-phase batch's items (by index), added to it; returns every item the
    batch has received (index → run id), these included."""
    indexes = sorted(prepared)
    new = NewRuns()
    results = [await create_run(tx, prepared[i], False, new) for i in indexes]
    await new.flush(tx)
    await batches.add_runs(tx, batch, [r.run.id for r in results])
    seen = await batches.items(tx.kv, batch.id)
    seen.update({str(i): r.run.id for i, r in zip(indexes, results, strict=True)})
    await tx.kv.set(batches.items_key(batch.id), json.dumps(seen))
    return seen


async def _requested(tx: Tx, request_key: str | None, scope: str | None) -> Batch | None:
    known = await remembered(tx, request_key, scope)
    batch_id = known.get("batch") or known.get("id") if known else None  # "id": rows of before
    return await tx.batches.get(str(batch_id)) if batch_id else None
