"""The task processes the store knows about, so a restarted daemon can find them again."""

from __future__ import annotations

from ..store.models import DEQUEUED, EXECUTING, QUEUED, WAITING, Run, Worker
from .base import EngineBase


class WorkerMixin(EngineBase):
    async def register_worker(self, worker: Worker) -> None:
        async with self._tx() as tx:
            await tx.ops.upsert_worker(worker)

    async def forget_worker(self, worker_id: str) -> None:
        async with self._tx() as tx:
            await tx.ops.delete_worker(worker_id)

    async def list_workers(self) -> list[Worker]:
        return await self.store.read().list_workers()

    async def runs_on_workers(self) -> list[Run]:
        """Runs that a process is (or was, before a restart) executing or holding."""
        runs = await self.store.read().runs_with_status([DEQUEUED, EXECUTING, WAITING, QUEUED])
        return [r for r in runs if r.worker_id or r.status in (DEQUEUED, EXECUTING)]
