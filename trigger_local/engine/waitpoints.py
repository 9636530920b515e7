"""Waitpoints: every wait a run can make (a time, a token, a child run, a batch) is one. Here:
making tokens, and completing or timing out a waitpoint, which releases the runs blocked on it.
(A run's side of a wait — blocking on one — is engine/waits.py.)"""

from __future__ import annotations

import json
from typing import Any

from .. import limits, packets
from ..durations import iso, parse_duration, parse_time
from ..errors import NotFoundError, ValidationError
from ..ids import new_id
from ..store.models import (
    COMPLETED,
    QUEUED,
    WAITING,
    WP_COMPLETED,
    WP_DATETIME,
    WP_MANUAL,
    WP_TIMED_OUT,
    WP_WAITING,
    Run,
    Waitpoint,
)
from .due import waitpoint_timer
from .events import RunUnblocked, WaitpointCompleted, WaitpointCreated
from .options import MAX_TAG_LENGTH, MAX_TAGS
from .resuming import InPlace
from .runs import move
from .states import K_QUEUED_HELD
from .unit import Tx


def waitpoint_result(wp: Waitpoint) -> dict[str, Any]:
    """What a waiting task receives: ok, output (raw packet) and its type, or an error."""
    if wp.status == WP_TIMED_OUT or wp.output_is_error:
        error = packets.decode(wp.output, wp.output_type) if wp.output else {"message": "failed"}
        return {"ok": False, "status": wp.status, "error": error, "output": None,
                "outputType": wp.output_type}
    return {"ok": True, "status": wp.status, "output": wp.output, "outputType": wp.output_type}


async def create_token(tx: Tx, *, timeout: Any = None, idempotency_key: str | None = None,
                       idempotency_key_ttl: str | None = None, tags: list[str] | None = None,
                       created_by_run_id: str | None = None,
                       project: str | None = None) -> tuple[Waitpoint, bool]:
    """A new MANUAL waitpoint of `project` (None: the daemon key's only), or (with True) the
    one `idempotency_key` made before in that project."""
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"Tokens can only have {MAX_TAGS} tags, you're trying to set "
                              f"{len(tags)}.")
    for tag in tags:
        if not isinstance(tag, str):
            raise ValidationError(f"Each tag must be a string of 1 to {MAX_TAG_LENGTH} "
                                  f"characters: {tag!r}")
        limits.check_name(tag, "tags", MAX_TAG_LENGTH)
    if idempotency_key is not None:
        limits.check_name(idempotency_key, "idempotencyKey", limits.MAX_IDEMPOTENCY_KEY_LENGTH)
    timeout_at = parse_time(timeout, tx.now, what="timeout") if timeout else None
    if idempotency_key:
        existing = await tx.waitpoints.find_by_key(WP_MANUAL, idempotency_key, tx.now, project)
        if existing is not None:
            return existing, True
    key_expires_at = (tx.now + parse_duration(idempotency_key_ttl, what="idempotency_key_ttl")
                      if idempotency_key_ttl else None)
    wp = Waitpoint(id=new_id("waitpoint"), type=WP_MANUAL, status=WP_WAITING, created_at=tx.now,
                   timeout_at=timeout_at, idempotency_key=idempotency_key, tags=tags,
                   created_by_run_id=created_by_run_id, idempotency_expires_at=key_expires_at,
                   project=project)
    await tx.waitpoints.insert(wp)
    await tx.record(WaitpointCreated(waitpoint_id=wp.id))
    return wp, False


async def _token(tx: Tx, waitpoint_id: str) -> Waitpoint:
    """The MANUAL waitpoint `waitpoint_id`, or NotFoundError."""
    wp = await tx.waitpoints.get(waitpoint_id)
    if wp is None or wp.type != WP_MANUAL:
        raise NotFoundError(f"Waitpoint token {waitpoint_id} not found")
    return wp


async def complete_token(tx: Tx, waitpoint_id: str, output: str | None,
                         output_type: str = packets.JSON) -> tuple[Waitpoint, bool]:
    """Complete a MANUAL waitpoint, and whether this call did: completing one that is
    already done changes nothing (False)."""
    wp = await _token(tx, waitpoint_id)
    return wp, await complete(tx, wp, output, output_type)


async def timeout_token(tx: Tx, waitpoint_id: str) -> tuple[Waitpoint, bool]:
    """Time a MANUAL waitpoint out now, and whether this call did (one that is already done
    stays as it is: False)."""
    wp = await _token(tx, waitpoint_id)
    return wp, await time_out(tx, wp)


