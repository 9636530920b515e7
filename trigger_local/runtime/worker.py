"""The `work` loop of a task process: ask the daemon for work, run it, report it.

The `next` call is a bounded long-poll (the daemon answers as soon as there is something for
the process), so an idle process costs nothing and a warm one starts a run without sleeping;
one keep-alive connection is reused for the whole loop.

Two kinds of process (docs/worker-protocol.md, "Many runs per process"): one that runs one
attempt at a time (sync and isolated tasks: `assignment` answers, each run inline), and a
shared one (async tasks): its answers carry `messages` — runs to start, each as its own
asyncio task; runs whose wait is over (`resume`); runs the daemon ended (`abort`) or let go
of while they waited (`evict`) — and the poll goes on while its runs execute or wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .. import protocol
from ..errors import AttemptGone, ChannelClosed, DaemonUnreachableError, TriggerLocalError
from ..sdk.context import Resumed
from ..sdk.worker_client import WorkerClient
from .channel import Channel
from .completions import Completions
from .execute import execute
from .lifecycle import cancel_run

#: how long a canceled run's on_cancel hooks may take before its coroutine is dropped
CANCEL_HOOKS_S = 5.0

RETIRED = "retired"
IDLE = "idle"
RAN = "ran"
RETIRE_BACKOFF_S = 1.0  # told to retire while runs of ours still wait (the daemon stops): later
CHANNEL_RETRY_S = 5.0  # a channel that would not open is tried again after this


@dataclass
class WorkerEnv:
    """What the executor hands a task process (docs/worker-protocol.md, "Starting a process")."""

    daemon_url: str
    worker_id: str
    worker_token: str
    project_dir: str
    task_dirs: list[str]
    version_id: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerEnv:
        env = os.environ if environ is None else environ
        return cls(daemon_url=env.get("TRIGGER_LOCAL_DAEMON_URL", "http://127.0.0.1:8030"),
                   worker_id=env.get("TRIGGER_LOCAL_WORKER_ID", ""),
                   worker_token=env.get("TRIGGER_LOCAL_WORKER_TOKEN", ""),
                   project_dir=env.get("TRIGGER_LOCAL_PROJECT_DIR") or os.getcwd(),
                   task_dirs=_task_dirs(env.get("TRIGGER_LOCAL_TASK_DIRS")),
                   version_id=env.get("TRIGGER_LOCAL_VERSION_ID"))


def _task_dirs(raw: str | None) -> list[str]:
    if not raw:
        return ["trigger"]
    value = json.loads(raw)
    return [value] if isinstance(value, str) else [str(v) for v in value]


class Worker:
    """Steps with `tick()` (one `next` and, if assigned, one attempt); `run()` loops until the
    daemon retires the process. `run()` returns the process exit code."""

    def __init__(self, client: WorkerClient, worker_id: str, worker_token: str, *,
                 wait_s: float = 20) -> None:
        self.client, self.worker_id, self.worker_token = client, worker_id, worker_token
        self.wait_s = wait_s
        self.runs_done = 0
        self._next: dict[str, Any] | None = None  # an answer to `next` that came with `complete`
        #: a shared process's runs in flight (executing or waiting), and their wake-ups
        self.shared: dict[str, asyncio.Task[None]] = {}
        self._resumed: dict[str, Resumed] = {}
        self.fatal: BaseException | None = None  # a shared run met a daemon gone for good
        self.acked = 0  # the number of the last message taken (each poll acknowledges it)
        self._reports: set[asyncio.Task[Any]] = set()
        #: a shared process's channel (runtime/channel.py); None: it polls over HTTP
        self.channel: Channel | None = None
        self.use_channel = os.environ.get("TRIGGER_LOCAL_WORKER_CHANNEL", "on") != "off"
        self._channel_tried = -CHANNEL_RETRY_S
        self.completions = Completions(client, worker_id, worker_token, lambda: self.channel)

    async def tick(self) -> str:
        if self.fatal is not None:
            raise self.fatal
        raw, self._next = self._next, None
        answer = protocol.PollAnswer.parse(raw if raw is not None else await self._poll())
        messages = answer.messages
        if messages and self.channel is None:
            # a shared process: its polls and its runs' waits go over the channel, opened before
            # the runs start (else the first runs' waits each make an HTTP request: 100 runs
            # given at once waited seconds for them)
            await self._open_channel()
        started = False
        for message in messages:
            if message.seq > self.acked:  # one sent again (its answer was lost): done already
                self.acked = message.seq
                self._on_message(message)
                started = started or message.type == protocol.ASSIGN
        if started:  # the runs just given take their first step (a no-op: all of it) before
            await asyncio.sleep(0)  # the next poll is written (issue #13's trigger→start)
        if answer.retire:
            if not self.shared:
                return RETIRED
            await asyncio.sleep(RETIRE_BACKOFF_S)  # our waiting runs keep the process alive
            return IDLE
        assignment = answer.assignment
        if not assignment:
            return RAN if messages else IDLE
        body = await execute(assignment, self.client)
        if body is not None:
            await self._complete(assignment, body)
        self.runs_done += 1
        return RAN

    # -- a shared process ------------------------------------------------------------------
    async def _poll(self) -> dict[str, Any]:
        if self.channel is not None:
            try:
                return await self.channel.poll(self.acked)
            except ChannelClosed:  # the daemon stopped or died: over HTTP, until it is back
                channel, self.channel = self.channel, None
                self.client.channel = None
                await channel.close()
        answer: dict[str, Any] = await self.client.next_assignment(
            self.worker_id, self.worker_token, self.wait_s, self.acked)
        return answer

    async def _open_channel(self) -> None:
        now = asyncio.get_running_loop().time()
        if not self.use_channel or now - self._channel_tried < CHANNEL_RETRY_S:
            return
        self._channel_tried = now
        self.channel = self.client.channel = await Channel.open(
            self.client.base_url, self.worker_id, self.worker_token)

    def _on_message(self, message: protocol.Message) -> None:
        kind, run_id = message.type, message.run_id
        if kind == protocol.ASSIGN and message.assignment is not None:
            assignment = message.assignment
            self._resumed[run_id] = Resumed()
            self.shared[run_id] = asyncio.create_task(self._run_shared(assignment),
                                                      name=f"run {run_id}")
        elif kind == protocol.RESUME and run_id in self._resumed:
            resumed = self._resumed[run_id]
            if message.result is not None and message.waitpoint_id:
                resumed.word = (message.waitpoint_id, message.result)  # no read of the wait
            resumed.set()
        elif kind == protocol.ABORT and run_id in self.shared:
            # the daemon ended the attempt (canceled, timed out): drop it, report nothing; a
            # cancel runs the run's on_cancel hooks first (docs/hooks.md)
            self._keep(self._abort(run_id, message.reason == "max_duration"))
        elif kind == protocol.EVICT and run_id in self.shared:
            # the daemon let go of this waiting run (executors/eviction.py): its next attempt
            # replays it elsewhere. Drop the coroutine; no hook runs, nothing is reported
            self.shared[run_id].cancel()
        elif kind == protocol.RECONCILE:
            self._reconcile(message.runs)

    def _keep(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(job)
        self._reports.add(task)  # a reference, or the task may be collected
        task.add_done_callback(self._reports.discard)

    async def _abort(self, run_id: str, at_once: bool) -> None:
        if not at_once:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cancel_run(run_id), CANCEL_HOOKS_S)
        run = self.shared.get(run_id)
        if run is not None:
            run.cancel()

    def _reconcile(self, runs: dict[str, int]) -> None:
        """A restarted daemon's view of our runs: each of ours reads its wait again (word that
        it may go on may have been lost); the ones we never got are reported lost."""
        for event in self._resumed.values():
            event.set()
        lost = {run_id: attempt for run_id, attempt in runs.items() if run_id not in self.shared}
        if lost:
            task = asyncio.create_task(self.client.request(
                "POST", f"/engine/v1/workers/{self.worker_id}/lost", token=self.worker_token,
                body=protocol.lost_body(lost)))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    async def _run_shared(self, assignment: dict[str, Any]) -> None:
        run_id = assignment["run_id"]
        try:
            body = await execute(assignment, self.client, resumed=self._resumed[run_id])
            if body is not None:
                await self.completions.send(assignment, body)  # {"gone"}: nothing left to do
            self.runs_done += 1
        except asyncio.CancelledError:
            pass
        except (DaemonUnreachableError, TriggerLocalError) as exc:
            self.fatal = exc  # the poll loop ends the process with the same exit code
        finally:
            # an evicted run may be given to this process again at once (its wait completed):
            # its new attempt's entries are not this task's to remove
            if self.shared.get(run_id) is asyncio.current_task():
                self.shared.pop(run_id, None)
                self._resumed.pop(run_id, None)

    async def _complete(self, assignment: dict[str, Any], body: dict[str, Any]) -> None:
        route = f"attempts/{assignment['attempt']}/complete"
        # ask for the next run in the same request (the daemon long-polls it like `next`)
        body = {**body, "next": {"workerId": self.worker_id, "workerToken": self.worker_token,
                                 "waitS": self.wait_s}}
        try:
            answer = await self.client.run_call("POST", assignment["run_id"], route,
                                                assignment["run_token"], body,
                                                read_timeout_s=self.wait_s)
            if isinstance(answer, dict) and isinstance(answer.get("next"), dict):
                self._next = answer["next"]
        except AttemptGone:
            pass  # the daemon moved on (canceled, timed out): nothing left to report

    async def run(self) -> int:
        try:
            while await self.tick() != RETIRED:
                pass
            return 0
        except DaemonUnreachableError as exc:
            print(f"trigger-local worker {self.worker_id}: {exc}; exiting", file=sys.stderr)
            return 3
        except (TriggerLocalError, AttemptGone) as exc:
            print(f"trigger-local worker {self.worker_id}: the daemon refused this worker: {exc}",
                  file=sys.stderr)
            return 2
        finally:
            for task in list(self.shared.values()):
                task.cancel()
            if self.channel is not None:
                await self.channel.close()
            await self.client.aclose()
