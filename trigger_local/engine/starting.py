"""Starting a run in the transaction that creates it (issue #13's trigger→start).

On an idle daemon a trigger used to cost three transactions before its run executed: the
trigger's (the run, QUEUED), the dispatcher's round woken by it (the dequeue), and the start's
(QUEUED → EXECUTING, the attempt). When the new run can start at once — the executor has a warm
process of its version with room (`ctx.placer`, engine/placing.py) and the dispatcher's own
rules would take this run now — the trigger's unit of work starts it too, and the assignment
leaves right after that one commit:

- the rules are the dispatcher's, not a copy: `dequeue` runs inside the trigger's transaction
  for one run (paused queues, offline projects, queue and concurrency-key limits, the global
  concurrency, rate limits, priority). If it takes another run — one queued first, or a held
  run whose wait completed — nothing is started here: a savepoint undoes what the dequeue
  wrote, and the dispatcher, woken by the run's creation as always, starts them in order;
- the start is `attempts.start`, the dispatcher's, on the reservation the dequeue made;
- nothing is acknowledged before it is durable: the trigger's answer and the assignment both
  wait for the commit (the executor sends the assignment when the committed move to EXECUTING
  is published, engine/placing.py); a commit that fails gives the place back
  (`Placement.release`);
- a process that exits between the commit and the hand-off knows the run already (the place
  recorded it), so its exit's worker-lost path retries or requeues it, as for any run it held.

The run's `RunCreated` is published with the status the run has after the commit (EXECUTING),
which the dispatcher does not wake for: there is nothing left for its round to do. Nor when
the dequeue took no run at all (its queue paused, or at its concurrency limit, the global
concurrency reached) on a store of its own with no rate limit and no run reserved by a
round starting it (that start may fail and let it go, silently): the event says so
(`none_runnable`), and a round would find none either — what makes the run runnable wakes the
dispatcher as ever (a queue resumed, room). A rate gate can leave a runnable run behind the one
it refused (the dequeue takes one run at most here), and the window it noted was undone with
the dequeue: then the round is woken.

Nor is a run started here while a timer is due that the dispatcher has not fired (or is
firing, `DueTimes.due_by`): a DELAYED run whose time came keeps its queue time and goes first;
the round the run's creation wakes fires the timers, then dequeues.

When nothing was QUEUED before the trigger (one index seek, on a store of its own with no
rate limit), its new run is the dequeue's only candidate: the dequeue reads no queue for it and
writes nothing, so no savepoint is opened; started, the run is inserted EXECUTING with its
attempt, not inserted QUEUED then updated (`_insert_alone`).

On a store daemons share (PostgreSQL), the dequeue must count what every daemon runs: it runs
in the dequeues' turn, one at a time across daemons, and sees every dequeue committed before.
A trigger that may start its run at once (`takes_turn`: a lone request whose project's warm
process has room, `Placer.may_place`) opens its unit with `starts`: serializable as every
trigger (its idempotency and request keys, a parent's waitpoint hold as always), and in the
dequeues' turn, taken before its first statement, so its snapshot sees every dequeue committed
before (store/postgres/store.py). Any other trigger keeps today's path and never starts its run
here: without the turn its dequeue could not count what other daemons run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any

from ..errors import StartDeferred
from ..store.models import EXECUTING, QUEUED, Attempt, Run
from . import attempts, triggering
from .dequeue import dequeue
from .events import RunCreated
from .placing import Placement
from .triggering import Prepared, TriggerResult
from .unit import EngineContext, Tx, retrying

#: the engine's unit of work, `unit(exclusive, starts)` (`Engine._unit`)
OpenUnit = Callable[[bool, bool], AbstractAsyncContextManager[Tx]]


@dataclass(frozen=True, slots=True)
class Placed:
    """A run started in its trigger's transaction, and the place it was started on."""

    placement: Placement
    run: Run
    attempt: Attempt


