"""A run's attempts: started on a process, ended by its result (completed, retried or failed),
or ended because its process went away (a crash is retried per policy; an interruption — a
daemon stop or restart — queues the run again without using an attempt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import packets
from ..errors import ConflictError
from ..ids import attempt_id
from ..machines import DEFAULT_MACHINE
from ..store.models import (
    COMPLETED,
    CRASHED,
    DELAYED,
    DEQUEUED,
    EXECUTING,
    FAILED,
    FINAL_STATUSES,
    INTERRUPTED,
    QUEUED,
    SYSTEM_FAILURE,
    TIMED_OUT,
    WAITING,
    Attempt,
    Run,
)
from ..store.run_areas import RunReader
from .endings import after_final
from .events import RunInterrupted, RunReplayed, RunResumed, RunRetrying
from .resuming import deadline
from .runs import live, move
from .states import K_QUEUED
from .unit import Tx
from .versions import retry_policy


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What a worker reports when an attempt ends."""

    ok: bool
    output: str | None = None
    output_type: str = packets.JSON
    error: dict[str, Any] | None = None
    retryable: bool = True
    status: str = FAILED  # FAILED | CRASHED | TIMED_OUT for failures
    #: the task's catch_error chose when to retry (still within max_attempts); None: the policy
    retry_delay_s: float | None = None


async def start(tx: Tx, given: Run, worker_id: str, pid: int | None, executor: str, *,
                replays: int = 0) -> tuple[Run, Attempt] | None:
    """DEQUEUED (or reserved QUEUED, engine/dequeue.py) → EXECUTING with a new attempt on
    `worker_id`. None if the run moved on. `replays`: the durable records the attempt replays,
    read before the start (executors/assignments.py `before_start`), said in the run's history
    with the start (`run.replayed`)."""
    started = await _take(tx, given, worker_id, pid, executor)
    if started is not None and replays:
        await tx.record(RunReplayed(run_id=given.id, attempt=started[1].number, records=replays))
    return started


async def _take(tx: Tx, given: Run, worker_id: str, pid: int | None,
                executor: str) -> tuple[Run, Attempt] | None:
    """`start` itself.

    `given` is the run as the dispatcher dequeued it: the move's compare-and-set on its snapshot
    id says whether it is still that run, so the run is read again only when it changed (a
    reserved run that changed is left to the next round). A copy is moved: a unit of work the
    store refuses runs again from `given` as it was. The reservation is let go at once: only
    a store no other daemon shares has them, and such a store never refuses a unit."""
    if tx.ctx.reserved.pop(given.id, None) is not None and given.status == QUEUED:
        try:
            return await _start(tx, given.copied(), worker_id, pid, executor)
        except ConflictError:
            return None
    if given.status == DEQUEUED:
        try:
            return await _start(tx, given.copied(), worker_id, pid, executor)
        except ConflictError:
            pass  # moved since: start it if it is still dequeued
    run = await tx.runs.get(given.id)
    if run is None or run.status != DEQUEUED:
        return None
    tx.ctx.changed_in_place.discard(run.id)  # read now: the row as it is
    return await _start(tx, run, worker_id, pid, executor)


async def start_new(tx: Tx, run: Run, worker_id: str, pid: int | None,
                    executor: str) -> Attempt:
    """`start` of a run reserved in the transaction that makes it, before its row is written
    (engine/starting.py): `run` becomes EXECUTING in memory, its history as any start's; the
    caller inserts the run as it is then, and after it the attempt returned."""
    tx.ctx.reserved.pop(run.id, None)
    return (await _start(tx, run, worker_id, pid, executor, stored=False))[1]


async def _start(tx: Tx, run: Run, worker_id: str, pid: int | None,
                 executor: str, *, stored: bool = True) -> tuple[Run, Attempt]:
    number = run.attempt_count + 1
    data: dict[str, Any] = {"attempt": run.shown_attempt(number), "worker_id": worker_id}
    if run.attempt_count:  # a run that ran before: say so if it was interrupted (dev prints it)
        previous = (await tx.attempts.for_run(run.id))[-1:]
        if previous and previous[0].status == INTERRUPTED:
            data["interrupted_by"] = (previous[0].error or {}).get("message") \
                or "an interruption"
    # a reserved run's dequeue wrote nothing: its start does
    taken: dict[str, Any] = {"version_id": run.version_id, "expires_at": None} \
        if run.status == QUEUED else {}
    # the move first: its compare-and-set fails before anything is written
    await move(tx, run, EXECUTING, attempt_count=number, worker_id=worker_id,
               started_at=run.started_at or tx.now, deadline_at=deadline(run, tx.now), data=data,
               stored=stored, **taken)
    attempt = Attempt(id=attempt_id(run.id, number), run_id=run.id, number=number,
                      status=EXECUTING,
                      started_at=tx.now, worker_id=worker_id, pid=pid, executor=executor)
    if stored:  # else after its run's row (start_new)
        await tx.attempts.insert(attempt)
    tx.ctx.log_caps.began(tx.log_counts, run.id, number)
    # a copy only of a row this daemon alone writes, with no write since it was read
    if not tx.ctx.shared_store and run.id not in tx.ctx.changed_in_place:
        tx.ctx.started[run.id] = run.copied()
    return run, attempt


async def on_workers(runs: RunReader) -> list[Run]:
    """Runs that a process is (or was, before a restart) executing or holding."""
    return await runs.on_workers()


