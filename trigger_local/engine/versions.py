"""Which version a run runs on, and so which retry policy it is retried by."""

from __future__ import annotations

from ..errors import ValidationError
from ..store.catalog_areas import VersionReader
from ..store.models import Run, TaskDef, Version
from .options import TriggerRequest
from .retry import RetryPolicy, run_policy
from .unit import EngineContext


async def version_of(ctx: EngineContext, versions: VersionReader, run: Run) -> Version | None:
    """The version `run` runs on: the one it was locked to, else its project's current one
    (what it would start on). None when its project has nothing indexed, or the version row is
    gone. A locked version is read once (versions never change)."""
    current = ctx.projects.current_of(run.project)
    if run.version_id is None:
        return current
    if current is not None and run.version_id == current.id:
        return current
    if run.version_id not in ctx.versions:
        version = await versions.get(run.version_id)
        if version is None:
            return None
        ctx.versions[run.version_id] = version
    return ctx.versions[run.version_id]


async def retry_policy(ctx: EngineContext, versions: VersionReader, run: Run) -> RetryPolicy:
    """The policy `run` is retried by: its task's, else its version's project's, else the
    built-in default (engine/retry.py), with the trigger's max_attempts on top."""
    return run_policy(run, await version_of(ctx, versions, run))


async def registered_meanwhile(versions: VersionReader, task_id: str,
                               project: str | None) -> tuple[Version, TaskDef] | None:
    """The current version (of `project`, or of the one project that has the task) with
    `task_id`, as the store has it now. Asked in a trigger's transaction when the task was not
    found before it: a registration that committed meanwhile (its project known from the start
    of its transaction, its version current in memory only after the commit) has it, and a run
    parked as PENDING_VERSION then would wait for good (its registration queued the pending
    runs before this one existed)."""
    found = [(v, t) for v in await versions.current() if project in (None, v.project)
             for t in v.tasks if t.task_id == task_id]
    return found[0] if len(found) == 1 else None


async def locked_version(ctx: EngineContext, versions: VersionReader,
                         req: TriggerRequest) -> tuple[Version, TaskDef]:
    """The version `req.lock_to_version` names and its task `req.task_id`: a run locked to it
    runs on it, not on its project's current one (Trigger.dev's `lockToVersion`). A version of
    another project is unknown, as one that does not exist (422 naming it either way)."""
    version_id = req.lock_to_version or ""
    version = ctx.versions.get(version_id) or await versions.get(version_id)
    if version is None or req.project not in (None, version.project):
        current = ctx.projects.current_of(req.project)
        hint = f" (its current one is {current.id})" if current is not None else ""
        raise ValidationError(f"options.lockToVersion {version_id!r} is no version of project "
                              f"{req.project or '(any)'}{hint}: name a version id as "
                              "POST /api/v1/local/versions answered it, or leave it out (the Node "
                              "SDK sends its `version` option, else $TRIGGER_VERSION, as it)",
                              field="options.lockToVersion")
    ctx.versions[version_id] = version  # versions never change
    task = version.task(req.task_id)
    if task is None:
        raise ValidationError(f"Version {version_id} (options.lockToVersion) has no task "
                              f"{req.task_id!r}; its tasks: "
                              f"{', '.join(t.task_id for t in version.tasks) or 'none'}",
                              field="options.lockToVersion")
    req.project = version.project
    return version, task