async def trigger_runs(unit: OpenUnit, ctx: EngineContext, prepared: Sequence[Prepared],
                       wait: bool, request_key: str | None) -> list[TriggerResult]:
    """`triggering.create_runs` in a unit of work of its own; a single new run that can start
    at once is started in it (its place is given back if the unit does not commit)."""
    placed: list[Placement] = []
    # on a store of its own every unit may start the run; on a shared one, one in the turn
    may_start = not ctx.shared_store or takes_turn(ctx, prepared)
    try:
        results: list[TriggerResult] = await retrying(
            partial(unit, False, ctx.shared_store and may_start), _create_and_start, prepared,
            wait, request_key, placed, may_start)
    except BaseException:
        _release(placed)
        raise
    return results


def takes_turn(ctx: EngineContext, prepared: Sequence[Prepared]) -> bool:
    """On a shared store: whether a trigger of `prepared` is worth the dequeues' turn — a lone
    request of a known task whose project's warm process has room now (a guess: the place is
    taken in the transaction, `start_at_once`)."""
    if ctx.placer is None or len(prepared) != 1 or prepared[0].task is None:
        return False
    req = prepared[0].req
    version = ctx.projects.current_of(req.project)
    return version is not None and ctx.placer.may_place(req.lock_to_version or version.id,
                                                        req.task_id)


async def _create_and_start(tx: Tx, prepared: Sequence[Prepared], wait: bool,
                            request_key: str | None, placed: list[Placement],
                            may_start: bool) -> list[TriggerResult]:
    _release(placed)  # a unit the store refused, run again
    # a timer due and not fired yet may make a run runnable that goes first: the round fires it
    may_start = may_start and not tx.ctx.due.due_by(tx.now)
    if may_start and await _nothing_queued(tx, prepared):
        return await triggering.create_runs(tx, prepared, wait=wait, request_key=request_key,
                                            starts=partial(_insert_alone, placed))
    results = await triggering.create_runs(tx, prepared, wait=wait, request_key=request_key)
    if not may_start or len(results) != 1 or results[0].cached:
        return results
    started = await start_at_once(tx, results[0].run)
    if started is None:
        return results
    placed.append(started.placement)
    return [replace(results[0], run=started.run)]


async def _nothing_queued(tx: Tx, prepared: Sequence[Prepared]) -> bool:
    """Whether the lone run `prepared` makes will be the only QUEUED run, the dequeue's sole
    candidate (`alone`): on a store of its own, with no rate limit, nothing QUEUED before it —
    one index seek, which also finds a reserved run or a held one (both QUEUED in the store)."""
    return tx.ctx.placer is not None and len(prepared) == 1 and prepared[0].task is not None \
        and not tx.ctx.shared_store and not await tx.rate_limits.all() \
        and not await tx.runs.queued_queues()


async def start_at_once(tx: Tx, run: Run) -> Placed | None:
    """Start `run`, just created in `tx`, on a warm place if the dispatcher would start it now
    (the module docstring); None leaves it QUEUED for the dispatcher."""
    if run.status != QUEUED or run.worker_id:
        return None
    placement = _placement(tx, run)
    if placement is None:
        return None
    try:
        started = await _take(tx, run, placement)
        if isinstance(started, tuple):
            _created(tx, started[0].id, status=EXECUTING, kind=started[0].snapshot_kind)
            placement.started(*started)
    except BaseException:
        placement.release()
        raise
    if not isinstance(started, tuple):
        placement.release()
        if started is _NONE_RUNNABLE:
            _created(tx, run.id, none_runnable=True)
        return None
    return Placed(placement, *started)


def _placement(tx: Tx, run: Run) -> Placement | None:
    """A warm place for `run` in its project's current version, if the placer has one now."""
    placer, version = tx.ctx.placer, tx.ctx.projects.current_of(run.project)
    if placer is None or version is None:
        return None
    # a run locked to a version (lockToVersion) starts in a process of that version only
    return placer.place(run, run.version_id or version.id)


#: `_take`'s answer when its dequeue found no run that may start now, no rate limit took
#: part (a rate gate takes one run at most with a limit of one, and notes when its window
#: opens, which the undone dequeue forgot) and no run was reserved (a round's start that fails
#: lets its reserved run go silently): a dispatcher round would find none either
_NONE_RUNNABLE = object()


