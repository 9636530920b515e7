"""Queue management and run logs: small operations the API calls directly."""

from __future__ import annotations

from ..errors import NotFoundError, ValidationError
from ..store.models import LogEntry, Queue
from .waits import WaitMixin


class QueueLogMixin(WaitMixin):
    async def get_queue(self, name: str, project: str | None = None) -> Queue:
        """A queue by name (`task/<id>` or a custom name) or by id, with running/queued counts:
        `project`'s, or with none named the one project's that has it (AmbiguousProjectError
        when several have)."""
        queues = await self.store.read().list_queues(project)
        for candidate in (name, f"task/{name}"):
            found = [q for q in queues if candidate in (q.name, q.id)]
            if len(found) > 1:
                raise self.ambiguous_error(f"Queue {name!r}", sorted(q.project for q in found))
            if found:
                return found[0]
        raise NotFoundError(f"Queue {name!r} not found", error_code="queue-not-found")

    async def set_queue_paused(self, name: str, paused: bool, project: str | None = None) -> Queue:
        queue = await self.get_queue(name, project)
        async with self._tx() as tx:
            await tx.ops.update_queue(queue.project, queue.name, paused=paused)
            data = {"queue": queue.name, "project": queue.project}
            await tx.ops.insert_event(None, "queue.paused" if paused else "queue.resumed", tx.now, data)
            tx.emit("queue.changed", **data, paused=paused)
            tx.emit("dispatch")
        return await self.get_queue(queue.name, queue.project)

    async def set_queue_limit(self, name: str, limit: int | None, project: str | None = None) -> Queue:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValidationError(f"Invalid concurrency limit {limit!r}: use a whole number of 0 or more")
        queue = await self.get_queue(name, project)
        async with self._tx() as tx:
            await tx.ops.update_queue(queue.project, queue.name, concurrency_limit=limit)
            data = {"queue": queue.name, "project": queue.project}
            await tx.ops.insert_event(None, "queue.limit", tx.now, {**data, "limit": limit})
            tx.emit("queue.changed", **data, limit=limit)
            tx.emit("dispatch")
        return await self.get_queue(queue.name, queue.project)

    async def append_logs(self, entries: list[LogEntry]) -> None:
        """Store a burst of log lines and spans in one transaction."""
        if not entries:
            return
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.run_id] = counts.get(entry.run_id, 0) + 1
        async with self._tx() as tx:
            # one writer, so this burst's ids are the next ones above `after_id`; the event row
            # makes the burst durable news (the SSE stream expands it into the lines)
            after_id = await tx.ops.last_log_id()
            await tx.ops.append_logs(entries)
            for run_id, count in counts.items():
                await tx.ops.insert_event(run_id, "run.logs", tx.now,
                                          {"run_id": run_id, "after_id": after_id, "count": count})
                tx.emit("run.logs", run_id=run_id)
