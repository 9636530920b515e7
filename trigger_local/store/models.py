"""The records the store keeps. Plain dataclasses: the engine reads and builds them, the store
maps them to rows. Timestamps are epoch seconds (`*_at`), durations seconds (`*_s`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter
from typing import Any

from ..projects import DEFAULT_PROJECT

# FINAL_STATUSES and RUNNING_STATUSES are re-exported: the engine imports them from here
from ..statuses import FINAL_STATUSES as FINAL_STATUSES
from ..statuses import RUNNING_STATUSES as RUNNING_STATUSES
from ..statuses import RunStatus, WaitpointStatus, WaitpointType

# The engine's short names for the statuses (defined in trigger_local/statuses.py).
PENDING_VERSION = RunStatus.PENDING_VERSION
DELAYED = RunStatus.DELAYED
QUEUED = RunStatus.QUEUED
DEQUEUED = RunStatus.DEQUEUED
EXECUTING = RunStatus.EXECUTING
WAITING = RunStatus.WAITING
COMPLETED = RunStatus.COMPLETED
FAILED = RunStatus.FAILED
CANCELED = RunStatus.CANCELED
CRASHED = RunStatus.CRASHED
SYSTEM_FAILURE = RunStatus.SYSTEM_FAILURE
EXPIRED = RunStatus.EXPIRED
TIMED_OUT = RunStatus.TIMED_OUT
INTERRUPTED = "INTERRUPTED"  # an attempt's status only: the daemon stopped or lost its process
WP_DATETIME = WaitpointType.DATETIME
WP_MANUAL = WaitpointType.MANUAL
WP_RUN = WaitpointType.RUN
WP_BATCH = WaitpointType.BATCH
WP_WAITING = WaitpointStatus.WAITING
WP_COMPLETED = WaitpointStatus.COMPLETED
WP_TIMED_OUT = WaitpointStatus.TIMED_OUT


@dataclass(slots=True)
class TaskDef:
    """One task of an indexed version."""

    task_id: str
    queue: str
    file: str = ""
    export_name: str = ""
    retry: dict[str, Any] | None = None
    max_duration_s: float | None = None
    machine: str | None = None
    schema: dict[str, Any] | None = None
    queue_concurrency_limit: int | None = None
    queue_is_custom: bool = False
    #: declarative schedule {"crons": [...], "timezone": ...} of a schedules.task (None otherwise)
    schedule: dict[str, Any] | None = None
    #: {"limit", "period_s", "per_key"} of the task's queue
    rate_limit: dict[str, Any] | None = None
    #: its runs may share a task process (an async task not `isolated`); else one per process
    shared: bool = False


@dataclass(frozen=True, slots=True)
class ProjectDefaults:
    """What a project's `trigger.toml` sets for every task that does not set it itself,
    carried with each version (so a run of an older version keeps its own project's rules)."""

    #: the `[retry]` table: keys of `Retry` (max_attempts, factor, min_timeout_s, …)
    retry: dict[str, Any] | None = None
    machine: str | None = None
    max_duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"retry": self.retry, "machine": self.machine, "max_duration_s": self.max_duration_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProjectDefaults:
        data = data or {}
        return cls(retry=data.get("retry"), machine=data.get("machine"),
                   max_duration_s=data.get("max_duration_s"))


@dataclass(slots=True)
class Version:
    id: str
    project_dir: str
    created_at: float
    tasks: list[TaskDef] = field(default_factory=list)
    python: str = ""
    dirs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: the ref of the project it belongs to (each project has its own current version)
    project: str = DEFAULT_PROJECT
    defaults: ProjectDefaults = field(default_factory=ProjectDefaults)

    def task(self, task_id: str) -> TaskDef | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)


@dataclass(slots=True)
class Project:
    """A project the daemon serves, keyed by the `project` ref of its trigger.toml."""

    ref: str
    project_dir: str
    created_at: float
    updated_at: float
    #: registered by `trigger-local dev`: its runs start only while a dev session is open
    dev: bool = False
    #: when its last dev session ended (None: never ended, or one is open)
    left_at: float | None = None


