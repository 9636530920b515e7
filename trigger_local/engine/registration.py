"""Registering an indexed version: it becomes its project's current version, its queues,
declarative schedules and rate limits follow its tasks, and runs that waited for one of its
tasks (PENDING_VERSION) are queued."""

from __future__ import annotations

from ..store.models import PENDING_VERSION, QUEUED, Run, Version
from . import projects, queues, ratelimits, schedules
from .events import VersionRegistered
from .options import task_default
from .runs import move
from .unit import Tx


async def register(tx: Tx, version: Version, dev: bool) -> int:
    """Store `version` and what follows from it. `dev`: registered by `trigger-local dev`, so
    the project runs only while a dev session is open (engine/project_state.py). The caller
    makes it current in memory once the transaction has committed (`Projects.registered`,
    with the catalog's generation this returns: its insert's, on a shared store)."""
    await tx.versions.insert(version)
    await projects.record(tx, version, dev)
    for task in version.tasks:
        limit = task.queue_concurrency_limit \
            if task.queue_is_custom or task.queue_concurrency_limit is not None else None
        await queues.ensure(tx, version.project, task.queue, limit, custom=task.queue_is_custom,
                            update_limit=True)
    await queue_pending(tx, [version])
    await schedules.sync_declarative(tx, version)
    await ratelimits.sync(tx, version)
    await tx.record(VersionRegistered(version_id=version.id, project=version.project))
    return await tx.versions.generation() if tx.ctx.shared_store else 0


async def queue_pending(tx: Tx, versions: list[Version]) -> None:
    """Queue the runs that waited for one of these versions' tasks (also asked by a daemon that
    learns of a version another daemon sharing its database registered)."""
    pending = {r.id: r for r in await tx.runs.with_status([PENDING_VERSION])}
    for version in versions:
        await _queue_pending(tx, version, pending)


async def _queue_pending(tx: Tx, version: Version, pending: dict[str, Run]) -> None:
    task_ids = {t.task_id for t in version.tasks}
    for run in list(pending.values()):
        if run.task_id not in task_ids or run.project not in (None, version.project):
            continue
        del pending[run.id]  # queued once, by the first version that has its task
        its_task = version.task(run.task_id)
        queue = run.queue
        if run.project is None:  # triggered before any project had the task: its queue now
            if its_task is not None and queue == f"task/{run.task_id}":
                queue = its_task.queue  # the task's own queue, with its limit, unless named
                await queues.ensure(tx, version.project, queue, its_task.queue_concurrency_limit,
                                    custom=its_task.queue_is_custom)
            else:
                await queues.ensure(tx, version.project, queue, None, custom=False)
        await move(tx, run, QUEUED, project=version.project, queue=queue,
                   description=f"version {version.id} has the task",
                   machine=run.machine or task_default(version, its_task, "machine"),
                   max_duration_s=run.max_duration_s
                   or task_default(version, its_task, "max_duration_s"))
