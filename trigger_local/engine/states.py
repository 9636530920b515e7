"""The one table of allowed run transitions, and the snapshot kinds.

Public status is what clients see; the snapshot kind is the execution layer underneath (a
QUEUED run may be new, a retry, or a held process waiting for its slot back). Every change goes
through `Engine._move`, which checks this table and compare-and-sets the snapshot id.
"""

from __future__ import annotations

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
K_FINISHED = "finished"

_FINISH = {COMPLETED, FAILED, CANCELED, CRASHED, SYSTEM_FAILURE, TIMED_OUT}

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_VERSION: frozenset({QUEUED, CANCELED, EXPIRED}),
    DELAYED: frozenset({QUEUED, DELAYED, CANCELED, EXPIRED, PENDING_VERSION}),
    QUEUED: frozenset({DEQUEUED, CANCELED, EXPIRED, PENDING_VERSION}),
    DEQUEUED: frozenset({EXECUTING, QUEUED, DELAYED} | _FINISH),
    EXECUTING: frozenset({WAITING, DELAYED, QUEUED} | _FINISH),
    # WAITING → WAITING: held becomes suspended when the process is checkpointed
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