@dataclass(slots=True)
class Queue:
    name: str
    id: str
    type: str  # "task" | "custom"
    concurrency_limit: int | None
    paused: bool
    created_at: float
    running: int = 0
    queued: int = 0
    #: queues are per project: two projects may both have `task/hello`
    project: str = DEFAULT_PROJECT


@dataclass(slots=True)
class Run:
    id: str
    task_id: str
    status: str
    snapshot_id: str
    snapshot_kind: str
    queue: str
    created_at: float
    updated_at: float
    queued_at: float  # ordering key: enqueue time minus priority
    payload: str | None = None
    payload_type: str = "application/json"
    output: str | None = None
    output_type: str | None = None
    error: dict[str, Any] | None = None
    version_id: str | None = None
    concurrency_key: str | None = None
    delay_until: float | None = None
    expires_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    idempotency_key: str | None = None
    idempotency_key_user: str | None = None
    idempotency_expires_at: float | None = None
    tags: list[str] = field(default_factory=list)
    max_attempts: int | None = None
    max_duration_s: float | None = None
    priority: float = 0.0
    machine: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt_count: int = 0
    parent_run_id: str | None = None
    root_run_id: str | None = None
    batch_id: str | None = None
    resume_parent: bool = False
    worker_id: str | None = None
    deadline_at: float | None = None
    executed_s: float = 0.0
    waitpoint_id: str | None = None
    is_test: bool = False
    depth: int = 0
    schedule_id: str | None = None  # set on runs a schedule's tick triggered
    #: the project whose version runs it; None only while no project is known (a run waiting
    #: as PENDING_VERSION or DELAYED for a task no project had when it was triggered)
    project: str | None = DEFAULT_PROJECT
    #: attempts the daemon interrupted (a stop, a restart): each has a row and an internal
    #: number (`attempt_count` counts them too), but none counts against max_attempts, and the
    #: try after one is shown with the same number (`counted_attempts`, `shown_attempt`)
    interrupted_count: int = 0

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def counted_attempts(self) -> int:
        """Attempts that count against max_attempts: the API's `attemptCount`."""
        return self.attempt_count - self.interrupted_count

    def shown_attempt(self, number: int) -> int:
        """Attempt `number` (internal, one per try) as the task's `ctx.attempt.number`, the API
        and the CLI show it: interrupted tries before it do not count. Valid for the current
        attempt (interrupted ones all come before it)."""
        return number - self.interrupted_count

    def copied(self) -> Run:
        """A shallow copy (as `copy.copy`, whose `__reduce_ex__` round took ~9.5 µs a run
        where this takes ~2.3: a run is copied at each start, issue #13)."""
        return Run(*_RUN_VALUES(self))


_RUN_VALUES = attrgetter(*(f.name for f in fields(Run)))


@dataclass(slots=True)
class Attempt:
    id: str
    run_id: str
    number: int
    status: str  # EXECUTING | COMPLETED | FAILED | CRASHED | INTERRUPTED | TIMED_OUT | CANCELED
    started_at: float
    worker_id: str | None = None
    pid: int | None = None
    executor: str = "process"
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    counts: bool = True  # False: interrupted by the daemon, not held against max_attempts


@dataclass(slots=True)
class Waitpoint:
    id: str
    type: str
    status: str
    created_at: float
    completed_at: float | None = None
    complete_after: float | None = None  # DATETIME: when it completes itself
    timeout_at: float | None = None  # MANUAL: when it times out
    output: str | None = None
    output_type: str = "application/json"
    output_is_error: bool = False
    idempotency_key: str | None = None
    idempotency_expires_at: float | None = None
    tags: list[str] = field(default_factory=list)
    owner_run_id: str | None = None  # RUN: the run whose result completes it
    batch_id: str | None = None
    created_by_run_id: str | None = None
    #: the project whose key may see it (a token: its creator's; None: the daemon's key only)
    project: str | None = None


