"""The run a task process is executing.

`Context` is the frozen `ctx` handed to a task. `RunState` is the runtime's mutable record of
the attempt (its token, the worker client, buffered logs and metadata); the SDK finds it with
`current_run()`, which is how every SDK call knows whether it is "inside a task run".
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from .. import packets, protocol
from ..durable_calls import COMPLETED
from ..errors import AttemptGone, ChannelClosed, NotFoundError
from . import log_bursts
from .replay import Replay, body, completed, span
from .stream_writer import StreamBuffers

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ..durable_calls import Call
    from ..log_spool import SpoolWriter
    from .worker_client import WorkerClient

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    tags: tuple[str, ...] = ()
    is_test: bool = False
    created_at: Any = None
    started_at: Any = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    max_duration: float | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str
    file: str = ""
    export_name: str = ""


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    number: int
    id: str | None = None
    started_at: Any = None


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    type: str = "DEVELOPMENT"


@dataclass(frozen=True, slots=True)
class Context:
    """What a task knows about its run (`ctx`). Immutable; built from the Assignment's ctx."""

    run: RunInfo
    task: TaskInfo
    attempt: AttemptInfo
    queue: QueueInfo
    machine: str | None = None
    version: str | None = None
    environment: EnvironmentInfo = EnvironmentInfo()

    async def checkpoint(self, name: str, data: Any = None) -> None:
        """Record named progress (trigger.do's `checkpoint`): `last_checkpoint` returns it in
        every later attempt of the run (docs/durability.md)."""
        state = _state_of(self, "ctx.checkpoint")
        call, record = state.replay.take("checkpoint", str(name))
        if completed(record):
            state.from_record(call)
            return
        await state.save_record(call, COMPLETED, data)

    def checkpoint_sync(self, name: str, data: Any = None) -> None:
        state = _state_of(self, "ctx.checkpoint_sync")
        state.block_on(self.checkpoint(name, data))

    @property
    def last_checkpoint(self) -> dict[str, Any] | None:
        """The newest recorded checkpoint, `{"name", "data"}`, or None (none yet)."""
        state = current_run()
        record = state.replay.checkpoint if state is not None \
            and state.run_id == self.run.id else None
        if record is None:
            return None
        return {"name": record.get("name"),
                "data": packets.decode(record.get("result"), record.get("resultType"))}

    @classmethod
    def from_assignment(cls, assignment: dict[str, Any]) -> Context:
        raw = assignment.get("ctx") or {}
        run = dict(raw.get("run") or {})
        run.setdefault("id", assignment.get("run_id", ""))
        run["tags"] = tuple(run.get("tags") or ())
        task = dict(raw.get("task") or {})
        task.setdefault("id", assignment.get("task_id", ""))
        attempt = dict(raw.get("attempt") or {})
        attempt.setdefault("number", assignment.get("attempt", 1))
        env = raw.get("environment") or {}
        return cls(run=RunInfo(**_known(RunInfo, run)), task=TaskInfo(**_known(TaskInfo, task)),
                   attempt=AttemptInfo(**_known(AttemptInfo, attempt)),
                   queue=QueueInfo(name=(raw.get("queue") or {}).get("name")
                                   or f"task/{task['id']}"),
                   machine=raw.get("machine"), version=raw.get("version"),
                   environment=EnvironmentInfo(type=env.get("type", "DEVELOPMENT")))


def _known(cls: type[DataclassInstance], values: dict[str, Any]) -> dict[str, Any]:
    # the daemon may add fields before this SDK knows them: ignore, never crash a run
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


class Resumed(asyncio.Event):
    """Set by the runtime when the daemon says a waiting run of a shared process may go on.
    `word` is (waitpoint id, WaitResult) when the daemon sent the wait's result with it
    (docs/worker-protocol.md, "Messages"): the run then needs no read of its wait."""

    def __init__(self) -> None:
        super().__init__()
        self.word: tuple[str, dict[str, Any]] | None = None


