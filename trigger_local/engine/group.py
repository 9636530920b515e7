"""Group commit: the units of work that arrive together share one transaction.

On this 2-CPU machine a transaction's fixed cost (BEGIN, the commit's WAL write of every page
it touched, the lock, the loop turn after it) is a good part of a completion's. When several
task processes report at once, `GroupCommit.run` queues each caller's part; one flush takes
every part waiting at that moment and runs them one after another in a single transaction,
each inside a savepoint of its own, so a part that raises (a late completion's
ConflictError) undoes only its own writes and events and fails only its own caller. Every
caller is answered after the commit: what it was told is durable before it is told. If the
commit itself fails (a full disk), every caller of the batch gets that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from .unit import Tx

P = ParamSpec("P")
T = TypeVar("T")
Part = Callable[..., Awaitable[Any]]


@dataclass
class _Job:
    part: Part
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = field(default=None)


class GroupCommit:
    """Runs parts in shared units of work opened by `unit` (the engine front's `_unit`)."""

    def __init__(self, unit: Callable[[], AbstractAsyncContextManager[Tx]]) -> None:
        self._unit = unit
        self._waiting: list[_Job] = []
        self._flushing: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self.batches = 0  # transactions committed, for tests and the profile

    async def run(self, part: Callable[Concatenate[Tx, P], Awaitable[T]], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """`part(tx, *args, **kwargs)` in a transaction shared with the parts queued meanwhile;
        returns (or raises) what the part did, once the transaction has committed."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Job(part, args, kwargs, done))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return cast(T, await done)

    async def _flush(self) -> None:
        try:
            # one more turn of the loop: requests that arrived with this one reach `run` first
            await asyncio.sleep(0)
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._commit(batch)
        except BaseException as exc:  # cancelled (the daemon stops): nobody waits forever
            for job in self._waiting:
                _answer(job.done, None, exc)
            self._waiting = []
            raise
        finally:
            self._flushing = None

    async def _commit(self, batch: list[_Job]) -> None:
        try:
            async with self._unit() as tx:
                for job in batch:
                    await _run_part(tx, job)
                self.batches += 1
        except BaseException as exc:  # the commit failed: nobody's part is done
            for job in batch:
                _answer(job.done, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for job in batch:
            _answer(job.done, job.result, job.error)


async def _run_part(tx: Tx, job: _Job) -> None:
    published, noted = len(tx.published), len(tx.due_notes)
    try:
        async with tx.savepoint():
            job.result = await job.part(tx, *job.args, **job.kwargs)
    except Exception as exc:
        del tx.published[published:]  # its events never happened, its timers were never set
        del tx.due_notes[noted:]
        job.error = exc


def _answer(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.done():  # the caller went away (its request was cancelled); the work stands
        return
    if error is None:
        done.set_result(result)
    elif isinstance(error, asyncio.CancelledError):
        done.cancel()
    else:
        done.set_exception(error)