@dataclass(slots=True)
class Batch:
    id: str
    run_count: int
    created_at: float
    status: str = "PENDING"  # PENDING | PROCESSING | COMPLETED
    run_ids: list[str] = field(default_factory=list)
    parent_run_id: str | None = None
    idempotency_key: str | None = None
    waitpoint_id: str | None = None
    #: the project whose key may see it, and within which its idempotency key counts (None:
    #: the daemon's key only)
    project: str | None = None


@dataclass(slots=True)
class Worker:
    id: str
    version_id: str
    token: str
    pid: int | None
    started_at: float
    executor: str = "process"


@dataclass(slots=True)
class LogEntry:
    run_id: str
    at: float
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    kind: str = "log"  # log | span
    span_id: str | None = None
    parent_span_id: str | None = None
    ended_at: float | None = None
    attempt: int | None = None
    id: int | None = None


@dataclass(slots=True)
class LogUsage:
    """An attempt's logs against its cap (engine/log_cap.py): the lines and bytes the daemon
    stored and dropped past the cap (its marker line not among them), and whether the marker
    was stored (the attempt ended capped)."""

    stored_lines: int = 0
    stored_bytes: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0
    marked: bool = False


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One chunk of a run's stream (store/stream_areas.py): `data` is its JSON text."""

    index: int
    data: str
    at: float


@dataclass(slots=True)
class StoredEvent:
    """A row of the events table: an engine event (engine/events.py) as it was recorded."""

    seq: int
    run_id: str | None
    type: str
    at: float
    data: dict[str, Any]


@dataclass(slots=True)
class Schedule:
    """A cron schedule that triggers `task_id`. `type` is IMPERATIVE (API/SDK/CLI) or
    DECLARATIVE (from a `schedules.task(cron=...)`, owned by indexing). Times are epoch seconds."""

    id: str
    type: str
    task_id: str
    cron: str
    timezone: str
    active: bool
    created_at: float
    updated_at: float
    deduplication_key: str | None = None
    external_id: str | None = None
    missed_policy: str = "latest"
    next_run_at: float | None = None
    last_run_at: float | None = None
    project: str = DEFAULT_PROJECT


#: a checkpoint's status: `pending` from just before its dump starts until it is recorded (or
#: undone: the row is then deleted), so a daemon killed in between leaves a trace the next one
#: finishes; `active` while its images may be restored; then `restored`, `failed` or `deleted`
#: (the images are gone, the row stays as the run's history)
CK_PENDING = "pending"
CK_ACTIVE = "active"
CK_RESTORED = "restored"
CK_FAILED = "failed"
CK_DELETED = "deleted"


@dataclass(slots=True)
class Checkpoint:
    """One dump (CRIU, or `docker checkpoint`) of a waiting run's process."""

    id: str
    run_id: str
    attempt: int
    worker_id: str
    pid: int
    path: str
    status: str
    created_at: float
    executor: str = "process"
    size_bytes: int = 0
    dump_ms: float | None = None
    restore_ms: float | None = None
    error: str | None = None
    restored_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunStep:
    """One durable call of a run, by its call order `seq` (1, 2, … from the start of the task
    function, the same in every attempt): a wait, a token, a child trigger, a step, a
    checkpoint (docs/durability.md). A wait's outcome is its waitpoint's: the record binds it."""

    run_id: str
    seq: int
    kind: str  # wait.for | wait.until | wait.token | token.create | trigger | … (engine/durable.py)
    attempt: int
    created_at: float
    name: str | None = None
    status: str = "completed"  # pending | completed | failed
    result: str | None = None  # a packet; large ones are `application/store` references
    result_type: str = "application/json"
    waitpoint_id: str | None = None
    child_run_id: str | None = None
    batch_id: str | None = None
    completed_at: float | None = None
