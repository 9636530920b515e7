"""Shared task processes: many runs of async tasks in one process (docs/worker-protocol.md,
"Many runs per process").

A run of a task whose manifest says `shared` (async, not `isolated`) goes to a process of its
version that executes fewer than `runs_per_process` runs; a waiting run is a suspended
coroutine in that process and does not count, so a few processes hold thousands of waiting
runs, and `max_processes` caps processes, not waiting runs. The daemon talks to such a process
through its one `next` long-poll, whose answers carry messages (built by trigger_local/protocol.py,
which holds every message of the worker protocol):

- `{"type": "assign", "assignment": …}`: start this run (the Assignment of an exclusive one);
- `{"type": "resume", "runId"}`: the run's wait is over, or the run ended while it waited: it
  goes on with the result the message carries, or reads its wait once (`GET …/waits/{id}`)
  and goes on, or learns it is gone. A run a timer resumed in place (engine/resuming.py) is
  told on its `RunResumed` from WAITING, after that commit, with the result the event carries;
- `{"type": "abort", "runId"}`: the engine ended the attempt (a cancel, a max duration): the
  runtime cancels that coroutine only. Its neighbours go on;
- `{"type": "reconcile", "runs": {run id: attempt}}`: sent once to a process a restarted daemon
  adopted: the runs the store says it holds. Each waiting one reads its wait again (word that
  it may go on may have died with the last daemon); the ones it never got (handed over just
  before the last daemon died) it reports, `POST /engine/v1/workers/{id}/lost`, and they are
  interrupted and queued again.

A shared process is never checkpointed (CRIU freezes a whole process). When it dies, every run
it held is failed as crashed (its neighbours' too) and retried per their policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from .. import protocol
from ..config import DaemonSettings
from ..store.models import Run
from .workers import BUSY, HELD, IDLE, KILLED, WorkerHandle

#: added to the crash reason of each run a shared process held when it died
SHARED_NOTE = ("\n(This task process ran several runs of async tasks at once; every run it held "
               "ended with it. `isolated=True` on a task gives each run a process of its own.)")
Answer = dict[str, Any] | list[dict[str, Any]] | None | Literal["retire"]
#: the engine's `wait_result(run_id, waitpoint_id)`: a held run's WaitResult once it resumed
WaitResultOf = Callable[[str, str], Awaitable[dict[str, Any] | None]]
#: a wait's result bigger than this (its output, in characters) is read by the run itself: a
#: message stays with the daemon until acknowledged, and is sent again with every poll till then
MAX_RESULT_CHARS = 16 * 1024


class SharedRuns:
    """The bookkeeping of shared processes: which holds which run, their free room, and their
    messages. The executor owns the processes; this decides nothing about spawning."""

    def __init__(self, settings: DaemonSettings, wake: Callable[[], None],
                 wait_result: WaitResultOf | None = None) -> None:
        self.settings = settings
        self._wake = wake
        self._wait_result = wait_result
        #: the waitpoint whose completion unblocked each held run (its RunUnblocked), so that
        #: its resume message carries the wait's result and the run need not read it
        self._unblocked: dict[str, str] = {}
        #: resume messages handed to processes, and the poll answers that carried them: the
        #: resumes of one commit reach each process together (`describe`, the status route)
        self.resumes = {"messages": 0, "answers": 0}
        #: by version: a shared process of it is being launched (set once it is in the pool)
        self._launches: dict[str, asyncio.Event] = {}

    # -- room --------------------------------------------------------------------------------
    def room(self, worker: WorkerHandle, opened: int = 0) -> int:
        """Runs `worker` may start now: it executes fewer than runs_per_process, and has not
        taken its share of runs (warm_runs_per_process: then it retires once empty).
        `opened`: runs it executes whose slot a commit has freed already (engine/handover.py)."""
        if not worker.shared or worker.state == KILLED or worker.exited.is_set() \
                or worker.runs_done + len(worker.runs) >= self.settings.warm_runs_per_process:
            return 0
        return max(0, self.settings.runs_per_process - len(worker.executing) + opened)

    def pick(self, workers: Iterable[WorkerHandle], version_id: str) -> WorkerHandle | None:
        """The shared process of `version_id` with room that executes the most runs: runs pack
        into few processes, and an emptied one can retire."""
        best: WorkerHandle | None = None
        for worker in workers:
            if worker.version_id == version_id and self.room(worker) > 0 \
                    and (best is None or len(worker.executing) > len(best.executing)):
                best = worker
        return best

    @contextmanager
    def launching(self, version_id: str | None) -> Iterator[None]:
        """A shared process of `version_id` (None: an exclusive one) is being launched, until it
        is in the pool or its launch failed: a run of that version that finds no room waits for
        it (`place`)."""
        if version_id is None or version_id in self._launches:
            yield  # an exclusive one, or one launched beside another: the first one says
            return
        done = self._launches[version_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._launches[version_id]
            done.set()

    async def place(self, workers: dict[str, WorkerHandle], version_id: str, run: Run,
                    fits: Callable[[WorkerHandle, Run], bool]) -> WorkerHandle | None:
        """`pick` among the pool's `workers` (read again after a wait) that `fits` `run`, once
        the launch of a shared process of `version_id` under way is done: the runs a round starts
        together on an idle pool (a batch) go to the one process it launches, not one process
        each (docs/configuration.md, `spawn_concurrency`)."""
        worker = self.pick((w for w in workers.values() if fits(w, run)), version_id)
        while worker is None and (launch := self._launches.get(version_id)) is not None:
            await launch.wait()
            worker = self.pick((w for w in workers.values() if fits(w, run)), version_id)
        return worker

    def held_runs(self, workers: Iterable[WorkerHandle]) -> int:
        return sum(len(w.runs) - len(w.executing) for w in workers if w.shared)

    def describe(self, workers: Iterable[WorkerHandle]) -> dict[str, Any]:
        return {"held_runs": self.held_runs(workers), "resumes": dict(self.resumes)}

    # -- runs coming and going -----------------------------------------------------------------
    def assign(self, worker: WorkerHandle, run_id: str, attempt: int,
               assignment: dict[str, Any]) -> None:
        worker.runs[run_id] = attempt
        worker.executing.add(run_id)
        self._state(worker)
        self.send(worker, protocol.assign(assignment))

    async def resumed(self, worker: WorkerHandle, run_id: str) -> None:
        """The engine gave the waiting run its slot back: tell the coroutine to go on, with its
        wait's result when it is small (one read here instead of a round trip of the run's)."""
        waitpoint_id = self._unblocked.pop(run_id, None)
        result = None
        if waitpoint_id is not None and self._wait_result is not None:
            result = await self._wait_result(run_id, waitpoint_id)
        worker.executing.add(run_id)
        self._state(worker)
        self.send(worker, _resume(run_id, waitpoint_id, result))

    def moved(self, worker: WorkerHandle, run_id: str, status: str, attempt_ended: bool,
              unblocked_by: str | None = None, *, in_place: bool = False,
              result: dict[str, Any] | None = None) -> None:
        """A RunStatusChanged of a run `worker` holds (`unblocked_by`: the waitpoint the change
        names; a run QUEUED again was unblocked by it: engine/waitpoints.py `complete`).
        `in_place`: the change came from WAITING; to EXECUTING that is a run its timer resumed
        in this process (engine/resuming.py), committed already: it is told at once, with
        `result`, its wait's — unless `result` is None: the process resumed it itself (its own
        timer fired, engine/waits.py `by_process`) and knows."""
        if unblocked_by and status == "QUEUED":
            self._unblocked[run_id] = unblocked_by
        if attempt_ended:
            self._unblocked.pop(run_id, None)
            waited = run_id not in worker.executing
            worker.runs.pop(run_id, None)
            worker.executing.discard(run_id)
            worker.runs_done += 1
            if waited:  # its coroutine waits for word: it reads that the run ended, and drops it
                self.send(worker, protocol.resume(run_id))
            self._wake()
        elif status == "WAITING":
            worker.executing.discard(run_id)
            self._wake()  # a slot of the process is free
        elif status == "EXECUTING":
            if in_place and result is not None and run_id not in worker.executing:
                self.send(worker, _resume(run_id, unblocked_by, result))
            worker.executing.add(run_id)
        self._state(worker)

    def abort(self, worker: WorkerHandle, run_id: str, reason: str) -> None:
        self.send(worker, protocol.abort(run_id, reason))

    def send(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        worker.seq += 1
        worker.messages.append(protocol.numbered(message, worker.seq))
        worker.ready.set()

    def _state(self, worker: WorkerHandle) -> None:
        if worker.state == KILLED:
            return
        worker.state = BUSY if worker.executing else (HELD if worker.runs else IDLE)

    # -- the process's poll ----------------------------------------------------------------------
    async def next(self, worker: WorkerHandle, wait_s: float,
                   retire: Callable[[WorkerHandle], bool], ack: int | None) -> Answer:
        """Every message `worker` has not acknowledged, as soon as there is one (or None after
        `wait_s`). A message stays until a later poll acknowledges it (`ack`: the number of the
        last one the process got), so an answer lost with its connection is sent again.
        "retire" only for a process that holds no run."""
        if ack is not None:
            worker.messages = [m for m in worker.messages if m["seq"] > ack]
        if not worker.messages and not worker.runs and retire(worker):
            return "retire"
        if not worker.messages:
            worker.ready.clear()
            try:
                async with asyncio.timeout(wait_s):  # no task in between, as wait_for has:
                    await worker.ready.wait()  # the answer leaves one turn after the message
            except TimeoutError:
                worker.idle_polls += 0 if worker.runs else 1
                return None
        worker.idle_polls = 0
        messages = worker.messages
        if ack is None:  # a poll that acknowledges nothing takes its messages for good
            worker.messages = []
        resumes = sum(m["type"] == protocol.RESUME for m in messages)  # (one sent again too)
        if resumes:
            self.resumes["messages"] += resumes
            self.resumes["answers"] += 1
        return messages if ack is None else list(messages)


def _resume(run_id: str, waitpoint_id: str | None,
            result: dict[str, Any] | None) -> dict[str, Any]:
    """The resume message, with the wait's result when it is small enough to carry."""
    if result is None or len(result.get("output") or "") > MAX_RESULT_CHARS:
        return protocol.resume(run_id)
    return protocol.resume(run_id, waitpoint_id, result)


def claim(by_run: dict[str, str], worker: WorkerHandle, run_id: str, attempt: int) -> None:
    """A run about to start on shared `worker` takes its slot and is the process's at once, so
    a cancel committed before its assignment is sent finds it (and takes it off)."""
    worker.executing.add(run_id)
    worker.runs[run_id] = attempt
    by_run[run_id] = worker.id


def unclaim(by_run: dict[str, str], worker: WorkerHandle, run_id: str) -> None:
    """Its start failed: nothing started on `worker`."""
    worker.executing.discard(run_id)
    worker.runs.pop(run_id, None)
    if by_run.get(run_id) == worker.id:
        by_run.pop(run_id, None)


def claimed(by_run: dict[str, str], worker: WorkerHandle, run_id: str) -> bool:
    """Whether the started run is still `worker`'s: not ended (canceled) nor moved since."""
    return run_id in worker.runs and by_run.get(run_id) == worker.id
