"""The one place that decides what happens to a run's process while it waits.

`continue` — the waitpoint is already complete: the wait returns at once.
`hold`     — the process stays alive and blocked (polling); its concurrency slot is released.
`checkpoint` — the process is frozen to disk and stops (the CRIU issue adds this; until an
               executor says it can checkpoint, every wait is held).
"""

from __future__ import annotations

from typing import Protocol

from ..config import DaemonSettings
from ..store.models import WP_DATETIME, Waitpoint

CONTINUE = "continue"
HOLD = "hold"
CHECKPOINT = "checkpoint"


class CheckpointCapability(Protocol):
    def can_checkpoint(self) -> bool: ...


def decide(waitpoint: Waitpoint, now: float, settings: DaemonSettings,
           executor: CheckpointCapability | None = None) -> str:
    if waitpoint.status != "WAITING":
        return CONTINUE
    if executor is None or not executor.can_checkpoint():
        return HOLD
    if waitpoint.type == WP_DATETIME and waitpoint.complete_after is not None \
            and waitpoint.complete_after - now < settings.hold_threshold_s:
        return HOLD
    return CHECKPOINT
