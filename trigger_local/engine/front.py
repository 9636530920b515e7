"""`Engine`: the engine's thin front. Each public method is one thing the API, dispatcher or
executor asks: one unit of work (`Tx`, engine/unit.py) calling the parts, its events published
on the hub once committed; reads go through `queries`. It never spawns a process or sleeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..clock import Clock
from ..config import DaemonSettings
from ..durable_calls import Call
from ..errors import DatabaseUnavailableError, TransactionRetryError
from ..statuses import FINAL_STATUSES
from ..store.interface import Store, StoreReader
from ..store.models import (
    Attempt,
    Batch,
    Checkpoint,
    LogEntry,
    Queue,
    Run,
    Schedule,
    Version,
    Waitpoint,
    Worker,
)
from . import (
    attempts,
    batches,
    checkpoints,
    endings,
    envvars,
    projects,
    queues,
    registration,
    reports,
    retention,
    runs,
    schedules,
    starting,
    streams,
    timers,
    triggering,
    waitpoints,
    waits,
)
from .attempts import AttemptOutcome
from .dequeue import dequeue
from .events import RunResumed, RunStatusChanged
from .hub import Hub, run_key
from .options import TriggerRequest
from .project_state import Projects
from .records import Records
from .retry import RetryPolicy
from .schedules import ScheduleSpec
from .triggering import TriggerResult
from .unit import EngineContext, GroupCommit, Tx, retrying
from .versions import retry_policy

P = ParamSpec("P")
T = TypeVar("T")


class Engine:
    """Every operation on runs, waitpoints, queues, schedules and versions."""

    def __init__(self, store: Store, clock: Clock, settings: DaemonSettings,
                 hub: Hub | None = None) -> None:
        self.store, self.clock, self.settings, self.packets = store, clock, settings, store.packets
        self.hub = hub or Hub()
        self.ctx = EngineContext(settings, shared_store=store.shared)
        # set when a normal stop begins: held waits' polls are refused (executors/stopping.py)
        self.stopping = False
        self.hub.subscribe(RunStatusChanged, self._wake_pollers)
        self.group = GroupCommit(self._unit)  # starts, waits, completions (engine/unit.py)
        self.records = Records(self._run, self.store.read)  # durable records: replay

    @property
    def queries(self) -> StoreReader:
        """The store's read-only view: what the API, dispatcher and executors read through."""
        return self.store.read()

    @property
    def projects(self) -> Projects:
        return self.ctx.projects

    @property
    def current_version(self) -> Version | None:
        """The newest current version of any project (each project has its own: `projects`)."""
        return self.projects.latest()

    async def load(self) -> None:
        """Read what the engine caches of the projects (`projects.read`); queue the runs
        waiting for a task those versions have (registered through another daemon)."""
        await projects.read(self.projects, self.queries)
        await self._run(registration.queue_pending, list(self.projects.current.values()))

    @asynccontextmanager
    async def _unit(self, exclusive: bool = False, starts: bool = False,
                    turn: bool = True) -> AsyncIterator[Tx]:
        async with self.store.tx(exclusive, starts) as store_tx:
            tx = Tx(store_tx, self.clock.now(), self.ctx)
            yield tx
            await tx.write_events()  # the unit's event rows, in the order recorded
        tx.committed()  # its due times and log counts (engine/unit.py)
        self.hub.publish_all(tx.published)
        if tx.batch_checks:  # a shared store (engine/endings.py); a failed check: the peers' sweep
            with contextlib.suppress(DatabaseUnavailableError, TransactionRetryError):
                await self.complete_batches(tx.batch_checks)
        # The store never yields: a caller running unit after unit (a dispatcher round) would keep
        # out the completions that came meanwhile, which free processes. One loop turn lets them in
        if turn:  # (not a trigger's: what its commit woke runs after its route wrote the answer)
            await asyncio.sleep(0)

    async def _run(self, part: Callable[Concatenate[Tx, P], Awaitable[T]], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """`part(tx, ...)` in a unit of work of its own (run again if the store refused it)."""
        return await retrying(self._unit, part, *args, **kwargs)

    def _wake_pollers(self, event: RunStatusChanged) -> None:
        # a held run's process polls for its wait's result: it has one once resumed or ended
        if isinstance(event, RunResumed) or event.status in FINAL_STATUSES:
            self.hub.wake(run_key(event.run_id))

    async def retry_policy(self, run: Run) -> RetryPolicy:
        return await retry_policy(self.ctx, self.queries.versions, run)

    # -- versions ------------------------------------------------------------------------------
    async def register_version(self, version: Version, *, dev: bool = False) -> Version:
        """Make `version` its project's current one (engine/registration.py)."""
        self.projects.check_dir(version.project, version.project_dir)
        self.projects.registered(version, await self._run(registration.register, version, dev))
        return version

    # -- triggering ----------------------------------------------------------------------------
    async def trigger(self, req: TriggerRequest, *, wait: bool = False,
                      request_key: str | None = None) -> TriggerResult:
        """One run (or the one its idempotency key names); `wait`: with a RUN waitpoint."""
        return (await self.trigger_many([req], wait=wait, request_key=request_key))[0]

    async def trigger_many(self, reqs: Sequence[TriggerRequest], *, wait: bool = False,
                           request_key: str | None = None) -> list[TriggerResult]:
        """Create runs in one transaction (a batch's items arrive together). `request_key` (a
        client's `x-trigger-request-idempotency-key`, scoped by the route and the runs'
        project): a request sent again gets the first one's runs, with its answer's `cached`;
        checked and recorded in the same transaction, so concurrent copies make one set. A
        single new run that can start at once starts in it too (engine/starting.py). No loop
        turn after the commit: the answer leaves before the work the commit woke (issue #13)."""
        prepared = [await self._prepare(req) for req in reqs]
        answering = partial(self._unit, turn=False)
        return await starting.trigger_runs(answering, self.ctx, prepared, wait, request_key)

    async def _prepare(self, req: TriggerRequest) -> triggering.Prepared:
        """Checked before the transaction starts (engine/triggering.py `prepare`)."""
        parent = await self.queries.runs.get(req.parent_run_id) if req.parent_run_id else None
        # a parentRunId must be a run of the child's project (triggering.py `prepare`)
        return await triggering.prepare_current(self.ctx, req, self.clock.now(), parent,
                                                self.queries.versions, self.load)

    async def replay(self, run_id: str) -> Run:  # a new run: same task, payload, options
        return (await self.trigger(triggering.again(await runs.get(self.queries.runs, run_id)))).run

    async def create_batch(self, run_count: int, *, parent_run_id: str | None = None,
                           wait: bool = False, idempotency_key: str | None = None,
                           request_key: str | None = None,
                           project: str | None = None) -> tuple[Batch, bool]:
        """A new batch, or (True) the one `idempotency_key` or `request_key` (in `project`) made."""
        return await self._run(triggering.create_batch, run_count, parent_run_id=parent_run_id,
                               wait=wait, idempotency_key=idempotency_key,
                               request_key=request_key, scope=project)

    async def batch_trigger(self, reqs: Sequence[TriggerRequest], *,
                            parent_run_id: str | None = None, wait: bool = False,
                            idempotency_key: str | None = None, request_key: str | None = None,
                            record: Call | None = None) -> tuple[Batch, list[TriggerResult], bool]:
        """A batch and all its runs in one transaction (True: an existing batch, by its key or
        by `request_key` within the items' project, whose runs are returned as they are)."""
        for req in reqs:  # resolved as the batch's children: in the parent's project if unsaid
            req.parent_run_id = parent_run_id or req.parent_run_id  # trigger_batch sets it so
        prepared = [await self._prepare(req) for req in reqs]
        return await self._run(triggering.trigger_batch, prepared, parent_run_id=parent_run_id,
                               wait=wait, idempotency_key=idempotency_key,
                               request_key=request_key, record=record)

    async def batch_items(self, batch_id: str) -> dict[str, str]:
        """The items a two-phase batch has received: index (as a string) → run id."""
        return await batches.items(self.queries.kv, batch_id)

    async def fill_batch(self, batch: Batch, items: Mapping[int, TriggerRequest],
                         project: str | None = None) -> dict[str, str]:
        """`items`' runs (by index) in `batch`, in one transaction: returns all its items."""
        for req in items.values():
            batches.adopt(req, batch, project)
        prepared = {index: await self._prepare(req) for index, req in items.items()}
        return await self._run(triggering.fill_batch, batch, prepared)

    async def add_batch_runs(self, batch_id: str, run_ids: Sequence[str]) -> Batch:
        return await self._run(batches.add_runs_to, batch_id, run_ids)

    async def complete_batches(self, batch_ids: Sequence[str] | None = None) -> None:
        await self._run(batches.complete_ended, batch_ids)  # those whose runs all ended (None: any)

    # -- the dispatcher and the executor -------------------------------------------------------
    async def dequeue(self, limit: int, held: int = 0, *, reserve: bool = False) -> list[Run]:
        """Up to `limit` runnable runs, plus `held` resuming in their process (dequeue.py;
        exclusive: it counts what runs on every daemon, store/interface.py)."""
        return await retrying(partial(self._unit, True), dequeue, limit, held,
                              reserve and not self.store.shared) if limit + held > 0 else []

    async def tick_timers(self) -> int:  # what is due now (engine/timers.py); how many changed
        return await self._run(timers.tick)

    async def start_attempt(self, run: Run, worker_id: str, pid: int | None,
                            executor: str = "process", *, replays: int = 0
                            ) -> tuple[Run, Attempt] | None:
        """DEQUEUED (or reserved) → EXECUTING on `worker_id`; None if the run moved on."""
        return await self.group.run(attempts.start, run, worker_id, pid, executor, replays=replays)

    async def requeue(self, run: Run, reason: str) -> None:  # no process took it (DEQUEUED)
        await self._run(attempts.requeue, run.id, reason)

    async def resume_held(self, run: Run) -> Run | None:  # DEQUEUED, in the process holding it
        return await self.group.run(attempts.resume_held, run.id)

    async def worker_lost(self, run_id: str, attempt: int, reason: str, *,
                          interrupted: bool = False,
                          error_name: str = "TaskProcessExited") -> Run | None:
        """The process running (or holding) `attempt` is gone (engine/attempts.py)."""
        return await self._run(attempts.worker_lost, run_id, attempt, reason,
                               interrupted=interrupted, error_name=error_name)

    async def system_failure(self, run: Run, reason: str) -> None:
        await self._run(attempts.system_failure, run.id, reason)

    async def register_worker(self, worker: Worker) -> None:
        await self._run(lambda tx: tx.workers.upsert(worker))

    async def forget_worker(self, worker_id: str) -> None:
        await self._run(lambda tx: tx.workers.delete(worker_id))

    async def runs_on_workers(self) -> list[Run]:
        """Runs that a process is (or was, before a restart) executing or holding."""
        return await attempts.on_workers(self.queries.runs)

    async def process_env(self, project: str, env: str = "dev") -> dict[str, str]:
        """What a new task process of `project` gets on top of the daemon's own environment."""
        return await envvars.process_env(self.queries.env_vars, project, env)

    # -- checkpoints (engine/checkpoints.py) ---------------------------------------------------
    async def begin_checkpoint(self, ck: Checkpoint) -> None:
        await self._run(checkpoints.begin, ck)

    async def undo_checkpoint(self, checkpoint_id: str) -> None:
        """The dump failed, never ran, or is useless: forget its pending row."""
        await self._run(checkpoints.undo, checkpoint_id)

    async def record_checkpoint(self, ck: Checkpoint) -> bool:
        return await self._run(checkpoints.record, ck)

    async def checkpoint_refused(self, run_id: str, reason: str) -> None:
        await self._run(checkpoints.refused, run_id, reason)

    async def checkpoint_restored(self, checkpoint_id: str, restore_ms: float) -> None:
        await self._run(checkpoints.restored, checkpoint_id, restore_ms)

    async def checkpoint_unusable(self, checkpoint_id: str, error: str, *,
                                  deleted: bool = False) -> None:
        await self._run(checkpoints.unusable, checkpoint_id, error, deleted=deleted)

    # -- the worker protocol -------------------------------------------------------------------
    def finish_attempt(self, run_id: str, attempt: int,
                       outcome: AttemptOutcome) -> asyncio.Future[Run]:
        """The end of an attempt: run done, retried or failed (queued now: unit.py `submit`)."""
        return self.group.submit(attempts.finish_current, run_id, attempt, outcome)

    async def wait(self, run_id: str, attempt: int, *, kind: str, until: Any = None,
                   waitpoint_id: str | None = None, idempotency_key: str | None = None,
                   idempotency_key_ttl: str | None = None, record: Call | None = None,
                   keeps_timer: bool = False) -> waits.WaitDecision:
        """Block the run's current attempt on a waitpoint, or return its result at once."""
        return await self.group.run(
            waits.wait, run_id, attempt, kind=kind, until=until, waitpoint_id=waitpoint_id,
            idempotency_key=idempotency_key, idempotency_key_ttl=idempotency_key_ttl,
            record=record, keeps_timer=keeps_timer)

    async def timer_due(self, run_id: str, attempt: int, waitpoint_id: str) -> bool:
        """The run's shared process's own timer of its wait fired (waits.by_process)."""
        return await self.group.run(waits.by_process, run_id, attempt, waitpoint_id)

    async def wait_result(self, run_id: str, waitpoint_id: str) -> dict[str, Any] | None:
        return await waits.wait_result(self.queries, run_id, waitpoint_id)  # once resumed

    async def update_metadata(self, run_id: str, metadata: dict[str, Any] | None,
                              operations: Sequence[dict[str, Any]] | None = None
                              ) -> dict[str, Any]:
        return await self._run(reports.update_metadata, run_id, metadata, operations)

    async def append_logs(self, entries: Sequence[LogEntry], first: int | None = None,
                          recount: bool = False) -> None:
        if entries:  # a burst of log lines: one transaction (`first`: reports.append_logs)
            await self._run(reports.append_logs, entries, first, recount)

    # -- management ----------------------------------------------------------------------------
    async def append_stream(self, run_id: str, key: str, data: Sequence[str],
                            client_id: str | None = None, first_client_index: int = 0) -> int:
        return await self._run(streams.append, run_id, key, data, client_id, first_client_index)

    async def cancel(self, run_id: str) -> Run:  # one that already ended is returned as it is
        return await self._run(endings.cancel_by_request, run_id)

    async def reschedule(self, run_id: str, delay: Any) -> Run:
        return await self._run(timers.reschedule, run_id, delay)

    async def create_token(self, *, timeout: Any = None, idempotency_key: str | None = None,
                           idempotency_key_ttl: str | None = None, tags: list[str] | None = None,
                           created_by_run_id: str | None = None,
                           project: str | None = None) -> tuple[Waitpoint, bool]:
        return await self._run(waitpoints.create_token, timeout=timeout,
                               idempotency_key=idempotency_key,
                               idempotency_key_ttl=idempotency_key_ttl, tags=tags,
                               created_by_run_id=created_by_run_id, project=project)

    async def complete_token(self, waitpoint_id: str, output: str | None,
                             output_type: str = "application/json") -> tuple[Waitpoint, bool]:
        """Complete a MANUAL waitpoint; False: it was done already, nothing changed."""
        return await self._run(waitpoints.complete_token, waitpoint_id, output, output_type)

    async def timeout_token(self, waitpoint_id: str) -> tuple[Waitpoint, bool]:
        return await self._run(waitpoints.timeout_token, waitpoint_id)

    async def get_queue(self, name: str, project: str | None = None) -> Queue:
        return await queues.find(self.queries.queues, self.projects, name, project)

    async def set_queue_paused(self, name: str, paused: bool, project: str | None = None) -> Queue:
        queue = await self.get_queue(name, project)
        await self._run(queues.set_paused, queue, paused)
        return await self.get_queue(queue.name, queue.project)

    async def set_queue_limit(self, name: str, limit: int | None,
                              project: str | None = None) -> Queue:
        queues.check_limit(limit)
        queue = await self.get_queue(name, project)
        await self._run(queues.set_limit, queue, limit)
        return await self.get_queue(queue.name, queue.project)

    # -- schedules (engine/schedules.py) -------------------------------------------------------
    async def create_schedule(self, spec: ScheduleSpec) -> Schedule:
        """Create one, or update the one with the same deduplication key (upsert)."""
        spec = schedules.check_spec(self.projects, spec)
        return await self._run(schedules.create, spec)

    async def update_schedule(self, schedule_id: str, spec: ScheduleSpec) -> Schedule:
        current = await self.queries.schedules.get(schedule_id)  # its task stays in its project
        spec.project = spec.project or (current.project if current else None)
        spec = schedules.check_spec(self.projects, spec)
        return await self._run(schedules.update_by_id, schedule_id, spec)

    async def delete_schedule(self, schedule_id: str) -> Schedule:
        return await self._run(schedules.delete, schedule_id)

    async def set_schedule_active(self, schedule_id: str, active: bool) -> Schedule:
        return await self._run(schedules.set_active, schedule_id, active)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return await schedules.get(self.queries.schedules, schedule_id)

    async def list_schedules(self, page: int = 1, per_page: int = 25,
                             **filters: Any) -> tuple[list[Schedule], int]:
        return await self.queries.schedules.page((page - 1) * per_page, per_page, **filters)

    # -- environment variables (engine/envvars.py) ---------------------------------------------
    async def set_env_vars(self, project: str, env: str, values: dict[str, Any], *,
                           is_secret: bool | None = None, override: bool = True) -> None:
        await self._run(envvars.put, project, env, values, is_secret=is_secret, override=override)

    async def delete_env_var(self, project: str, env: str, name: str) -> None:
        await self._run(envvars.delete, project, env, name)

    async def env_var(self, project: str, env: str, name: str) -> dict[str, Any]:
        return await envvars.get(self.queries.env_vars, project, env, name)

    # -- dev sessions (engine/project_state.py) ------------------------------------------------
    async def open_session(self, ref: str) -> None:
        """A `dev` of project `ref` connected: its runs may start."""
        if self.projects.open_session(ref):
            await self._run(projects.session_changed, ref, online=True)

    async def close_session(self, ref: str) -> None:
        """A `dev` of project `ref` went away; with the last one, the project goes offline."""
        if self.projects.close_session(ref):
            await self._run(projects.session_changed, ref, online=False)

    async def prune(self, limit: int) -> tuple[int, list[str]]:  # retention (retention.py)
        return await self._run(retention.prune, limit)
