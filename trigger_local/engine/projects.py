"""Projects: one daemon serves several at once (Trigger.dev's model: project → versions).

Each project has its own current version (its newest), so registering project A's code never
replaces project B's tasks. A task id is resolved within the caller's project; with no project
named, a task id that exactly one project has resolves to that project.

A project registered by `trigger-local dev` runs only while a dev session of it is open (the
event stream `dev` holds, api/stream.py): when the last one closes the project goes offline and
its runs stay QUEUED until a dev comes back. A project registered through the API alone (a
script, the benchmarks, `deploy`) is always online. Sessions are counted in memory: after a
daemon restart a dev project waits for its dev to reconnect (it does so within seconds).
"""

from __future__ import annotations

import os
from typing import Any

from ..durations import iso
from ..errors import AmbiguousProjectError, ConflictError, TaskNotFoundError
from ..store.models import PENDING_VERSION, QUEUED, Project, Run, TaskDef, Version
from .base import EngineBase, Tx

HOW_TO_CHOOSE = ("run the command in that project's directory, set TRIGGER_LOCAL_PROJECT=REF, send the header "
                 "x-trigger-local-project: REF, or use the project's own key (`trigger-local status --project REF`)")


class ProjectMixin(EngineBase):
    # -- resolving names -------------------------------------------------------------------
    def resolve_task(self, task_id: str, project: str | None) -> tuple[str | None, TaskDef | None]:
        """The project a trigger of `task_id` goes to, and the task there (None: not indexed yet,
        the run waits as PENDING_VERSION). Raises TaskNotFoundError when the project (or, with
        none named, every project) has a version without the task, AmbiguousProjectError when
        several projects have it and none was named."""
        if project is not None:
            task = self.projects.task(project, task_id)
            if task is None and self.projects.current_of(project) is not None:
                raise self.unknown_task_error(task_id, project)
            return project, task
        owners = self.projects.owners(task_id)
        if len(owners) == 1:
            return owners[0], self.projects.task(owners[0], task_id)
        if owners:
            raise self.ambiguous_error(f"Task {task_id!r}", owners)
        if self.projects.current:
            raise self.unknown_task_error(task_id)
        return None, None

    def ambiguous_error(self, what: str, refs: list[str]) -> AmbiguousProjectError:
        """`what` (a task, a queue) is in several projects and the request named none."""
        return AmbiguousProjectError(f"{what} exists in {len(refs)} projects: "
                                     f"{', '.join(self.projects.describe(r) for r in refs)}. Say which: "
                                     f"{HOW_TO_CHOOSE}.", projects=refs)

    def unknown_task_error(self, task_id: str, project: str | None = None) -> TaskNotFoundError:
        versions = [self.projects.current[project]] if project in self.projects.current \
            else sorted(self.projects.current.values(), key=lambda v: v.project)
        known = sorted({t.task_id for v in versions for t in v.tasks})
        if len(versions) > 1:
            hint = "Known tasks: " + "; ".join(f"{v.project}: {', '.join(sorted(t.task_id for t in v.tasks))}"
                                               for v in versions)
        elif known:
            hint = f"Known tasks{f' of {project}' if project else ''}: {', '.join(known)}"
        else:
            hint = "No tasks are indexed yet: run `trigger-local dev`"
        return TaskNotFoundError(f"Task {task_id!r} not found. {hint}", known_tasks=known)

    def status_reason(self, run: Run) -> str | None:
        """Why a run that has not started is not starting, when the reason is not its queue."""
        if run.status == PENDING_VERSION:
            where = f"project {run.project}" if run.project else "a project"
            return (f"waiting for a version of {where} with task {run.task_id!r}: "
                    "run `trigger-local dev` in the project")
        if run.status == QUEUED and not self.projects.online(run.project):
            record = self.projects.records[run.project or ""]
            if record.left_at is not None:
                return (f"waiting for `trigger-local dev` in {record.project_dir}; "
                        f"it stopped at {iso(record.left_at)}")
            return f"waiting for `trigger-local dev` in {record.project_dir} to connect"
        return None

    # -- registering and sessions ----------------------------------------------------------
    def check_project_dir(self, ref: str, project_dir: str) -> None:
        """Refuse a second directory for a project whose dev is live in another one: two
        trigger.toml files with the same `project` would replace each other's tasks."""
        record = self.projects.records.get(ref)
        if record is not None and self.projects.sessions.get(ref, 0) > 0 \
                and os.path.realpath(record.project_dir) != os.path.realpath(project_dir):
            raise ConflictError(
                f"Project {ref} is served by `trigger-local dev` in {record.project_dir}; {project_dir} has the "
                f"same project ref. Give one of them its own `project = \"...\"` in trigger.toml.", project=ref)

    async def _record_project(self, tx: Tx, version: Version, dev: bool) -> None:
        old = self.projects.records.get(version.project)
        record = Project(ref=version.project, project_dir=version.project_dir,
                         created_at=old.created_at if old else tx.now, updated_at=tx.now, dev=dev,
                         left_at=old.left_at if old else None)
        await tx.ops.upsert_project(record)
        self.projects.records[record.ref] = record

    async def open_session(self, ref: str) -> None:
        """A `dev` of project `ref` connected: its runs may start."""
        if self.projects.stopping:
            return
        self.projects.sessions[ref] = self.projects.sessions.get(ref, 0) + 1
        if self.projects.sessions[ref] == 1:
            await self._session_changed(ref, online=True)

    async def close_session(self, ref: str) -> None:
        """A `dev` of project `ref` went away; with the last one, the project goes offline."""
        if self.projects.stopping or ref not in self.projects.sessions:
            return  # forgotten on purpose: the daemon is stopping, its devs did not (forget_sessions)
        left = self.projects.sessions[ref] - 1
        if left > 0:
            self.projects.sessions[ref] = left
            return
        self.projects.sessions.pop(ref, None)
        await self._session_changed(ref, online=False)

    def forget_sessions(self) -> None:
        """The daemon is stopping: its streams end, but no dev stopped, so no project goes
        offline for it (the next daemon waits for each dev to reconnect)."""
        self.projects.stopping = True
        self.projects.sessions.clear()

    async def _session_changed(self, ref: str, *, online: bool) -> None:
        async with self._tx() as tx:
            left_at = None if online else tx.now
            await tx.ops.update_project(ref, left_at=left_at)
            if ref in self.projects.records:
                self.projects.records[ref].left_at = left_at
            type_ = "project.online" if online else "project.offline"
            await tx.ops.insert_event(None, type_, tx.now, {"project": ref})
            tx.emit(type_, project=ref)
            tx.emit("dispatch")

    def project_summaries(self) -> list[dict[str, Any]]:
        """Each project: ref, directory, current version, online or not, its task count."""
        out = []
        for ref in sorted(set(self.projects.records) | set(self.projects.current)):
            record, version = self.projects.records.get(ref), self.projects.current.get(ref)
            out.append({"ref": ref, "projectDir": record.project_dir if record else version.project_dir if version
                        else None, "currentVersion": version.id if version else None,
                        "online": self.projects.online(ref), "dev": bool(record and record.dev),
                        "devSessions": self.projects.sessions.get(ref, 0),
                        "leftAt": iso(record.left_at) if record and record.left_at else None,
                        "tasks": len(version.tasks) if version else 0})
        return out