async def requeue(tx: Tx, run_id: str, reason: str) -> None:
    """A DEQUEUED run that no worker could take goes back to its queue; a reserved one is let
    go (it never left it: nothing to write)."""
    if tx.ctx.reserved.pop(run_id, None) is not None:
        return
    run = await tx.runs.get(run_id)
    if run is not None and run.status == DEQUEUED:
        await move(tx, run, QUEUED, description=reason)


async def resume_held(tx: Tx, run_id: str) -> Run | None:
    """A DEQUEUED run whose process is held alive continues in that process."""
    run = await tx.runs.get(run_id)
    if run is None or run.status != DEQUEUED:
        return None
    return await move(tx, run, EXECUTING, deadline_at=deadline(run, tx.now), event=RunResumed,
                      data={"attempt": run.attempt_count, "worker_id": run.worker_id})


async def finish_current(tx: Tx, run_id: str, attempt: int, outcome: AttemptOutcome) -> Run:
    """A worker reports the end of `attempt` (ConflictError when it is no longer current).

    A run whose last move was the start of this attempt is not read again: the copy that start
    left (`EngineContext.started`) is moved, and the move's compare-and-set on its snapshot id
    proves the row is still that copy — a completion moves the run before it writes anything
    else. When it is not, nothing was written, and the row is read."""
    held = tx.ctx.started.pop(run_id, None)
    if held is not None and outcome.ok and held.attempt_count == attempt:
        try:
            return await finish(tx, held, outcome)
        except ConflictError:
            pass  # moved (or changed) since that start, or a start that was never committed
    return await finish(tx, await live(tx, run_id, attempt), outcome)


async def finish(tx: Tx, run: Run, outcome: AttemptOutcome) -> Run:
    """Record the end of the current attempt: complete the run, schedule a retry, or fail it."""
    if outcome.ok:  # the current attempt is the run's last (its number: attempt_count)
        blocked = run.status != EXECUTING
        # the move first: its compare-and-set fails before anything is written (finish_current)
        await move(tx, run, COMPLETED, output=outcome.output, output_type=outcome.output_type,
                   completed_at=tx.now, deadline_at=None, worker_id=None)
        await tx.attempts.update_numbered(run.id, run.attempt_count, status=COMPLETED,
                                          finished_at=tx.now)
        await after_final(tx, run, blocked=blocked)
        return run
    attempts = await tx.attempts.for_run(run.id)
    current = attempts[-1] if attempts else None
    if current:
        await tx.attempts.update(current.id, status=outcome.status, finished_at=tx.now,
                                 error=outcome.error)
    counted = sum(1 for a in attempts if a.counts)
    policy = await retry_policy(tx.ctx, tx.versions, run)
    if outcome.retryable and outcome.status != TIMED_OUT and counted < policy.max_attempts:
        delay = policy.delay_s(counted) if outcome.retry_delay_s is None \
            else outcome.retry_delay_s
        shown = run.counted_attempts
        data: dict[str, Any] = {"attempt": shown, "retry_in_s": round(delay, 3)}
        description = f"attempt {shown} failed; retry in {delay:.1f}s"
        changes: dict[str, Any] = {}
        bigger = policy.retry_machine(outcome.error, run.machine)
        if bigger is not None:
            # the run's machine is what the executor reads when it starts the next attempt
            changes["machine"] = data["machine"] = bigger
            data["previous_machine"] = run.machine or DEFAULT_MACHINE
            description = (f"attempt {shown} ran out of memory on "
                           f"{data['previous_machine']}; retry on {bigger} in {delay:.1f}s")
        await tx.waitpoints.unblock(run.id)
        return await move(tx, run, DELAYED, kind="delayed_retry", delay_until=tx.now + delay,
                          worker_id=None, deadline_at=None, error=outcome.error, executed_s=0.0,
                          event=RunRetrying, description=description, data=data, **changes)
    final = outcome.status if outcome.status in FINAL_STATUSES else FAILED
    await move(tx, run, final, error=outcome.error, completed_at=tx.now, deadline_at=None,
               worker_id=None)
    await after_final(tx, run)
    return run


async def worker_lost(tx: Tx, run_id: str, attempt: int, reason: str, *, interrupted: bool,
                      error_name: str) -> Run | None:
    """The process running (or holding) `attempt` is gone. A crash is retried per policy; an
    interruption queues the run again without using an attempt."""
    run = await tx.runs.get(run_id)
    if run is None or run.attempt_count != attempt \
            or run.status not in (DEQUEUED, EXECUTING, WAITING):
        return run
    if interrupted:
        attempts = await tx.attempts.for_run(run.id)
        if attempts:
            await tx.attempts.update(attempts[-1].id, status=INTERRUPTED, finished_at=tx.now,
                                     counts=False, error={"message": reason})
        await tx.waitpoints.unblock(run.id)
        return await move(tx, run, QUEUED, kind=K_QUEUED, worker_id=None, deadline_at=None,
                          interrupted_count=run.interrupted_count + 1,
                          event=RunInterrupted, description=reason, data={"reason": reason})
    error = {"name": error_name, "message": reason}
    return await finish(tx, run, AttemptOutcome(ok=False, error=error, status=CRASHED))


async def system_failure(tx: Tx, run_id: str, reason: str) -> None:
    """The daemon cannot run it at all (its version is gone, it has no image); a reserved run
    fails from QUEUED."""
    tx.ctx.reserved.pop(run_id, None)
    run = await tx.runs.get(run_id)
    if run is not None and not run.is_final:
        await move(tx, run, SYSTEM_FAILURE, completed_at=tx.now, worker_id=None,
                   error={"name": "SystemFailure", "message": reason})
        await after_final(tx, run)
