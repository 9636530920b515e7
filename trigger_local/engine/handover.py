"""A finished run's slot goes to the next run in the same transaction (issue #13).

Without this, a completion commits, its events wake the dispatcher, and the dispatcher dequeues
and starts the next run in transactions of its own: two commits and a dispatcher round per
slot. `hand_over` runs in every group commit (`GroupCommit.then`, engine/unit.py) after the
batch's parts: when they freed slots (an attempt ended, or a run went from executing to
waiting), it asks the executor how many runs it can place on the processes that freed them
(`Places.room`), takes that many with the dispatcher's own `dequeue` (reserved, in this
transaction: the same limits, pause, priority, fairness and rate limits), and starts each on
the process the executor picks (`Places.place`), as a part of the same batch: the starts are
committed with the completions, and their callers answered after that commit. The executor
hands each started run to its process then (`Placement.follow`). It takes the runs in the
dispatcher's order and stops before the first it cannot start here (a held run resuming in
its process, a run of a sync task): that run and those behind it are left to the dispatcher's
next round (the freed slots woke it), so no run overtakes one the dispatcher would start
first.

Nothing is stranded by a failure: a start that fails (its savepoint undone) or a commit that
fails answers the placement's future with the error, and the executor frees the slot it took;
the reservation was already let go (`attempts.start`), or is let go here for a run no process
took. The dispatcher still runs its own rounds for what this does not cover (new processes,
held runs resuming, timers). A store other daemons share (PostgreSQL) does not hand over: its
dequeue must be exclusive.

When its dequeue took fewer runs than the freed processes had room for, every one of them
placed and started, it saw every run that may start now: a dispatcher round that the freed room
woke would dequeue in a transaction of its own and find nothing (at concurrency 4, one round per
group commit; issue #13). The batch's events then come between two `RoomTaken` notices, and the
dispatcher takes the room they give as seen (dispatch/dispatcher.py `wake`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import TransactionLostError, TransactionRetryError, UndoPart
from ..store.models import EXECUTING, WAITING, Run
from ..supervise import report
from . import attempts
from .dequeue import dequeue
from .events import Event, RunStatusChanged
from .unit import Join, Tx


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the executor puts a run: the process, and what it does once the start is
    committed (`follow(done)`: `done` is answered with the start's result, or its error)."""

    worker_id: str
    pid: int | None
    executor: str
    follow: Callable[[asyncio.Future[Any]], None]


class Places(Protocol):
    """The executor's side of a hand-over; both calls run inside the transaction, without
    awaiting anything."""

    def room(self, freed: Sequence[RunStatusChanged],
             resumed: Sequence[RunStatusChanged]) -> int:
        """How many runs the processes could take once the `freed` changes are applied, and the
        `resumed` ones (waiting runs a timer resumed in their process) took their slots back."""

    def fits(self, runs: Sequence[Run]) -> int:
        """How many of `runs`, from the first, processes here could take now, each placed in
        turn (`place` would place them): a run counts the slots the runs before it take."""

    def place(self, run: Run) -> Placement | None:
        """A process for `run` (its slot taken now), or None: the dispatcher will see to it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomTaken(Event):
    """A notice around a batch's events (`opens`: the first, else the last): the hand-over
    saw every run that may start now (the module docstring). Published, not stored."""

    opens: bool


def freed(tx: Tx) -> list[RunStatusChanged]:
    """The changes of this transaction so far that freed a process's slot."""
    return [e for e in tx.published if isinstance(e, RunStatusChanged)
            and (e.attempt_ended or (e.status == WAITING and e.previous == EXECUTING))]


def resumed(tx: Tx) -> list[RunStatusChanged]:
    """The changes of this transaction so far that gave a waiting run a slot of its process
    again (a timer resumed it in place, engine/resuming.py): a slot the batch took."""
    return [e for e in tx.published if isinstance(e, RunStatusChanged)
            and e.status == EXECUTING and e.previous == WAITING]


async def hand_over(places: Places, tx: Tx, join: Join) -> None:
    """The module docstring: start the runs that may take the slots this batch freed."""
    slots = freed(tx)
    if not slots:
        return
    limit = places.room(slots, resumed(tx))
    if limit <= 0:
        return
    runs, whole = await _take(tx, limit, places)
    for i, run in enumerate(runs):
        placement = places.place(run)
        if placement is None:  # `fits` counted it, but a process may have gone while an
            # earlier start awaited the store: the dispatcher's next round sees to the run
            tx.ctx.reserved.pop(run.id, None)
            whole = False
            continue
        try:
            started = await join(attempts.start, run, placement.worker_id, placement.pid,
                                 placement.executor)
        except BaseException as exc:
            _abandon(tx, runs[i:], placement, exc)
            raise
        placement.follow(started)
    if whole:
        tx.published.insert(0, RoomTaken(opens=True))
        tx.published.append(RoomTaken(opens=False))


def _abandon(tx: Tx, runs: Sequence[Run], placement: Placement, exc: BaseException) -> None:
    """The transaction is lost under a start (SQLITE_FULL rolls it back, a retry runs it again):
    the runs taken but not started let go of their reservations, and the placed slot is freed
    (its placement's future answered with the error), or they would be held for good."""
    for run in runs:
        tx.ctx.reserved.pop(run.id, None)
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(exc if isinstance(exc, Exception)
                         else RuntimeError("the hand-over's transaction was abandoned"))
    placement.follow(failed)


async def _take(tx: Tx, limit: int, places: Places) -> tuple[list[Run], bool]:
    """`dequeue`'s runs, reserved, up to the first one the executor cannot start here (a run of
    a sync task, ...): that one and those behind it stay where they are — their dequeue is
    undone, so a rate limit counts only the runs taken — for the dispatcher's next round, so no
    run overtakes another. A dequeue that fails takes nothing (its reservations go). With them,
    whether they are every run that may start now: fewer than `limit`, all taken, and no held
    run stopped the dequeue (`Tx.held_left`)."""
    before = set(tx.ctx.reserved)
    try:
        async with tx.savepoint():
            tx.held_left = False
            runs = await dequeue(tx, limit, reserve=True, fresh=True)
            fit = places.fits(runs)
            if fit < len(runs):
                raise UndoPart(fit)
            return runs, len(runs) < limit and not tx.held_left
    except UndoPart as fewer:
        _let_go(tx, before)
        return (await _take(tx, fewer.n, places))[0] if fewer.n else [], False
    except (TransactionLostError, TransactionRetryError):
        _let_go(tx, before)
        raise  # the whole batch is undone or run again
    except Exception as exc:  # noqa: BLE001 - the batch's completions stand; the dispatcher
        _let_go(tx, before)  # starts these runs in its own round
        report("error", "hand-over failed", error=repr(exc), exc_info=exc)
        return [], False


def _let_go(tx: Tx, before: set[str]) -> None:
    for run_id in set(tx.ctx.reserved) - before:
        tx.ctx.reserved.pop(run_id, None)