async def _take(tx: Tx, run: Run, placement: Placement) -> tuple[Run, Attempt] | object | None:
    """Dequeue one run by the dispatcher's rules and, if it is `run`, start it on
    `placement`; otherwise undo the dequeue (its writes, events, due times, reservations) and
    say whether it found no run at all (`_NONE_RUNNABLE`) on a store of its own."""
    published, noted, checks = len(tx.published), len(tx.due_notes), len(tx.batch_checks)
    counted = tx.log_counts.mark()
    taken: list[Run] = []
    before = set(tx.ctx.reserved)
    try:
        async with tx.savepoint():
            taken = await dequeue(tx, 1, reserve=True)
            if [r.id for r in taken] != [run.id]:
                raise StartDeferred
            started = await attempts.start(tx, taken[0], placement.worker_id, placement.pid,
                                           placement.executor)
            if started is None:  # cannot be: it was created in this transaction
                raise StartDeferred
            return started
    except BaseException as exc:
        for other in set(tx.ctx.reserved) - before:  # the dequeue's reservations, however it ended
            tx.ctx.reserved.pop(other, None)
        if not isinstance(exc, StartDeferred):
            raise
        del tx.published[published:]
        del tx.due_notes[noted:]
        del tx.batch_checks[checks:]
        tx.log_counts.undo(counted)
        # runs reserved by others (a round starting them) counted as running: a start that
        # fails lets its run go without a word, and this one may be first in line then
        if not taken and not before and not tx.ctx.shared_store \
                and not await tx.rate_limits.all():
            return _NONE_RUNNABLE
        return None


async def _insert_alone(placed: list[Placement], tx: Tx, run: Run) -> None:
    """Write `run`, the trigger's new run and the only QUEUED one (`_nothing_queued`; its
    `RunCreated` recorded), started at once if the dequeue takes it: its sole candidate, so it
    reads no queue and writes nothing — no savepoint, nothing to undo. Started, the run is
    inserted EXECUTING with its attempt (its history as any start's: `run.executing` from
    QUEUED), not inserted QUEUED and then updated."""
    placement = _placement(tx, run)
    if placement is None:
        await tx.runs.insert(run)
        return
    try:
        if not await dequeue(tx, 1, reserve=True, only=run):
            await tx.runs.insert(run)
            _created(tx, run.id, none_runnable=True)
            placement.release()
            return
        attempt = await attempts.start_new(tx, run, placement.worker_id, placement.pid,
                                           placement.executor)
        await tx.runs.insert(run)
        await tx.attempts.insert(attempt)
        _created(tx, run.id, status=EXECUTING, kind=run.snapshot_kind)
        placement.started(run, attempt)
    except BaseException:
        tx.ctx.reserved.pop(run.id, None)
        placement.release()
        raise
    placed.append(placement)


@dataclass(frozen=True, slots=True, kw_only=True)
class _MadeAs(RunCreated):
    """A creation published with facts known once committed (`_created`) whose event row, which
    the unit writes as it ends (`Tx.write_events`), says what the run was made as: `made`."""

    made: Mapping[str, Any]

    def data(self) -> dict[str, Any]:
        return dict(self.made)


#: a creation's fields, read once (`dataclasses.fields` builds its tuple on every call)
_CREATED_FIELDS = tuple(f.name for f in fields(RunCreated))


def _created(tx: Tx, run_id: str, **facts: Any) -> None:
    """Publish the run's creation with what is known once committed: the status it has then
    (EXECUTING; its event row says QUEUED, as it was made: `_MadeAs`), or that its trigger's
    dequeue found no run that may start now. The dispatcher wakes for neither: it has no round
    to do."""
    for i, event in enumerate(tx.published):
        if isinstance(event, RunCreated) and event.run_id == run_id:
            made = event.made if isinstance(event, _MadeAs) else event.data()
            values = {name: getattr(event, name) for name in _CREATED_FIELDS}
            tx.published[i] = _MadeAs(**{**values, **facts}, made=made)


def _release(placed: list[Placement]) -> None:
    for one in placed:
        one.release()
    placed.clear()