class RunState:
    """One attempt being executed by this process.

    Thread-safe where the SDK needs it: a sync task runs in a worker thread and logs, sets
    metadata and makes blocking calls from there. Network calls always run on `loop`, the
    runtime's event loop; `block_on` hands a coroutine to it from another thread.
    """

    def __init__(self, *, run_id: str, attempt: int, token: str, client: WorkerClient,
                 loop: asyncio.AbstractEventLoop, ctx: Context,
                 metadata: dict[str, Any] | None = None,
                 records: list[dict[str, Any]] | None = None,
                 spool: SpoolWriter | None = None,
                 resumed: asyncio.Event | None = None) -> None:
        self.run_id, self.attempt, self.token = run_id, attempt, token
        self.replay = Replay(records)  # this run's durable records (sdk/replay.py)
        self.client, self.loop, self.ctx = client, loop, ctx
        self.loop_thread = threading.get_ident()
        self.lock = threading.Lock()
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.metadata_dirty = False
        self.log_entries: list[dict[str, Any]] = []
        self.logs_sent = 0  # log entries of this attempt sent so far (`_send_logs`)
        # each line also written through to a local file: a process killed before the next
        # burst is sent loses none (log_spool.py)
        self.spool = spool
        if spool is not None:
            spool.begin(run_id, attempt)
        self.gone = False  # a background flush learned the attempt is no longer current
        #: in a shared process: set by the runtime when the daemon says this run may go on after
        #: a wait (the process's one poll carries it), so a waiting run holds no connection
        self.resumed = resumed
        self.stdout_partial = ""  # print() output of this run not yet ended by a newline
        self.logs = Flusher(self, 0.2, self._send_logs)
        self.meta = Flusher(self, 0.5, self._send_metadata)
        self.streams = StreamBuffers(self._send_stream, loop)
        self.locals: dict[str, Any] = {}  # the attempt's `locals` (sdk/hooks.py)
        #: the attempt's hook runner (runtime/lifecycle.py), for on_wait / on_resume
        self.lifecycle: Any = None
        #: the waits this run's own timer ended (sdk/local_timers.py), and the daemon's answer
        #: to the last one while it is awaited: the run sends nothing before it (`settled`)
        self.own_timers: set[str] = set()
        self.settling: asyncio.Future[None] | None = None

    async def settled(self) -> None:
        """Wait until the daemon resumed this run after its own timer fired (at once when it
        did not fire), so what the run sends is applied after its resume; AttemptGone if the
        run ended meanwhile."""
        settling = self.settling
        if settling is not None:
            await asyncio.shield(settling)

    async def call(self, method: str, route: str, body: Any = None, **kw: Any) -> Any:
        await self.settled()
        return await self.call_now(method, route, body, **kw)

    async def call_now(self, method: str, route: str, body: Any = None, **kw: Any) -> Any:
        """`call` without waiting for `settled` (a read of the wait that settles it)."""
        return await self.client.run_call(method, self.run_id, route, self.token, body, **kw)

    async def run_call(self, name: str, body: dict[str, Any]) -> Any:
        """Run call `name` (protocol.RUN_CALLS): on the process's channel when it has one
        (docs/worker-protocol.md, "The channel"), else its HTTP route — also when the channel
        closes under it (the daemon stopped or died), so no call is lost to a channel."""
        await self.settled()
        channel = self.client.channel
        if channel is not None:
            try:
                return await channel.call(name, self.run_id, self.attempt, self.token, body)
            except ChannelClosed:
                # the daemon may have committed it before the channel closed: a burst of logs
                # says so, and the daemon stores only the lines it does not hold yet
                if name == protocol.LOGS:
                    body = {**body, "again": True}
        method, route = protocol.http_route(name, self.attempt)
        return await self.call(method, route, body)

    async def save_record(self, call: Call, status: str, result: Any = None) -> None:
        """Report a step's or checkpoint's outcome: the daemon keeps it as the record at the
        call's seq (a result of 128 KiB or more in the packet store)."""
        data, data_type = packets.encode(result) if status == COMPLETED else (None, packets.JSON)
        await self.run_call(protocol.STEPS, {"record": body(call), "status": status,
                                             "result": data, "resultType": data_type})
        self.replay.saved(call, {"seq": call.seq, "kind": call.kind, "name": call.name,
                                 "status": status, "result": data, "resultType": data_type})

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the runtime's loop and wait for it (for `_sync` SDK forms)."""
        if threading.get_ident() == self.loop_thread:
            coro.close()
            raise RuntimeError("A blocking `_sync` SDK call was made from an async task: "
                               "use the `await` form instead (e.g. `await wait.for_(...)`).")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # -- logs and metadata ----------------------------------------------------------------
    def add_log(self, entry: dict[str, Any]) -> None:
        if self.replay.replaying:
            return  # the attempt that made the records sent these already
        self._add_log(entry)

    def from_record(self, call: Call) -> None:
        """Trace a call answered from its record (instant, marked "from record")."""
        self._add_log(span(call))

    def _add_log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            if self.spool is not None:  # as written (`encodable`): the bursts send the same
                entry = self.spool.write(entry)
            self.log_entries.append(entry)
            count = len(self.log_entries)
        self.logs.touch(urgent=count >= 100)

    def update_metadata(self, operations: list[dict[str, Any]]) -> None:
        with self.lock:
            self.metadata = packets.apply_metadata_operations(self.metadata, operations)
            self.metadata_dirty = True
        self.meta.touch()

    async def flush(self) -> None:
        """Send buffered stream chunks, logs and metadata now (before a wait and before
        completing)."""
        await self.streams.flush()
        if self.streams.gone:
            self.gone = True
        await self.logs.flush()
        await self.meta.flush()

    async def _send_stream(self, key: str, chunks: list[Any]) -> None:
        lines = "\n".join(json.dumps(c, default=packets._default, separators=(",", ":"))
                          for c in chunks)
        await self.call("POST", f"streams/{key}", ndjson=lines.encode())

    async def _send_logs(self) -> None:
        with self.lock:
            entries, self.log_entries = self.log_entries, []
        # every burst says where it starts among the attempt's lines, so one sent again
        # (after its channel closed) is stored once; counted sent whatever the outcome
        for burst in log_bursts.bursts(entries, log_bursts.limit()):  # each under the limit
            first, self.logs_sent = self.logs_sent, self.logs_sent + len(burst)
            try:
                await self.run_call(protocol.LOGS, {"attempt": self.attempt, "entries": burst,
                                                    "first": first})
            except NotFoundError as exc:  # no such run or attempt (any more): as a 409
                raise AttemptGone(str(exc)) from None

    async def _send_metadata(self) -> None:
        with self.lock:
            if not self.metadata_dirty:
                return
            snapshot, self.metadata_dirty = dict(self.metadata), False
        try:
            await self.run_call(protocol.METADATA, {"metadata": snapshot})
        except Exception:
            with self.lock:
                self.metadata_dirty = True
            raise


