"""The engine's events: one frozen dataclass per kind of change.

The engine records each change with `tx.record(event)` (engine/unit.py), which writes the
durable `events` row in the same transaction and publishes the event on the hub once the
transaction commits. Subscribers (the dispatcher, the executors, the SSE stream, long-polls)
match on these classes and their fields, never on strings.

An event's `type` is the string its row is stored under, which the SSE stream, the CLI and the
dashboard read (`run.created`, `run.waiting`, `queue.paused`, ...): never rename one. An event
whose `type` is None is a notice: published, not stored (`AttemptAborted`, `ScheduleChanged`,
`Draining`). `data()` is the row's payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. Subscribing to it sees them all."""

    #: the stored type of every instance of the class (None: a notice, or decided per instance)
    TYPE: ClassVar[str | None] = None

    @property
    def type(self) -> str | None:
        """The stored type; None: this event is published but not stored."""
        return self.TYPE

    @property
    def subject_run(self) -> str | None:
        """The run the event is about (its row's `run_id`), if any."""
        return None

    def data(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvent(Event):
    """Something that happened to one run."""

    run_id: str

    @property
    def subject_run(self) -> str | None:
        return self.run_id

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunChange(RunEvent):
    """A run was created or changed status: the facts about it a subscriber filters on."""

    task_id: str
    project: str | None
    queue: str
    tags: tuple[str, ...] = ()
    status: str
    kind: str  # the snapshot kind under the status (engine/states.py)

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task_id": self.task_id, "status": self.status,
                "from": None, "kind": self.kind, "project": self.project}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCreated(RunChange):
    TYPE = "run.created"
    snapshot_id: str | None = None  # its first snapshot, which its row records (engine/runs.py)
    description: str = ""
    #: the transaction that made it found no run that may start now — its trigger's own dequeue
    #: (engine/starting.py): a dispatcher round would find none either
    none_runnable: bool = False

    def data(self) -> dict[str, Any]:
        named = {"snapshot_id": self.snapshot_id, "description": self.description}
        return {**RunChange.data(self), **{k: v for k, v in named.items() if v}}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStatusChanged(RunChange):
    """The run moved from `previous` to `status` (engine/runs.py `move`, the one door).

    Stored as `run.<status>` unless a subclass names the change (`run.retrying`, ...)."""

    previous: str
    #: the task process that held the run before this change (None: none did)
    worker_id: str | None = None
    attempt: int = 0
    #: that process's attempt is over: it may take another run (engine/states.py `ends_attempt`)
    attempt_ended: bool = False
    #: what this change adds to the row (the waitpoint waited on, the retry delay, ...)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str | None:
        return self.TYPE or f"run.{self.status.lower()}"

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task_id": self.task_id, "status": self.status,
                "from": self.previous, "kind": self.kind, "project": self.project, **self.extra}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDequeued(RunStatusChanged):
    """Taken off its queue by the dispatcher, which starts it at once: a notice, not stored (its
    start is, `run.executing` from DEQUEUED; engine/runs.py `move`)."""

    @property
    def type(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRetrying(RunStatusChanged):
    """A failed attempt will be retried: DELAYED until its backoff has passed."""

    TYPE = "run.retrying"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInterrupted(RunStatusChanged):
    """Its process went away through no fault of the task (a daemon stop or restart): QUEUED
    again, the attempt not counted."""

    TYPE = "run.interrupted"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResumed(RunStatusChanged):
    """A held (or restored) process continues the run after its wait: EXECUTING. From WAITING
    (engine/resuming.py) the run goes on where it waited, and `extra["result"]`, the wait's
    result for the executor to pass on, is not stored (None: the run's process resumed it
    itself, on its own timer: nothing to pass on)."""

    TYPE = "run.resumed"

    def data(self) -> dict[str, Any]:
        data = RunStatusChanged.data(self)  # slots: no zero-argument super()
        data.pop("result", None)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class RunUnblocked(RunStatusChanged):
    """The last waitpoint it waited on completed: QUEUED (held) for a slot to continue."""

    TYPE = "run.unblocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRescheduled(RunStatusChanged):
    TYPE = "run.rescheduled"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDebounced(RunStatusChanged):
    """Another trigger with its debounce key pushed its start."""

    TYPE = "run.debounced"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCheckpointed(RunStatusChanged):
    """Its waiting process was dumped: WAITING, now `suspended`."""

    TYPE = "run.checkpointed"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvicted(RunStatusChanged):
    """Its waiting attempt was let go from memory (engine/eviction.py): WAITING, now `evicted`,
    with no process; the attempt ended interrupted and the next one replays the run."""

    TYPE = "run.evicted"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptAborted(RunEvent):
    """The engine ended the attempt while `worker_id` still runs it (a cancel, a max duration):
    the executor kills that process. A notice."""

    worker_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMetadataChanged(RunEvent):
    TYPE = "run.metadata"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStreamCreated(RunEvent):
    """The run has a new realtime stream, `key` (its `realtimeStreams` grew)."""

    TYPE = "run.stream"
    key: str

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "key": self.key}


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamAppended(RunEvent):
    """A notice (not stored: the chunks are): stream `key` of the run now has `length` chunks.
    It wakes the stream's readers."""

    key: str
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLogsAppended(RunEvent):
    """`count` log lines of the run were stored with ids above `after_id`."""

    TYPE = "run.logs"
    after_id: int
    count: int

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "after_id": self.after_id, "count": self.count}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunScheduled(RunEvent):
    """A schedule's tick created the run."""

    TYPE = "run.scheduled"
    schedule_id: str
    tick_at: float

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "schedule_id": self.schedule_id, "tick_at": self.tick_at}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRecorded(RunEvent):
    """A dump of the run's process was recorded while the run was no longer WAITING (its wait
    completed during the dump); a WAITING run gets `RunCheckpointed` instead."""

    TYPE = "run.checkpointed"
    checkpoint_id: str
    size_bytes: int
    dump_ms: float | None
    path: str

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **checkpoint_data(self.checkpoint_id, self.size_bytes,
                                                         self.dump_ms, self.path)}


