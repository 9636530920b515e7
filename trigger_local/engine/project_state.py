"""`Projects`: what the engine keeps in memory about the projects it serves (engine/projects.py
says what a project is): each one's current version, its record, its open dev sessions."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store.models import Project, TaskDef, Version


@dataclass
class Projects:
    """What the engine keeps in memory about projects: current versions, records, sessions."""

    current: dict[str, Version] = field(default_factory=dict)
    records: dict[str, Project] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    #: the daemon is stopping: sessions are no longer counted (ProjectMixin.forget_sessions)
    stopping: bool = False

    def load(self, versions: list[Version], records: list[Project]) -> None:
        self.current = {v.project: v for v in versions}
        self.records = {p.ref: p for p in records}

    def current_of(self, ref: str | None) -> Version | None:
        return None if ref is None else self.current.get(ref)

    def latest(self) -> Version | None:
        """The newest current version of any project."""
        return max(self.current.values(), key=lambda v: v.created_at, default=None)

    def task(self, ref: str | None, task_id: str) -> TaskDef | None:
        version = self.current_of(ref)
        return None if version is None else next((t for t in version.tasks if t.task_id == task_id), None)

    def owners(self, task_id: str) -> list[str]:
        """The projects whose current version has `task_id`."""
        return sorted(ref for ref, v in self.current.items() if any(t.task_id == task_id for t in v.tasks))

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
