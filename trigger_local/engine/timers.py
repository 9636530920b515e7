"""Everything that happens on time, in one round: delays that elapsed, ttls that expired, max
durations that ran out, waitpoint times and timeouts, schedule ticks, rate-limit windows. The
dispatcher calls `tick` when the engine's schedule of due times (engine/due.py) says so."""

from __future__ import annotations

from typing import Any

from ..durations import parse_time
from ..errors import ValidationError
from ..store.models import DELAYED, EXPIRED, PENDING_VERSION, QUEUED, TIMED_OUT, Run
from . import queues, ratelimits, schedules, waitpoints
from .attempts import AttemptOutcome, finish
from .endings import after_final
from .events import AttemptAborted, RunRescheduled
from .runs import get, move
from .unit import Tx


async def tick(tx: Tx) -> int:
    """Do everything that is due at `tx.now` (at most a batch of each kind); returns how many
    things changed."""
    done = 0
    for run in await tx.timers.delayed_runs(tx.now):
        await delay_elapsed(tx, run)
        done += 1
    for run in await tx.timers.expired_runs(tx.now):
        await move(tx, run, EXPIRED, completed_at=tx.now, description="ttl elapsed before start",
                   error={"name": "Expired",
                          "message": "The run was not started within its ttl"})
        await after_final(tx, run)
        done += 1
    for run in await tx.timers.deadline_runs(tx.now):
        await _out_of_time(tx, run)
        done += 1
    done += await waitpoints.tick(tx)
    done += await schedules.tick(tx)
    done += await ratelimits.tick(tx)
    return done


async def _out_of_time(tx: Tx, run: Run) -> None:
    """Its max duration ran out: TIMED_OUT (never retried), and its process is killed."""
    worker_id = run.worker_id
    error = {"name": "MaxDurationExceeded",
             "message": f"Run exceeded its max_duration of {run.max_duration_s:g}s and was "
                        "stopped"}
    await finish(tx, run, AttemptOutcome(ok=False, error=error, status=TIMED_OUT,
                                         retryable=False))
    if worker_id:
        await tx.record(AttemptAborted(run_id=run.id, worker_id=worker_id, reason="max_duration"))


async def delay_elapsed(tx: Tx, run: Run) -> None:
    """A DELAYED run's time came: QUEUED when its project's version has its task (or it is a
    retry, locked to its version), else PENDING_VERSION. A run triggered before any project
    had its task joins the one project that has it now."""
    projects = tx.ctx.projects
    owners = projects.owners(run.task_id)
    project = run.project if run.project is not None else owners[0] if len(owners) == 1 else None
    if projects.current_of(project) is None \
            or not (run.version_id or projects.task(project, run.task_id)):
        await move(tx, run, PENDING_VERSION, delay_until=None, description="delay elapsed")
        return
    if run.project is None and project is not None:
        await queues.ensure(tx, project, run.queue, None, custom=False)
    await move(tx, run, QUEUED, delay_until=None, project=project, description="delay elapsed")


async def reschedule(tx: Tx, run_id: str, delay: Any) -> Run:
    """Move a DELAYED run's start (its ttl moves with it); ValidationError for another status."""
    run = await get(tx.runs, run_id)
    if run.status != DELAYED:
        raise ValidationError(f"Cannot reschedule run {run_id}: it is {run.status}, not DELAYED")
    until = parse_time(delay, tx.now, what="delay")
    changes: dict[str, Any] = {"delay_until": until}
    if run.expires_at is not None and run.delay_until is not None:
        changes["expires_at"] = run.expires_at + (until - run.delay_until)
    return await move(tx, run, DELAYED, event=RunRescheduled, **changes)
