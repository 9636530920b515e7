"""The project records the store keeps beside the in-memory state (engine/project_state.py):
written when a version registers, and when a dev project goes online or offline; and the
catalog read into that state."""

from __future__ import annotations

from ..store.interface import StoreReader
from ..store.models import Project, Version
from .events import ProjectSessionChanged
from .project_state import Projects
from .unit import Tx


async def read(projects: Projects, reader: StoreReader) -> None:
    """Read the catalog into `projects`: its generation first, then each project's current
    version and record, as new as that generation or newer (a dequeue that finds the catalog
    past it has it read again: engine/dequeue.py)."""
    projects.load(await reader.versions.generation(), await reader.versions.current(),
                  await reader.projects.all())


async def record(tx: Tx, version: Version, dev: bool) -> None:
    """Record `version`'s project (its directory, whether `dev` registered it)."""
    projects = tx.ctx.projects
    old = projects.records.get(version.project)
    project = Project(ref=version.project, project_dir=version.project_dir,
                      created_at=old.created_at if old else tx.now, updated_at=tx.now, dev=dev,
                      left_at=old.left_at if old else None)
    await tx.projects.upsert(project)
    projects.records[project.ref] = project


async def session_changed(tx: Tx, ref: str, *, online: bool) -> None:
    """Project `ref`'s first dev session opened, or its last one closed."""
    left_at = None if online else tx.now
    await tx.projects.update(ref, left_at=left_at)
    record = tx.ctx.projects.records.get(ref)
    if record is not None:
        record.left_at = left_at
    await tx.record(ProjectSessionChanged(project=ref, online=online))
