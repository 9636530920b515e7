"""Queues: made when a version or a trigger names one, found by name, paused and limited."""

from __future__ import annotations

from ..errors import NotFoundError, ValidationError
from ..ids import new_id
from ..store.catalog_areas import QueueReader
from ..store.models import Queue, TaskDef
from .events import QueueLimitChanged, QueuePaused
from .options import TriggerRequest
from .project_state import Projects
from .unit import Tx


async def ensure(tx: Tx, project: str, name: str, limit: int | None, *, custom: bool,
                 update_limit: bool = False) -> None:
    """Make `project`'s queue `name` if it does not exist; with `update_limit`, set its
    concurrency limit to `limit` if it has another."""
    existing = await tx.queues.get(project, name)
    if existing is None:
        await tx.queues.insert(Queue(name=name, id=new_id("queue"),
                                     type="custom" if custom else "task", concurrency_limit=limit,
                                     paused=False, created_at=tx.now, project=project))
    elif update_limit and existing.concurrency_limit != limit:
        await tx.queues.update(project, name, concurrency_limit=limit)


async def of_request(tx: Tx, req: TriggerRequest, task: TaskDef | None,
                     ensured: set[tuple[str, str]] | None = None) -> str:
    """A new run's queue, made in its project if needed (a run of no project yet gets its
    queue when a project takes it). `ensured`: the queues a batch made or found already
    (engine/new_runs.py), not asked for again unless the request sets a limit."""
    queue = req.queue or (task.queue if task else f"task/{req.task_id}")
    if req.project is None or (ensured is not None and req.queue_concurrency_limit is None
                               and (req.project, queue) in ensured):
        return queue
    if req.queue_concurrency_limit is not None:
        await ensure(tx, req.project, queue, req.queue_concurrency_limit,
                     custom=queue != f"task/{req.task_id}", update_limit=True)
    elif req.queue and req.queue != (task.queue if task else None):
        await ensure(tx, req.project, queue, None, custom=True)
    else:
        await ensure(tx, req.project, queue, task.queue_concurrency_limit if task else None,
                     custom=bool(task and task.queue_is_custom))
    if ensured is not None:
        ensured.add((req.project, queue))  # it exists now, for the rest of the batch
    return queue


async def find(queues: QueueReader, projects: Projects, name: str,
               project: str | None = None) -> Queue:
    """A queue by name (`task/<id>` or a custom name) or by id, with running/queued counts:
    `project`'s, or with none named the one project's that has it (AmbiguousProjectError
    when several have)."""
    found_queues = await queues.all(project)
    for candidate in (name, f"task/{name}"):
        found = [q for q in found_queues if candidate in (q.name, q.id)]
        if len(found) > 1:
            raise projects.ambiguous_error(f"Queue {name!r}", sorted(q.project for q in found))
        if found:
            return found[0]
    raise NotFoundError(f"Queue {name!r} not found", error_code="queue-not-found")


async def set_paused(tx: Tx, queue: Queue, paused: bool) -> None:
    await tx.queues.update(queue.project, queue.name, paused=paused)
    await tx.record(QueuePaused(queue=queue.name, project=queue.project, paused=paused))


def check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValidationError(f"Invalid concurrency limit {limit!r}: use a whole number of 0 or "
                              "more")


async def set_limit(tx: Tx, queue: Queue, limit: int | None) -> None:
    await tx.queues.update(queue.project, queue.name, concurrency_limit=limit)
    await tx.record(QueueLimitChanged(queue=queue.name, project=queue.project, limit=limit))
