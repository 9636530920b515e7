"""Creating runs: validation of every trigger option, idempotency keys, versions and queues."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import limits, packets
from ..durations import parse_duration, parse_time
from ..errors import BadRequestError, NotFoundError, PayloadTooLargeError, ValidationError
from ..ids import new_id
from ..machines import check_machine
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
    Queue,
    Run,
    TaskDef,
    Version,
    Waitpoint,
)
from .base import Tx
from .projects import ProjectMixin
from .states import kind_for

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_PRIORITY_S = 30 * 86400
DEFAULT_IDEMPOTENCY_TTL_S = 30 * 86400
#: how long a request's `x-trigger-request-idempotency-key` answers with what it made
REQUEST_CACHE_S = 24 * 3600
# a key reused after a run ended like this starts a new run (Trigger.dev's rule)
_RETRIGGER_AFTER = {FAILED, CRASHED, SYSTEM_FAILURE, TIMED_OUT, EXPIRED}


@dataclass
class TriggerRequest:
    """One run to create, as the API parsed it (snake_case of Trigger.dev's options)."""

    task_id: str
    payload: str | None = None
    payload_type: str = packets.JSON
    queue: str | None = None
    concurrency_key: str | None = None
    delay: Any = None
    ttl: Any = None
    idempotency_key: str | None = None
    idempotency_key_user: str | None = None
    idempotency_key_ttl: str | None = None
    tags: list[str] = field(default_factory=list)
    max_attempts: int | None = None
    max_duration: float | None = None
    priority: float | None = None
    machine: str | None = None
    metadata: dict[str, Any] | None = None
    is_test: bool = False
    parent_run_id: str | None = None
    resume_parent: bool = False
    batch_id: str | None = None
    schedule_id: str | None = None
    #: Trigger.dev's debounce option, parsed by engine.debounce.parse_debounce
    debounce: dict[str, Any] | None = None
    #: the caller's project (its key, or the project header); None: the parent's project for a
    #: child run, else the one project that has the task (engine/projects.py)
    project: str | None = None


def task_default(version: Version | None, task: TaskDef | None, name: str) -> Any:
    """The task's `machine` or `max_duration_s`, else its project's (trigger.toml), else None."""
    if task is None:
        return None
    own = getattr(task, name)
    if own is not None or version is None:
        return own
    return getattr(version.defaults, name)


def request_scope(reqs: list[TriggerRequest]) -> str | None:
    """The project(s) resolved requests go to, which scope their request key (None: no project
    has their task yet)."""
    return "+".join(sorted({req.project or "" for req in reqs})) or None


def scoped_request_key(request_key: str, scope: str | None) -> str:
    """The request cache's key: unscoped for runs of no project yet (and rows of before
    projects); the API's keys never start with `@`, refs never hold `:`."""
    return request_key if scope is None else f"@{scope}:{request_key}"


@dataclass
class TriggerResult:
    run: Run
    cached: bool
    waitpoint_id: str | None = None


class TriggerMixin(ProjectMixin):
    # -- versions ---------------------------------------------------------------------------
    async def register_version(self, version: Version, *, dev: bool = False) -> Version:
        """Store an indexed version, make it its project's current one, create its queues, and
        release runs that were PENDING_VERSION for one of its tasks (in its project, or in none
        yet). `dev`: registered by `trigger-local dev`, so the project runs only while a dev
        session is open (engine/projects.py)."""
        self.check_project_dir(version.project, version.project_dir)
        async with self._tx() as tx:
            await tx.ops.insert_version(version)
            await self._record_project(tx, version, dev)
            for task in version.tasks:
                await self._ensure_queue(tx, version.project, task.queue,
                                         task.queue_concurrency_limit if task.queue_is_custom or
                                         task.queue_concurrency_limit is not None else None,
                                         custom=task.queue_is_custom, update_limit=True)
            task_ids = {t.task_id for t in version.tasks}
            for run in await tx.ops.runs_with_status([PENDING_VERSION]):
                if run.task_id in task_ids and run.project in (None, version.project):
                    if run.project is None:
                        await self._ensure_queue(tx, version.project, run.queue, None, custom=False)
                    its_task = version.task(run.task_id)
                    await self._move(tx, run, QUEUED, project=version.project,
                                     description=f"version {version.id} has the task",
                                     machine=run.machine or task_default(version, its_task, "machine"),
                                     max_duration_s=run.max_duration_s
                                     or task_default(version, its_task, "max_duration_s"))
            await self._sync_declarative(tx, version)  # type: ignore[attr-defined]
            await self._sync_rate_limits(tx, version)  # type: ignore[attr-defined]
            data = {"version_id": version.id, "project": version.project}
            await tx.ops.insert_event(None, "version.registered", tx.now, data)
            tx.emit("version.registered", **data)
            tx.emit("dispatch")
        self.projects.current[version.project] = version
        return version

    async def _ensure_queue(self, tx: Tx, project: str, name: str, limit: int | None, *, custom: bool,
                            update_limit: bool = False) -> None:
        existing = await tx.ops.get_queue(project, name)
        if existing is None:
            await tx.ops.insert_queue(Queue(name=name, id=new_id("queue"), type="custom" if custom else "task",
                                            concurrency_limit=limit, paused=False, created_at=tx.now,
                                            project=project))
        elif update_limit and existing.concurrency_limit != limit:
            await tx.ops.update_queue(project, name, concurrency_limit=limit)

    # -- validation -------------------------------------------------------------------------
    def _validate(self, req: TriggerRequest, now: float) -> dict[str, Any]:
        """Check every option; return the run fields they set. Raises ValidationError."""
        if not req.task_id or not isinstance(req.task_id, str) or len(req.task_id) > 128:
            raise ValidationError("A task id is required (at most 128 characters)")
        limit = self.settings.payload_limit_bytes
        size = len(req.payload.encode()) if req.payload else 0
        if size > limit:
            raise PayloadTooLargeError.over_limit("Payload", limit, size)
        if req.payload and req.payload_type in (packets.JSON, packets.SUPER_JSON):
            try:
                limits.loads(req.payload)
            except ValueError as exc:
                raise BadRequestError(f"Payload is not valid JSON ({exc}). Send JSON, or set the payload "
                                      "type to text/plain for a plain string.") from None
        tags = [req.tags] if isinstance(req.tags, str) else list(req.tags or [])
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"Runs can only have {MAX_TAGS} tags, you're trying to set {len(tags)}.")
        for tag in tags:
            if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
                raise ValidationError(f"Each tag must be a string of 1 to {MAX_TAG_LENGTH} characters: {tag!r}")
        priority = req.priority or 0
        if isinstance(priority, bool) or not isinstance(priority, int | float) or not 0 <= priority <= MAX_PRIORITY_S:
            raise ValidationError(f"Invalid priority {req.priority}: use seconds from 0 to {MAX_PRIORITY_S}")
        priority = float(priority)
        if req.machine is not None:
            check_machine(req.machine)
        if req.max_attempts is not None and (isinstance(req.max_attempts, bool) or not isinstance(req.max_attempts, int)
                                             or not 1 <= req.max_attempts <= limits.MAX_ATTEMPTS):
            raise ValidationError(f"Invalid max_attempts {req.max_attempts!r}: use a whole number from 1 "
                                  f"to {limits.MAX_ATTEMPTS}")
        max_duration = None
        if req.max_duration is not None:
            max_duration = parse_duration(req.max_duration, what="max_duration")
            if max_duration < 1:
                raise ValidationError("max_duration must be at least 1 second")
        delay_until = parse_time(req.delay, now, what="delay") if req.delay not in (None, "") else None
        ttl_s = parse_duration(req.ttl, what="ttl") if req.ttl not in (None, "") else None
        key_ttl_s = (parse_duration(req.idempotency_key_ttl, what="idempotency_key_ttl")
                     if req.idempotency_key_ttl else DEFAULT_IDEMPOTENCY_TTL_S)
        metadata = req.metadata or {}
        if not isinstance(metadata, dict):
            raise ValidationError("metadata must be a JSON object")
        if (metadata_size := len(json.dumps(metadata))) > limit:
            raise PayloadTooLargeError.over_limit("Metadata", limit, metadata_size)
        return {"tags": tags, "priority": priority, "max_duration_s": max_duration, "delay_until": delay_until,
                "ttl_s": ttl_s, "key_ttl_s": key_ttl_s, "metadata": metadata}

    def _validate_payload_schema(self, task: TaskDef, req: TriggerRequest) -> None:
        if not task.schema:
            return
        import jsonschema  # only schema tasks pay for the import

        try:
            value = packets.decode(req.payload, req.payload_type)
        except ValueError as exc:
            raise ValidationError(f"Payload is not valid JSON: {exc}") from exc
        errors = sorted(jsonschema.Draft202012Validator(task.schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            issues = [{"path": ".".join(str(p) for p in e.path) or "(root)", "message": e.message} for e in errors]
            first = issues[0]
            raise ValidationError(f"Payload does not match the schema of task {task.task_id!r}: "
                                  f"{first['path']}: {first['message']}", issues=issues)

    # -- trigger ----------------------------------------------------------------------------
    async def trigger(self, req: TriggerRequest, *, wait: bool = False,
                      request_key: str | None = None) -> TriggerResult:
        """Create one run (or return the run its idempotency key points at).

        With `wait`, the run also gets a RUN waitpoint that completes with its result, which the
        parent then waits on. `request_key`: see `trigger_many`."""
        results = await self.trigger_many([req], wait=wait, request_key=request_key)
        return results[0]

    async def trigger_many(self, reqs: list[TriggerRequest], *, wait: bool = False,
                           batch: Batch | None = None, request_key: str | None = None) -> list[TriggerResult]:
        """Create runs in one transaction (a batch's items arrive together).

        `request_key` (a client's `x-trigger-request-idempotency-key`, scoped by the route, and
        here by the project the runs go to, so two projects' clients may send the same key): a
        request sent again gets the runs the first one made, with the first answer's `cached`;
        checked and recorded in the same transaction, so concurrent copies make one set of runs."""
        prepared = await self._prepare(reqs, self.clock.now())
        scope = request_scope([req for req, _, _ in prepared])
        results: list[TriggerResult] = []
        async with self._tx() as tx:
            known = await self._replayed_request(tx, request_key, scope)
            if known is not None:
                return known
            if batch is not None and await tx.ops.get_batch(batch.id) is None:
                await tx.ops.insert_batch(batch)
            for req, fields, task in prepared:
                results.append(await self._create_run(tx, req, fields, task, wait))
            await self._remember_request(tx, request_key, scope, {"runs": [[r.run.id, r.cached] for r in results]})
            if any(not r.cached for r in results):
                tx.emit("dispatch")
        return results

    async def _prepare(self, reqs: list[TriggerRequest],
                       now: float) -> list[tuple[TriggerRequest, dict[str, Any], TaskDef | None]]:
        """Every request validated (options, task, payload schema) before a transaction starts."""
        prepared = []
        for req in reqs:
            fields = self._validate(req, now)
            if req.project is None and req.parent_run_id:
                parent = await self.store.read().get_run(req.parent_run_id)
                req.project = parent.project if parent else None  # a child runs in its parent's project
            req.project, task = self.resolve_task(req.task_id, req.project)
            if task is not None:
                self._validate_payload_schema(task, req)
            prepared.append((req, fields, task))
        return prepared

    async def _remembered_request(self, tx: Tx, request_key: str | None, scope: str | None) -> dict[str, Any] | None:
        if request_key is None:
            return None
        return await tx.ops.get_cached_response(scoped_request_key(request_key, scope), tx.now - REQUEST_CACHE_S)

    async def _remember_request(self, tx: Tx, request_key: str | None, scope: str | None,
                                answer: dict[str, Any]) -> None:
        if request_key is not None:
            await tx.ops.put_cached_response(scoped_request_key(request_key, scope), tx.now, answer)

    async def _replayed_request(self, tx: Tx, request_key: str | None, scope: str | None) -> list[TriggerResult] | None:
        """The runs `request_key` made before in `scope`, or None. A request answered while no
        project had its task (its runs waited without one) counts for the project they went to,
        as a run idempotency key of no project matches any project (store find_run_by_idempotency_key)."""
        known = await self._remembered_request(tx, request_key, scope)
        if known is not None:
            return await self._replayed(tx, known)
        if request_key is None or scope is None:
            return None
        known = await self._remembered_request(tx, request_key, None)
        if known is None:
            return None
        results = await self._replayed(tx, known)
        return results if all(r.run.project in (None, scope) for r in results) else None

    async def _replayed(self, tx: Tx, known: dict[str, Any]) -> list[TriggerResult]:
        pairs = known.get("runs") or [[known.get("id"), False]]  # {"id"}: rows of before
        runs = {r.id: r for r in await tx.ops.get_runs([str(run_id) for run_id, _ in pairs])}
        missing = [run_id for run_id, _ in pairs if run_id not in runs]
        if missing:
            raise NotFoundError(f"The run {missing[0]} this request made before is gone; send it without "
                                "its x-trigger-request-idempotency-key to make a new one")
        return [TriggerResult(runs[run_id], cached=bool(cached)) for run_id, cached in pairs]

    async def _create_run(self, tx: Tx, req: TriggerRequest, f: dict[str, Any], task: TaskDef | None,
                          wait: bool) -> TriggerResult:
        if req.idempotency_key:
            existing = await tx.ops.find_run_by_idempotency_key(req.task_id, req.idempotency_key, req.project)
            if existing is not None:
                stale = (existing.idempotency_expires_at is not None and existing.idempotency_expires_at <= tx.now) \
                    or existing.status in _RETRIGGER_AFTER
                if not stale:
                    wp_id = await self._run_waitpoint(tx, existing) if wait else None
                    return TriggerResult(existing, cached=True, waitpoint_id=wp_id)
                await tx.ops.update_run(existing.id, None, idempotency_key=None)
        if req.debounce:
            pending = await self._debounce(tx, req.project, req.task_id,  # type: ignore[attr-defined]
                                           req.debounce, req.payload, req.payload_type, f)
            if pending is not None:
                return TriggerResult(pending, cached=True)
        queue = req.queue or (task.queue if task else f"task/{req.task_id}")
        if req.project is None:
            pass  # no project yet: its queue is made when a project takes the run
        elif req.queue and req.queue != (task.queue if task else None):
            await self._ensure_queue(tx, req.project, queue, None, custom=True)
        else:
            await self._ensure_queue(tx, req.project, queue, task.queue_concurrency_limit if task else None,
                                     custom=bool(task and task.queue_is_custom))
        if f["delay_until"] is not None and f["delay_until"] > tx.now:
            status = DELAYED
        elif task is None:
            status = PENDING_VERSION
        else:
            status = QUEUED
        parent = await tx.ops.get_run(req.parent_run_id) if req.parent_run_id else None
        version = self.projects.current_of(req.project)
        run = Run(
            id=new_id("run"), task_id=req.task_id, status=status, snapshot_id=new_id("snapshot"),
            snapshot_kind=kind_for(status), queue=queue, created_at=tx.now, updated_at=tx.now,
            queued_at=tx.now - f["priority"], payload=req.payload, payload_type=req.payload_type or packets.JSON,
            concurrency_key=None if req.concurrency_key is None else str(req.concurrency_key),
            delay_until=f["delay_until"] if status == DELAYED else None,
            # a delayed run's ttl starts when its delay ends (Trigger.dev's rule)
            expires_at=((f["delay_until"] if status == DELAYED else tx.now) + f["ttl_s"]) if f["ttl_s"] else None,
            idempotency_key=req.idempotency_key, idempotency_key_user=req.idempotency_key_user,
            idempotency_expires_at=(tx.now + f["key_ttl_s"]) if req.idempotency_key else None,
            tags=f["tags"], max_attempts=req.max_attempts,
            max_duration_s=f["max_duration_s"] or task_default(version, task, "max_duration_s"),
            priority=f["priority"], machine=req.machine or task_default(version, task, "machine"),
            metadata=f["metadata"], parent_run_id=req.parent_run_id,
            root_run_id=(parent.root_run_id or parent.id) if parent else None,
            batch_id=req.batch_id, resume_parent=req.resume_parent, is_test=req.is_test,
            depth=(parent.depth + 1) if parent else 0, schedule_id=req.schedule_id, project=req.project,
        )
        await tx.ops.insert_run(run)
        if req.debounce:
            await self._record_debounce(tx, req.project, req.task_id, req.debounce, run)  # type: ignore[attr-defined]
        await self._new_run_snapshot(tx, run)
        wp_id = await self._run_waitpoint(tx, run) if wait else None
        return TriggerResult(run, cached=False, waitpoint_id=wp_id)

    async def _run_waitpoint(self, tx: Tx, run: Run) -> str:
        """The RUN waitpoint of `run` (created on first need), completed already if the run ended."""
        if run.waitpoint_id:
            return run.waitpoint_id
        wp = Waitpoint(id=new_id("waitpoint"), type=WP_RUN, status=WP_WAITING, created_at=tx.now,
                       owner_run_id=run.id)
        await tx.ops.insert_waitpoint(wp)
        await tx.ops.update_run(run.id, None, waitpoint_id=wp.id)
        run.waitpoint_id = wp.id
        if run.is_final:
            await self._complete_run_waitpoint(tx, run)  # type: ignore[attr-defined]
        return wp.id
