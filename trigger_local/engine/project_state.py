"""`Projects`: what the engine keeps in memory about the projects it serves — each one's current
version, its record, its open dev sessions — and the answers that depend only on that: which
project a task id means, why a run does not start, the errors that name projects.

One daemon serves several projects at once (Trigger.dev's model: project → versions). Each
project has its own current version (its newest), so registering project A's code never
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..durations import iso
from ..errors import AmbiguousProjectError, ConflictError, TaskNotFoundError
from ..store.models import PENDING_VERSION, QUEUED, Project, Run, TaskDef, Version

HOW_TO_CHOOSE = ("run the command in that project's directory, set TRIGGER_LOCAL_PROJECT=REF, "
                 "send the header x-trigger-local-project: REF, or use the project's own key "
                 "(`trigger-local status --project REF`)")


@dataclass
class Projects:
    """What the engine keeps in memory about projects: current versions, records, sessions."""

    current: dict[str, Version] = field(default_factory=dict)
    records: dict[str, Project] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    #: the daemon is stopping: sessions are no longer counted (`forget_sessions`)
    stopping: bool = False
    #: another daemon changed the catalog and this cache is being read again (peers.py): the
    #: dequeue takes no run until it is done (engine/dequeue.py)
    reloading: bool = False
    #: a dequeue on a shared store met a run of a project this cache does not hold: the
    #: peers' next round reloads it (peers.py `round`)
    unknown_seen: bool = False
    #: the catalog's generation (store `versions.generation`) read before this cache was
    #: read: a dequeue that finds the store's past it has the cache read again (`behind`)
    generation: int = 0
    #: asks for the cache to be read again now (peers.py: as another daemon's notice does)
    reload: Callable[[], None] | None = None

    def load(self, generation: int, versions: list[Version], records: list[Project]) -> None:
        self.generation = generation
        self.current = {v.project: v for v in versions}
        self.records = {p.ref: p for p in records}

    def registered(self, version: Version, generation: int) -> None:
        """`version` (registered here) is its project's current one; `generation`: the
        catalog's once its registration committed, this cache's when it is the next one (else
        other daemons' versions came in between, and the next dequeue has them read)."""
        self.current[version.project] = version
        if generation == self.generation + 1:
            self.generation = generation

    def behind(self, generation: int) -> bool:
        """Whether the catalog moved past this cache (a dequeue read `generation`): it then
        takes no run, and the cache is read again (`reload`, else the peers' next round)."""
        if generation <= self.generation:
            return False
        if self.reload is not None:
            self.reload()
        else:
            self.unknown_seen = True
        return True

    def current_of(self, ref: str | None) -> Version | None:
        return None if ref is None else self.current.get(ref)

    def latest(self) -> Version | None:
        """The newest current version of any project."""
        return max(self.current.values(), key=lambda v: v.created_at, default=None)

    def task(self, ref: str | None, task_id: str) -> TaskDef | None:
        version = self.current_of(ref)
        return None if version is None else version.task(task_id)

    def owners(self, task_id: str) -> list[str]:
        """The projects whose current version has `task_id`."""
        return sorted(ref for ref, v in self.current.items() if v.task(task_id) is not None)

    def current_ids(self) -> set[str]:
        return {v.id for v in self.current.values()}

    def online(self, ref: str | None) -> bool:
        record = self.records.get(ref or "")
        return record is None or not record.dev or self.sessions.get(record.ref, 0) > 0

    def offline(self) -> set[str]:
        return {ref for ref in self.records if not self.online(ref)}

    def describe(self, ref: str) -> str:
        record = self.records.get(ref)
        return f"{ref} ({record.project_dir})" if record else ref

    # -- resolving names -------------------------------------------------------------------
    def resolve_task(self, task_id: str, project: str | None) -> tuple[str | None, TaskDef | None]:
        """The project a trigger of `task_id` goes to, and the task there (None: not indexed
        yet, the run waits as PENDING_VERSION). Raises TaskNotFoundError when the project (or,
        with none named, every project) has a version without the task, AmbiguousProjectError
        when several projects have it and none was named."""
        if project is not None:
            task = self.task(project, task_id)
            if task is None and self.current_of(project) is not None:
                raise self.unknown_task_error(task_id, project)
            return project, task
        owners = self.owners(task_id)
        if len(owners) == 1:
            return owners[0], self.task(owners[0], task_id)
        if owners:
            raise self.ambiguous_error(f"Task {task_id!r}", owners)
        if self.current:
            raise self.unknown_task_error(task_id)
        return None, None

    def ambiguous_error(self, what: str, refs: list[str]) -> AmbiguousProjectError:
        """`what` (a task, a queue) is in several projects and the request named none."""
        return AmbiguousProjectError(
            f"{what} exists in {len(refs)} projects: "
            f"{', '.join(self.describe(r) for r in refs)}. Say which: {HOW_TO_CHOOSE}.",
            projects=refs)

    def unknown_task_error(self, task_id: str, project: str | None = None) -> TaskNotFoundError:
        versions = [self.current[project]] if project in self.current \
            else sorted(self.current.values(), key=lambda v: v.project)
        known = sorted({t.task_id for v in versions for t in v.tasks})
        if len(versions) > 1:
            hint = "Known tasks: " + "; ".join(
                f"{v.project}: {', '.join(sorted(t.task_id for t in v.tasks))}" for v in versions)
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
        if run.status == QUEUED and not self.online(run.project):
            record = self.records[run.project or ""]
            if record.left_at is not None:
                return (f"waiting for `trigger-local dev` in {record.project_dir}; "
                        f"it stopped at {iso(record.left_at)}")
            return f"waiting for `trigger-local dev` in {record.project_dir} to connect"
        return None

    # -- registering and sessions ----------------------------------------------------------
    def check_dir(self, ref: str, project_dir: str) -> None:
        """Refuse a second directory for a project whose dev is live in another one: two
        trigger.toml files with the same `project` would replace each other's tasks."""
        record = self.records.get(ref)
        if record is not None and self.sessions.get(ref, 0) > 0 \
                and os.path.realpath(record.project_dir) != os.path.realpath(project_dir):
            raise ConflictError(
                f"Project {ref} is served by `trigger-local dev` in {record.project_dir}; "
                f"{project_dir} has the same project ref. Give one of them its own "
                "`project = \"...\"` in trigger.toml.", project=ref)

    def open_session(self, ref: str) -> bool:
        """A `dev` of project `ref` connected; True when the project comes online with it."""
        if self.stopping:
            return False
        self.sessions[ref] = self.sessions.get(ref, 0) + 1
        return self.sessions[ref] == 1

    def close_session(self, ref: str) -> bool:
        """A `dev` of project `ref` went away; True when it was the last (the project goes
        offline)."""
        if self.stopping or ref not in self.sessions:
            return False  # forgotten on purpose: the daemon is stopping, its devs did not
        left = self.sessions[ref] - 1
        if left > 0:
            self.sessions[ref] = left
            return False
        self.sessions.pop(ref, None)
        return True

    def forget_sessions(self) -> None:
        """The daemon is stopping: its streams end, but no dev stopped, so no project goes
        offline for it (the next daemon waits for each dev to reconnect)."""
        self.stopping = True
        self.sessions.clear()

    def summaries(self) -> list[dict[str, Any]]:
        """Each project: ref, directory, current version, online or not, its task count
        (`tasks`) and its current version's task ids (`taskIds`)."""
        out = []
        for ref in sorted(set(self.records) | set(self.current)):
            record, version = self.records.get(ref), self.current.get(ref)
            project_dir = record.project_dir if record else version.project_dir if version \
                else None
            out.append({"ref": ref, "projectDir": project_dir,
                        "currentVersion": version.id if version else None,
                        "online": self.online(ref), "dev": bool(record and record.dev),
                        "devSessions": self.sessions.get(ref, 0),
                        "leftAt": iso(record.left_at) if record and record.left_at else None,
                        "tasks": len(version.tasks) if version else 0,
                        "taskIds": sorted(t.task_id for t in version.tasks) if version else []})
        return out
