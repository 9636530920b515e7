"""The one table of allowed run transitions, and the snapshot kinds.

Public status is what clients see; the snapshot kind is the execution layer underneath (a
QUEUED run may be new, a retry, or a held process waiting for its slot back). Every change goes
through `runs.move` (engine/runs.py), which checks this table and compare-and-sets the snapshot
id.
"""

from __future__ import annotations

from ..statuses import FINAL_STATUSES
from ..store.models import (
    CANCELED,
    COMPLETED,
    CRASHED,
    DELAYED,
    DEQUEUED,
    EXECUTING,
    EXPIRED,
    FAILED,
    PENDING_VERSION,
    QUEUED,
    SYSTEM_FAILURE,
    TIMED_OUT,
    WAITING,
)

# snapshot kinds (stored: never rename)
K_PENDING_VERSION = "pending_version"
K_DELAYED = "delayed"
K_QUEUED = "queued"
K_QUEUED_HELD = "queued_held"  # a held process waits for a slot to continue
K_DEQUEUED = "dequeued"
K_EXECUTING = "executing"
K_HELD = "executing_with_waitpoints"  # waiting, process alive
K_SUSPENDED = "suspended"  # waiting, process checkpointed (CRIU)
K_EVICTED = "evicted"  # waiting, no process: its next attempt replays it (engine/eviction.py)
K_FINISHED = "finished"

_FINISH = {COMPLETED, FAILED, CANCELED, CRASHED, SYSTEM_FAILURE, TIMED_OUT}

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_VERSION: frozenset({QUEUED, CANCELED, EXPIRED}),
    DELAYED: frozenset({QUEUED, DELAYED, CANCELED, EXPIRED, PENDING_VERSION}),
    # → EXECUTING: a run the dispatcher reserved starts at once; → SYSTEM_FAILURE: or its
    # version is gone (engine/dequeue.py)
    QUEUED: frozenset({DEQUEUED, EXECUTING, SYSTEM_FAILURE, CANCELED, EXPIRED, PENDING_VERSION}),
    DEQUEUED: frozenset({EXECUTING, QUEUED, DELAYED} | _FINISH),
    EXECUTING: frozenset({WAITING, DELAYED, QUEUED} | _FINISH),
    # WAITING → WAITING: held becomes suspended (checkpointed) or evicted (its process let go)
    WAITING: frozenset({WAITING, EXECUTING, QUEUED, DELAYED} | _FINISH),
}

DEFAULT_KIND: dict[str, str] = {
    PENDING_VERSION: K_PENDING_VERSION,
    DELAYED: K_DELAYED,
    QUEUED: K_QUEUED,
    DEQUEUED: K_DEQUEUED,
    EXECUTING: K_EXECUTING,
    WAITING: K_HELD,
}


def allowed(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def kind_for(status: str) -> str:
    return DEFAULT_KIND.get(status, K_FINISHED)


def ends_attempt(status: str, kind: str) -> bool:
    """Whether moving to `status` (with snapshot `kind`) ends the attempt the run's process was
    running, so that the process may take another run: the run finished, waits for a retry, or
    went back to its queue to start over. A held run that got its slot back (`queued_held`)
    keeps its process."""
    return status in FINAL_STATUSES or status == DELAYED or (status == QUEUED
                                                              and kind != K_QUEUED_HELD)
