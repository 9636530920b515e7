"""The one door for a run's status: `move`. Every change of status goes through it: it checks
the transition table (engine/states.py), compare-and-sets the run's snapshot id, appends the
snapshot and records the change as a `RunStatusChanged` (or the subclass that names it).

A step the next one follows at once leaves no history (`history=False`): taking a run off its
queue (DEQUEUED, engine/dequeue.py) updates the run row and publishes the change as a notice
(`RunDequeued`), but writes neither a snapshot nor an event row; the start that follows in the
same dispatch round records `run.executing` with `from: DEQUEUED`, so a run's history reads as
it did less that one line, and a no-op run costs two fewer writes.

A change's history is one row: its event (issue #13). The event's data names the snapshot the
change made (`snapshot_id`, and its `description` when it has one), and the run's snapshots are
read from its events (engine/history.py). A separate snapshot row per change cost a no-op run
three more inserts into a table keyed by random ids — about a third of its start and finish.

A late message (a completion from an attempt that was already cancelled or timed out, a worker
that lost its run) meets a `ConflictError` here, never a corrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConflictError, NotFoundError
from ..ids import new_id
from ..store.models import DEQUEUED, EXECUTING, FINAL_STATUSES, WAITING, LogEntry, Run
from ..store.run_areas import RunReader
from .events import RunCreated, RunLogsAppended, RunStatusChanged
from .log_cap import marker
from .states import allowed, ends_attempt, kind_for
from .unit import Tx


async def move(tx: Tx, run: Run, status: str, *, kind: str | None = None,
               event: type[RunStatusChanged] = RunStatusChanged, description: str = "",
               data: Mapping[str, Any] | None = None, history: bool = True,
               stored: bool = True, **changes: Any) -> Run:
    """Move `run` to `status` if the transition table allows it and nobody moved it first.

    Raises ConflictError otherwise; on success appends a snapshot, records `event`, updates
    `run` in place (with `changes`, fields of `Run`) and returns it. `stored=False`: the run's
    row is not in the store yet — its caller inserts it as it is after the move (a trigger's
    new run started in its transaction, engine/starting.py): no row is updated."""
    if not allowed(run.status, status):
        raise ConflictError(f"Run {run.id} is {run.status}; it cannot become {status}")
    tx.ctx.started.pop(run.id, None)  # its start is no longer its last move
    if status in FINAL_STATUSES:  # no start follows (unit.py EngineContext.changed_in_place)
        tx.ctx.changed_in_place.discard(run.id)
    snapshot_id = new_id("snapshot")
    kind = kind or kind_for(status)
    ok = not stored or await tx.runs.update(
        run.id, run.snapshot_id, was=(run.status, run.project, run.queue), status=status,
        snapshot_id=snapshot_id, snapshot_kind=kind, updated_at=tx.now, **changes)
    if not ok:
        raise ConflictError(f"Run {run.id} changed while this request ran; try again")
    extra = dict(data or {})
    if history:  # the event row is the snapshot's record (the module docstring)
        extra["snapshot_id"] = snapshot_id
        if description:
            extra["description"] = description
    previous, worker_id, attempt = run.status, run.worker_id, run.attempt_count
    # an attempt this daemon does not count in memory is read from the store only if it may
    # be live: a run with no attempt, or whose move before ended it (DELAYED, QUEUED), has none
    live = attempt > 0 and not ends_attempt(previous, run.snapshot_kind)
    if ends_attempt(status, kind) and (dropped := await tx.ctx.log_caps.ended(
            tx.log_counts, tx.logs, run.id, attempt, read=live)):
        await store_logs(tx, [marker(run.id, attempt, dropped, tx.ctx.settings.log_limit_bytes,
                                     tx.now)])  # one line: what its log cap dropped
    run.status, run.snapshot_id, run.snapshot_kind, run.updated_at = status, snapshot_id, kind, \
        tx.now
    for key, value in changes.items():
        setattr(run, key, value)
    await tx.record(event(run_id=run.id, task_id=run.task_id, project=run.project, queue=run.queue,
                          tags=tuple(run.tags), status=status, kind=kind, previous=previous,
                          worker_id=worker_id, attempt=run.attempt_count,
                          attempt_ended=ends_attempt(status, kind), extra=extra))
    return run


async def store_logs(tx: Tx, entries: Sequence[LogEntry]) -> None:
    """Store log lines and spans, one `run.logs` event per run (the SSE stream expands it)."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.run_id] = counts.get(entry.run_id, 0) + 1
    # one writer, so this burst's ids are the next ones above `after_id`
    after_id = await tx.logs.last_id()
    await tx.logs.append(entries)
    for run_id, count in counts.items():
        await tx.record(RunLogsAppended(run_id=run_id, after_id=after_id, count=count))


async def created(tx: Tx, run: Run, description: str = "created") -> None:
    """Record a run that was just inserted: `RunCreated`, which names its first snapshot."""
    await tx.record(created_event(run, description))


def created_event(run: Run, description: str = "created") -> RunCreated:
    return RunCreated(run_id=run.id, task_id=run.task_id, project=run.project, queue=run.queue,
                      tags=tuple(run.tags), status=run.status, kind=run.snapshot_kind,
                      snapshot_id=run.snapshot_id, description=description)


async def get(runs: RunReader, run_id: str) -> Run:
    """The run, or NotFoundError."""
    run = await runs.get(run_id)
    if run is None:
        raise NotFoundError(f"Run {run_id} not found")
    return run


async def live(tx: Tx, run_id: str, attempt: int) -> Run:
    """The run whose current attempt is `attempt` and still running or waiting; else
    NotFoundError, or ConflictError for an attempt that is over."""
    run = await get(tx.runs, run_id)
    if run.attempt_count != attempt or run.status not in (EXECUTING, WAITING, DEQUEUED):
        raise ConflictError(f"Attempt {attempt} of run {run_id} is no longer current "
                            f"(run is {run.status})")
    return run
