"""A run's side of a wait: blocking its attempt on a waitpoint (or answering at once), and the
result a held run's process polls for once the run has its slot back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import packets
from ..durable_calls import Call
from ..durations import parse_duration, parse_time
from ..errors import ConflictError, NotFoundError, ValidationError
from ..ids import new_id
from ..store.interface import StoreReader
from ..store.models import EXECUTING, WAITING, WP_COMPLETED, WP_DATETIME, WP_WAITING, Run, Waitpoint
from . import durable, suspension, waitpoints
from .due import waitpoint_timer
from .resuming import room_of
from .runs import get, live, move
from .states import K_HELD
from .unit import Tx
from .waitpoints import waitpoint_result

KINDS = ("duration", "token", "run", "batch")
#: a process's timer may fire this much before the daemon's clock says the wait is due (the same
#: machine's clock, read at two instants and rounded differently)
EARLY_S = 1.0


@dataclass(frozen=True, slots=True)
class WaitDecision:
    action: str  # continue | hold | checkpoint (engine/suspension.py)
    waitpoint_id: str
    result: dict[str, Any] | None = None
    #: a held duration wait's due time, which the run's shared process may keep a timer for
    #: itself (`by_process`, below); None: only the daemon's timer ends the wait
    until: float | None = None


async def wait(tx: Tx, run_id: str, attempt: int, *, kind: str, until: Any = None,
               waitpoint_id: str | None = None, idempotency_key: str | None = None,
               idempotency_key_ttl: str | None = None,
               record: Call | None = None, keeps_timer: bool = False) -> WaitDecision:
    """Block the run's current attempt on a waitpoint, or return its result at once. With
    `record`, the wait is a durable call: a replayed one waits on the waitpoint its record
    bound (the same token, child, or due time), a new one is recorded (engine/durable.py).
    `keeps_timer`: the run's process said it keeps the timers of its duration waits; when it
    may keep this one, the daemon's own timer gives it a grace (`process_timer_grace_s`)."""
    run = await live(tx, run_id, attempt)
    if run.status != EXECUTING:  # one wait at a time; WAITING → WAITING is only for suspending
        raise ConflictError(f"Run {run_id} is {run.status}: it can only wait while EXECUTING")
    found = await durable.recorded(tx, run.id, record)
    wp = await tx.waitpoints.get(found.waitpoint_id) if found and found.waitpoint_id else None
    if wp is None:
        wp = await _waitpoint(tx, run, kind, until, waitpoint_id, idempotency_key,
                              idempotency_key_ttl)
        await durable.bind(tx, run.id, attempt, record, waitpoint_id=wp.id)
    capability = tx.ctx.capability
    action = suspension.decide(wp, tx.now, tx.settings, capability, run.id)
    if action == suspension.CONTINUE:
        return WaitDecision(action, wp.id, waitpoint_result(wp))
    await tx.waitpoints.block(run.id, [wp.id], tx.now)
    executed = run.executed_s
    if run.deadline_at is not None and run.max_duration_s:
        executed = run.max_duration_s - max(0.0, run.deadline_at - tx.now)
    hold_reason = suspension.hold_reason(wp, tx.now, tx.settings, capability, run.id)
    await move(tx, run, WAITING, deadline_at=None, executed_s=executed,
               data={"waitpoint_id": wp.id, "waitpoint_type": wp.type, "action": action,
                     "until": wp.complete_after, "hold_reason": hold_reason})
    kept = _process_timer(tx, run, wp, action)
    if kept is not None and keeps_timer:
        # the daemon's timer fires a grace later: the process's word (`by_process`) comes first
        # and the daemon's is left with nothing to do but be the backstop (a stopped process)
        tx.due_notes.append((waitpoint_timer(wp.id), kept + tx.settings.process_timer_grace_s))
    return WaitDecision(action, wp.id, until=kept)


def _process_timer(tx: Tx, run: Run, wp: Waitpoint, action: str) -> float | None:
    """The due time of a duration wait held in a shared process that will not be evicted
    first (due within `evict_after_s`): its process may keep the timer too, and go on when it
    fires (docs/waits.md, "Who keeps a wait's timer"). None on a store daemons share
    (PostgreSQL): a run never resumes in place there (engine/resuming.py), so the process's
    word (`by_process`) could not let it go on — the daemon's timer ends the wait, on time."""
    if action != suspension.HOLD or wp.type != WP_DATETIME or wp.complete_after is None:
        return None
    if tx.ctx.shared_store:
        return None
    capability = tx.ctx.capability
    if capability is None or not capability.shares_process(run.id):
        return None
    evict_after = tx.settings.evict_after_s
    if evict_after > 0 and wp.complete_after - tx.now >= evict_after:
        return None
    return wp.complete_after


