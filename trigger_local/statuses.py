"""Every status trigger-local knows, defined once: runs, waitpoints, and the groups the daemon,
the SDK, the CLI and the dashboard ask about (final, live, holding a slot, not started).

No imports beyond the standard library, so every side (daemon, task runtime, SDK, CLI,
dashboard) can use it. The values are stored in SQLite and sent over the wire, with Trigger.dev's
names so its SDK accepts them: never rename one. Each member's name is its value, so a member
and the plain string read back from a row or a JSON answer are equal and hash alike
(`"QUEUED" in FINAL_STATUSES` works either way).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's public status (Trigger.dev API version 2025-07-16)."""

    PENDING_VERSION = "PENDING_VERSION"
    DELAYED = "DELAYED"
    QUEUED = "QUEUED"
    DEQUEUED = "DEQUEUED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    CRASHED = "CRASHED"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    EXPIRED = "EXPIRED"
    TIMED_OUT = "TIMED_OUT"


#: statuses a run never leaves. Trigger.dev's `isCompleted` leaves out EXPIRED and TIMED_OUT,
#: which makes its `runs.poll` spin forever on them; here they are final.
FINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED,
                            RunStatus.CRASHED, RunStatus.SYSTEM_FAILURE, RunStatus.EXPIRED,
                            RunStatus.TIMED_OUT})
#: final and not a success (a cancel is the user's choice, not a failure)
FAILED_STATUSES = FINAL_STATUSES - {RunStatus.COMPLETED, RunStatus.CANCELED}
#: every status that is not final: the run may still change
LIVE_STATUSES = frozenset(RunStatus) - FINAL_STATUSES
#: not started yet (Trigger.dev's `isQueued`); a `ttl` expires runs in these
QUEUED_STATUSES = frozenset({RunStatus.PENDING_VERSION, RunStatus.DELAYED, RunStatus.QUEUED})
#: holding a concurrency slot (Trigger.dev's `isExecuting`)
RUNNING_STATUSES = frozenset({RunStatus.DEQUEUED, RunStatus.EXECUTING})


class WaitpointStatus(StrEnum):
    """A waitpoint's status (a token, a datetime, a run's or a batch's completion)."""

    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"


class WaitpointType(StrEnum):
    """What a waitpoint waits for: a time, a token, a run, a batch."""

    DATETIME = "DATETIME"
    MANUAL = "MANUAL"
    RUN = "RUN"
    BATCH = "BATCH"

