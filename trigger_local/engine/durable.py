"""A run's durable records (docs/durability.md): every wait, token, child trigger, step and
checkpoint a task makes is recorded by its call order `seq`, in the same transaction as what it
records (the waitpoint, the token, the child run, the batch), so a crash never leaves one
without the other. A replayed attempt — its process gone and no checkpoint to restore, or a
retry — re-runs the task function from the top and gets each recorded call's answer instead of
doing it again; a wait still pending blocks on the same waitpoint.

A wait's outcome is its waitpoint's: the record binds the waitpoint and is shown completed once
the waitpoint is (`for_replay`), so there is one truth and nothing to keep in step."""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import packets
from ..durable_calls import COMPLETED, FAILED, PENDING, RESULT_KINDS, Call, mismatch
from ..errors import NonDeterministicReplayError, ValidationError
from ..store.interface import StoreReader
from ..store.models import WP_WAITING, RunStep, Waitpoint
from .events import RunAdopted, RunReplayed
from .runs import live
from .unit import Tx
from .waitpoints import create_token, waitpoint_result


async def recorded(tx: Tx, run_id: str, call: Call | None) -> RunStep | None:
    """The record at `call`'s seq (None: none yet, or no call), checked to be the same call."""
    if call is None:
        return None
    found = await tx.steps.get(run_id, call.seq)
    if found is not None and (found.kind, found.name) != (call.kind, call.name):
        raise NonDeterministicReplayError(mismatch(call.seq, (found.kind, found.name),
                                                   (call.kind, call.name)))
    return found


async def bind(tx: Tx, run_id: str, attempt: int, call: Call | None, *,
               waitpoint_id: str | None = None, child_run_id: str | None = None,
               batch_id: str | None = None, result: str | None = None,
               status: str = PENDING) -> None:
    """Record `call` bound to what the caller made in this transaction."""
    if call is None:
        return
    await tx.steps.insert(RunStep(
        run_id=run_id, seq=call.seq, kind=call.kind, name=call.name, attempt=attempt,
        created_at=tx.now, status=status, result=result, waitpoint_id=waitpoint_id,
        child_run_id=child_run_id, batch_id=batch_id,
        completed_at=tx.now if status == COMPLETED else None))


async def token(tx: Tx, run_id: str | None, call: Call | None, *, timeout: Any = None,
                idempotency_key: str | None = None, idempotency_key_ttl: str | None = None,
                tags: list[str] | None = None,
                project: str | None = None) -> tuple[Waitpoint, bool]:
    """`wait.create_token` (waitpoints.create_token), of `project`; inside a run, made by
    `run_id`. As a durable call (`call`): the token its record made (True), or a new one,
    recorded."""
    options: dict[str, Any] = {"timeout": timeout, "idempotency_key": idempotency_key,
                               "idempotency_key_ttl": idempotency_key_ttl, "tags": tags,
                               "project": project}
    if call is None or run_id is None:
        return await create_token(tx, created_by_run_id=run_id, **options)
    found = await recorded(tx, run_id, call)
    wp = await tx.waitpoints.get(found.waitpoint_id) if found and found.waitpoint_id else None
    if wp is not None:
        return wp, True
    wp, cached = await create_token(tx, created_by_run_id=run_id, **options)
    await bind(tx, run_id, call.attempt, call, waitpoint_id=wp.id, status=COMPLETED)
    return wp, cached


async def save(tx: Tx, run_id: str, attempt: int, call: Call, result: str | None,
               result_type: str, status: str) -> RunStep:
    """A step's or checkpoint's outcome from the current attempt. A completed record is kept
    as it is (a request sent twice); a failed one is replaced by the next try's outcome."""
    if call.kind not in RESULT_KINDS:
        raise ValidationError(f"only {' and '.join(RESULT_KINDS)} records carry a result")
    if status not in (COMPLETED, FAILED):
        raise ValidationError("status must be completed or failed")
    await live(tx, run_id, attempt)
    found = await recorded(tx, run_id, call)
    if found is not None and found.status == COMPLETED:
        return found
    step = RunStep(run_id=run_id, seq=call.seq, kind=call.kind, name=call.name, attempt=attempt,
                   created_at=found.created_at if found else tx.now, status=status,
                   result=result, result_type=result_type, completed_at=tx.now)
    if found is None:
        await tx.steps.insert(step)
    else:
        await tx.steps.update(run_id, call.seq, status=status, result=result,
                              result_type=result_type, attempt=attempt, completed_at=tx.now)
    return step


async def for_replay(read: StoreReader, run_id: str) -> list[RunStep]:
    """The run's records as a replaying attempt walks them: a wait record carries its
    waitpoint's outcome once the waitpoint is done (`result` as the WaitResult JSON)."""
    steps = await read.steps.for_run(run_id)
    out = []
    for step in steps:
        if step.status == PENDING and step.waitpoint_id and step.kind != "token.create":
            wp = await read.waitpoints.get(step.waitpoint_id)
            if wp is not None and wp.status != WP_WAITING:
                step = dataclasses.replace(step, status=COMPLETED, result_type=packets.JSON,
                                           result=packets.encode(waitpoint_result(wp))[0],
                                           completed_at=wp.completed_at)
        out.append(step)
    return out


async def replay_started(tx: Tx, run_id: str, attempt: int, records: int) -> None:
    """Say in the run's history that `attempt` replays `records` records (`runs show`)."""
    run = await tx.runs.get(run_id)
    if run is not None:
        await tx.record(RunReplayed(run_id=run_id, attempt=attempt, records=records))


async def adopted(tx: Tx, run_id: str, worker_id: str) -> None:
    """Say in the run's history that a restarted daemon adopted its live process."""
    if await tx.runs.get(run_id) is not None:
        await tx.record(RunAdopted(run_id=run_id, worker_id=worker_id))
