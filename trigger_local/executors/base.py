"""What the dispatcher needs from an executor."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from ..store.models import Run


class Executor(Protocol):
    name: str

    async def start(self) -> None:
        """Adopt the processes a previous daemon left running; begin watching them."""

    def capacity(self) -> int:
        """How many more runs could start right now (idle warm processes plus room for new ones)."""

    async def assign(self, run: Run) -> bool:
        """Start `run` (DEQUEUED) on a warm process or a new one. False: no room, requeue it."""

    def holds(self, worker_id: str) -> bool:
        """True if `worker_id` is alive and holding a waiting run."""

    async def resume(self, run: Run) -> bool:
        """Let the held process of `run` continue. False if it is gone."""

    async def next_assignment(self, worker_id: str, wait_s: float) -> dict[str, Any] | None | Literal["retire"]:
        """The worker's long-poll: its next run, None (poll again) or "retire" (exit)."""

    def can_checkpoint(self) -> bool: ...

    def live_processes(self) -> int: ...

    async def shutdown(self, grace_s: float) -> None:
        """Let running attempts finish for up to `grace_s`, then stop every process."""

    def describe(self) -> dict[str, Any]: ...
