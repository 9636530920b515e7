"""The one place that decides what happens to a run's process while it waits.

`continue` — the waitpoint is already complete: the wait returns at once.
`hold`     — the process stays alive and blocked (polling); its concurrency slot is released.
             A run that shares its process with others (an async task) is always held: its
             wait is a suspended coroutine there (executors/sharing.py).
`checkpoint` — the process is frozen to disk and stops (CRIU: executors/checkpoints.py); only
               when the executor says it can checkpoint, else every wait is held.
"""

from __future__ import annotations

from typing import Protocol

from ..config import DaemonSettings
from ..store.models import WP_BATCH, WP_DATETIME, WP_MANUAL, WP_RUN, Waitpoint

CONTINUE = "continue"
HOLD = "hold"
CHECKPOINT = "checkpoint"

_KIND_NAMES: dict[str, str] = {WP_DATETIME: "duration", WP_MANUAL: "token", WP_RUN: "run",
                               WP_BATCH: "batch"}


def _kind_enabled(waitpoint: Waitpoint, settings: DaemonSettings) -> bool:
    enabled = {k.strip() for k in settings.checkpoint_waits.split(",")}
    return _KIND_NAMES.get(waitpoint.type, "") in enabled


class CheckpointCapability(Protocol):
    def can_checkpoint(self) -> bool: ...

    def shares_process(self, run_id: str) -> bool:
        """True when `run_id` runs in a process with other runs (never checkpointed)."""
        ...


def decide(waitpoint: Waitpoint, now: float, settings: DaemonSettings,
           executor: CheckpointCapability | None = None, run_id: str = "") -> str:
    if waitpoint.status != "WAITING":
        return CONTINUE
    if executor is None or not executor.can_checkpoint() or executor.shares_process(run_id):
        return HOLD
    if not _kind_enabled(waitpoint, settings):
        return HOLD
    if waitpoint.type == WP_DATETIME and waitpoint.complete_after is not None \
            and waitpoint.complete_after - now < settings.hold_threshold_s:
        return HOLD
    return CHECKPOINT


def hold_reason(waitpoint: Waitpoint, now: float, settings: DaemonSettings,
                executor: CheckpointCapability | None = None, run_id: str = "") -> str | None:
    """Why a wait is held rather than checkpointed (recorded on the run's `run.waiting` event)."""
    if decide(waitpoint, now, settings, executor, run_id) != HOLD:
        return None
    if executor is not None and executor.shares_process(run_id):
        return "the run shares its task process (an async task): it waits as a coroutine"
    if executor is None or not executor.can_checkpoint():
        reason = getattr(executor, "checkpoint_unavailable_reason", None)
        return (reason() if reason else "") or "this executor cannot checkpoint"
    if not _kind_enabled(waitpoint, settings):
        kind = _KIND_NAMES.get(waitpoint.type, waitpoint.type)
        return f"{kind} waits are not in checkpoint_waits"
    return f"the wait is shorter than hold_threshold_s ({settings.hold_threshold_s:g} s)"