class Flusher:
    """Coalesces sends of a buffer: `touch()` (from any thread) schedules `send` at most
    `interval_s` later, or at once when `urgent`; `flush()` sends now. Sends never overlap, so
    log entries keep their order. A background send that finds the attempt gone marks the
    run `gone`; other failures are reported on stderr and never fail the run."""

    def __init__(self, state: RunState, interval_s: float,
                 send: Callable[[], Awaitable[None]]) -> None:
        self._state, self._interval_s, self._send = state, interval_s, send
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, urgent: bool = False) -> None:
        if threading.get_ident() == self._state.loop_thread:
            self._touch(urgent)
        else:
            self._state.loop.call_soon_threadsafe(self._touch, urgent)

    def _touch(self, urgent: bool) -> None:
        if urgent:
            self._cancel_timer()
            self._spawn()
        elif self._timer is None:
            self._timer = self._state.loop.call_later(self._interval_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._spawn()

    def _spawn(self) -> None:
        task = self._state.loop.create_task(self._background())
        self._tasks.add(task)  # a reference, or the task may be collected mid-flight
        task.add_done_callback(self._tasks.discard)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _background(self) -> None:
        try:
            await self.flush()
        except AttemptGone:
            self._state.gone = True
        except Exception as exc:  # a lost log burst must not kill the run
            print(f"trigger-local: background send failed: {exc!r}", file=sys.__stderr__)

    async def flush(self) -> None:
        self._cancel_timer()
        async with self._lock:
            await self._send()


_run_var: contextvars.ContextVar[RunState | None] = contextvars.ContextVar(
    "trigger_local_run", default=None)
# A process running one run at a time (sync and isolated tasks): threads the task starts itself
# (no copied context) still find their run through this. A shared process (many async runs)
# leaves it None: each run is found through its own context only, never a neighbour's.
_active: RunState | None = None


def current_run() -> RunState | None:
    """The attempt this code runs in, or None in app code (outside a task run)."""
    return _run_var.get() or _active


def enter_run(state: RunState, *, alone: bool = True) -> contextvars.Token[RunState | None]:
    """Make `state` the current run of this context; `alone`: the only run of the process."""
    global _active
    if alone:
        _active = state
    return _run_var.set(state)


def exit_run(token: contextvars.Token[RunState | None]) -> None:
    global _active
    if _active is _run_var.get():
        _active = None
    _run_var.reset(token)


def _state_of(ctx: Context, what: str) -> RunState:
    state = require_run(what)
    if state.run_id != ctx.run.id:
        raise RuntimeError(f"{what} was called with the ctx of another run")
    return state


def require_run(what: str) -> RunState:
    state = current_run()
    if state is None:
        raise RuntimeError(f"{what} can only be used from inside a task run")
    return state