def checkpoint_data(checkpoint_id: str, size_bytes: int, dump_ms: float | None,
                    path: str) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint_id, "size_bytes": size_bytes, "dump_ms": dump_ms,
            "path": path}


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointFailed(RunEvent):
    """A checkpoint was wanted but not made: the process stays alive and the run is held."""

    TYPE = "run.checkpoint_failed"
    reason: str

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRestored(RunEvent):
    TYPE = "run.restored"
    checkpoint_id: str
    restore_ms: float

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "checkpoint_id": self.checkpoint_id,
                "restore_ms": round(self.restore_ms, 1)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReplayed(RunEvent):
    """An attempt resumes the run by replaying its durable records (engine/durable.py)."""

    TYPE = "run.replayed"
    attempt: int
    records: int

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "attempt": self.attempt, "records": self.records}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAdopted(RunEvent):
    """A restarted daemon found the run's process still alive and took it over."""

    TYPE = "run.adopted"
    worker_id: str

    def data(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "worker_id": self.worker_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitpointCreated(Event):
    TYPE = "waitpoint.created"
    waitpoint_id: str

    def data(self) -> dict[str, Any]:
        return {"waitpoint_id": self.waitpoint_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitpointCompleted(Event):
    """Completed or timed out (`status`)."""

    TYPE = "waitpoint.completed"
    waitpoint_id: str
    status: str

    def data(self) -> dict[str, Any]:
        return {"waitpoint_id": self.waitpoint_id, "status": self.status}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueChanged(Event):
    queue: str
    project: str

    def data(self) -> dict[str, Any]:
        return {"queue": self.queue, "project": self.project}


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePaused(QueueChanged):
    """Paused, or (with `paused` False) resumed."""

    paused: bool

    @property
    def type(self) -> str:
        return "queue.paused" if self.paused else "queue.resumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLimitChanged(QueueChanged):
    TYPE = "queue.limit"
    limit: int | None

    def data(self) -> dict[str, Any]:
        return {"queue": self.queue, "project": self.project, "limit": self.limit}


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRegistered(Event):
    TYPE = "version.registered"
    version_id: str
    project: str

    def data(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "project": self.project}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectSessionChanged(Event):
    """A dev project went online (its first `dev` session opened) or offline (its last closed)."""

    project: str
    online: bool

    @property
    def type(self) -> str:
        return "project.online" if self.online else "project.offline"

    def data(self) -> dict[str, Any]:
        return {"project": self.project}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleChanged(Event):
    """A schedule was created, changed or (de)activated: its next tick may be sooner. A notice."""

    schedule_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangedElsewhere(Event):
    """Another daemon on the same database committed changes (PostgreSQL's NOTIFY): whatever
    reads the durable tables (the dispatcher, event streams and long-polls) looks again. A
    notice."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Draining(Event):
    """The daemon is stopping: every long-poll and stream answers now (engine/hub.py). A notice."""
