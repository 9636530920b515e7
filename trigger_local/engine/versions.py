"""Which version a run runs on, and so which retry policy it is retried by."""

from __future__ import annotations

from ..store.catalog_areas import VersionReader
from ..store.models import Run, Version
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