async def _waitpoint(tx: Tx, run: Run, kind: str, until: Any, waitpoint_id: str | None,
                     key: str | None, key_ttl: str | None) -> Waitpoint:
    if kind == "duration":
        return await _duration_waitpoint(tx, run, until, key, key_ttl)
    if kind not in KINDS:
        raise ValidationError(f"Unknown wait kind {kind!r}: use duration, token, run or batch")
    if not waitpoint_id:
        raise ValidationError(f"A {kind} wait needs a waitpoint id")
    wp = await tx.waitpoints.get(waitpoint_id)
    # a token of another project is not there for this run (one of no project is everyone's)
    if wp is None or wp.project not in (None, run.project):
        raise NotFoundError(f"Waitpoint {waitpoint_id} not found")
    return wp


async def _duration_waitpoint(tx: Tx, run: Run, until: Any, key: str | None,
                              key_ttl: str | None) -> Waitpoint:
    when = parse_time(until, tx.now, what="wait time") if until is not None else tx.now
    scoped = f"{run.id}:{key}" if key else None
    if scoped:
        existing = await tx.waitpoints.find_by_key(WP_DATETIME, scoped, tx.now)
        if existing is not None:
            return existing
    status = WP_COMPLETED if when <= tx.now else WP_WAITING
    key_expires_at = (tx.now + parse_duration(key_ttl, what="idempotency_key_ttl")
                      if key_ttl else None)
    wp = Waitpoint(id=new_id("waitpoint"), type=WP_DATETIME, status=status, created_at=tx.now,
                   completed_at=tx.now if status == WP_COMPLETED else None, complete_after=when,
                   idempotency_key=scoped, created_by_run_id=run.id,
                   idempotency_expires_at=key_expires_at)
    await tx.waitpoints.insert(wp)
    return wp


async def wait_result(read: StoreReader, run_id: str, waitpoint_id: str) -> dict[str, Any] | None:
    """The result for a held run, once the dispatcher gave it its slot back; else None."""
    run = await get(read.runs, run_id)
    if run.is_final:
        return {"ok": False, "status": run.status, "error": {"message": f"Run is {run.status}"},
                "final": True}
    if run.status != EXECUTING:
        return None
    wp = await read.waitpoints.get(waitpoint_id)
    if wp is None:
        raise NotFoundError(f"Waitpoint {waitpoint_id} not found")
    return None if wp.status == WP_WAITING else waitpoint_result(wp)


async def by_process(tx: Tx, run_id: str, attempt: int, waitpoint_id: str) -> bool:
    """The timer the run's shared process kept for its duration wait fired, and the run went on
    there (docs/waits.md, "Who keeps a wait's timer"). Completes the waitpoint unless the
    daemon's timer did first, and moves the run WAITING → EXECUTING in place as that timer
    would (engine/resuming.py), with no resume message: the process knows.

    True: the run is EXECUTING. False: it waits for a slot (its queue is paused or full: it is
    queued held, as from the daemon's timer) — the process waits for its resume before it sends
    anything more. ConflictError ("gone"): the attempt ended, or the daemon let go of the run
    (evicted). Idempotent: sent twice, or after the daemon's own timer, it changes nothing."""
    run = await get(tx.runs, run_id)
    if run.attempt_count != attempt or run.is_final or not run.worker_id \
            or (run.status == WAITING and run.snapshot_kind != K_HELD):
        # ended, or let go of (evicted: no process holds it; its next attempt replays it)
        raise ConflictError(f"Attempt {attempt} of run {run_id} is no longer held by its "
                            f"process (run is {run.status}, {run.snapshot_kind})")
    wp = await tx.waitpoints.get(waitpoint_id)
    if wp is None or wp.type != WP_DATETIME or wp.created_by_run_id != run.id:
        raise NotFoundError(f"Waitpoint {waitpoint_id} is not a duration wait of run {run_id}")
    if wp.status != WP_WAITING:  # the daemon's timer came first (or this frame, sent twice)
        return run.status == EXECUTING
    if wp.complete_after is None or wp.complete_after > tx.now + EARLY_S:
        raise ValidationError(f"Waitpoint {waitpoint_id} is not due yet")
    room = room_of(tx)
    room.told.add(run.id)
    await waitpoints.complete(tx, wp, None, packets.JSON, in_place=room)
    return run.id in room.resumed