async def complete(tx: Tx, wp: Waitpoint, output: str | None, output_type: str = packets.JSON,
                   *, is_error: bool = False, status: str = WP_COMPLETED,
                   in_place: InPlace | None = None) -> bool:
    """Complete `wp` if it is still WAITING (else nothing happens: False), and queue every run it
    was the last pending blocker of (QUEUED `queued_held`: it needs its slot back) — or, with
    `in_place`, let such a run go on at once in the process holding it when that room allows
    (engine/resuming.py)."""
    ok = await tx.waitpoints.update(wp.id, WP_WAITING, status=status, completed_at=tx.now,
                                    output=output, output_type=output_type,
                                    output_is_error=is_error)
    if not ok:
        return False
    wp.status, wp.completed_at, wp.output, wp.output_type, wp.output_is_error = \
        status, tx.now, output, output_type, is_error
    await tx.record(WaitpointCompleted(waitpoint_id=wp.id, status=status))
    for run_id in await tx.waitpoints.blocked_runs(wp.id):
        if await tx.waitpoints.pending_count(run_id):
            continue
        run = await tx.runs.get(run_id)
        if run is None or run.status != WAITING:
            continue
        await tx.waitpoints.unblock(run_id)
        if in_place is not None and await in_place.admits(tx, run):
            await in_place.resume(tx, run, wp, waitpoint_result(wp))
            continue
        await move(tx, run, QUEUED, kind=K_QUEUED_HELD, event=RunUnblocked,
                   data={"waitpoint_id": wp.id})
    return True


async def time_out(tx: Tx, wp: Waitpoint, in_place: InPlace | None = None) -> bool:
    # Trigger.dev's stored timeout output (TRIGGER_API.md §6.4), so a Python task, the API and
    # the official SDK all see the same error; a forced timeout happened now, not at timeout_at
    at = wp.timeout_at if wp.timeout_at is not None and wp.timeout_at <= tx.now else tx.now
    error = json.dumps({"code": "TRIGGER_WAITPOINT_TIMEOUT",
                        "message": f"Waitpoint timed out at {iso(at)}"})
    return await complete(tx, wp, error, packets.JSON, is_error=True, status=WP_TIMED_OUT,
                          in_place=in_place)


async def complete_run_waitpoint(tx: Tx, run: Run) -> None:
    """`run` ended: its RUN waitpoint (if any) completes with its output or its error."""
    wp = await tx.waitpoints.get(run.waitpoint_id) if run.waitpoint_id else None
    if wp is None or wp.status != WP_WAITING:
        return
    if run.status == COMPLETED:
        await complete(tx, wp, run.output, run.output_type or packets.JSON)
    else:
        error = dict(run.error or {"message": f"Run {run.status.lower()}"})
        error.setdefault("status", run.status)
        await complete(tx, wp, json.dumps(error), packets.JSON, is_error=True)


async def tick(tx: Tx) -> int:
    """Waitpoints whose time came complete, tokens whose timeout came time out; the runs they
    free go on in their processes at once where they can (engine/resuming.py)."""
    done = 0
    in_place = InPlace()
    kept: list[float] = []
    for wp in await tx.timers.waitpoints(tx.now):
        if _kept_by_process(tx, wp):
            kept.append(tx.ctx.due.at(waitpoint_timer(wp.id)) or tx.now)
            continue
        if wp.type == WP_DATETIME:
            await complete(tx, wp, None, packets.JSON, in_place=in_place)
        else:
            await time_out(tx, wp, in_place)
        done += 1
    if kept:  # an anonymous entry: a process ending its wait does not cancel this round
        tx.ctx.due.add(min(kept))
    return done


def _kept_by_process(tx: Tx, wp: Waitpoint) -> bool:
    """A duration wait whose run's shared process keeps its timer, within the grace the daemon
    gives it (engine/waits.py `wait`): the daemon's timer for it is set later than its due time,
    and the process's word that its own timer fired (`by_process`) ends it. Not once the run
    left that process (evicted): then the daemon's timer is the only one."""
    if wp.type != WP_DATETIME or wp.created_by_run_id is None:
        return False
    later = tx.ctx.due.at(waitpoint_timer(wp.id))
    capability = tx.ctx.capability
    return later is not None and later > tx.now and capability is not None \
        and capability.shares_process(wp.created_by_run_id)
