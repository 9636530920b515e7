"""Cron schedules: imperative ones (API, SDK, CLI) and declarative ones (a `schedules.task`'s
`cron`, owned by indexing), and the timer that turns their ticks into runs.

A tick is fired in the same transaction that moves the schedule's `next_run_at` past it, so a
daemon killed at that moment either fired it and moved on, or did neither; the run also carries
an idempotency key of (schedule, tick) so nothing else can fire the same tick twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .. import packets
from ..durations import iso
from ..errors import NotFoundError, ValidationError
from ..ids import new_id
from ..store.models import Schedule, Version
from .base import Tx
from .cron import next_ticks, ticks_between, validate_cron, validate_timezone
from .projects import ProjectMixin
from .triggering import TriggerRequest

IMPERATIVE, DECLARATIVE = "IMPERATIVE", "DECLARATIVE"
#: what to do with ticks that passed while the daemon was down (docs/schedules.md)
MISSED_POLICIES = ("latest", "all", "skip")
#: with "all", at most this many missed ticks are replayed (the latest ones)
MAX_CATCH_UP = 100
#: a tick fired later than this is "missed" (a busy round is late by milliseconds, not a minute)
MISSED_GRACE_S = 60.0
UPCOMING = 5


@dataclass
class ScheduleSpec:
    """What a create or update asks for, validated."""

    task_id: str
    cron: str
    timezone: str = "UTC"
    external_id: str | None = None
    deduplication_key: str | None = None
    missed_policy: str = "latest"
    #: the caller's project; None: the one project whose current version has the task
    project: str | None = None


def tick_key(schedule_id: str, tick: float) -> str:
    return hashlib.sha256(f"schedule:{schedule_id}:{tick:.3f}".encode()).hexdigest()


class ScheduleMixin(ProjectMixin):
    # -- validation ------------------------------------------------------------------------
    def check_schedule_spec(self, spec: ScheduleSpec) -> ScheduleSpec:
        """Normalise and validate; ValidationError (422) with Trigger.dev's messages."""
        spec.cron = validate_cron(spec.cron)
        spec.timezone = validate_timezone(spec.timezone)
        if spec.missed_policy not in MISSED_POLICIES:
            raise ValidationError(f"Invalid missed policy {spec.missed_policy!r}: use one of "
                                  f"{', '.join(MISSED_POLICIES)}")
        if spec.project is None:
            owners = self.projects.owners(spec.task_id)
            if len(owners) > 1:
                raise self.ambiguous_error(f"Task {spec.task_id!r}", owners)
            spec.project = owners[0] if owners else None
        task = self.projects.task(spec.project, spec.task_id)
        if task is None:
            raise ValidationError(f"Task with identifier {spec.task_id} not found in project.")
        if task.schedule is None:
            raise ValidationError(f"Task with identifier {spec.task_id} is not a scheduled task.")
        return spec

    # -- imperative schedules --------------------------------------------------------------
    async def create_schedule(self, spec: ScheduleSpec) -> Schedule:
        """Create one, or update the one with the same deduplication key (upsert)."""
        spec = self.check_schedule_spec(spec)
        async with self._tx() as tx:
            assert spec.project is not None  # check_schedule_spec found the task's project
            existing = (await tx.ops.find_schedule_by_key(spec.project, spec.deduplication_key)
                        if spec.deduplication_key else None)
            if existing is not None:
                return await self._update(tx, existing, spec)
            schedule = Schedule(id=new_id("sched"), type=IMPERATIVE, task_id=spec.task_id, cron=spec.cron,
                                timezone=spec.timezone, active=True, created_at=tx.now, updated_at=tx.now,
                                deduplication_key=spec.deduplication_key, external_id=spec.external_id,
                                missed_policy=spec.missed_policy, project=spec.project,
                                next_run_at=next_ticks(spec.cron, spec.timezone, tx.now)[0])
            await tx.ops.insert_schedule(schedule)
            tx.emit("dispatch")  # the dispatcher's sleep may end before this tick
            return schedule

    async def update_schedule(self, schedule_id: str, spec: ScheduleSpec) -> Schedule:
        current = await self.store.read().get_schedule(schedule_id)
        spec.project = spec.project or (current.project if current else None)  # its task stays in its project
        spec = self.check_schedule_spec(spec)
        async with self._tx() as tx:
            return await self._update(tx, await self._imperative(tx, schedule_id, "update"), spec)

    async def _update(self, tx: Tx, schedule: Schedule, spec: ScheduleSpec) -> Schedule:
        if schedule.type == DECLARATIVE:
            raise ValidationError("Cannot update a declarative schedule")
        changes: dict[str, Any] = {"task_id": spec.task_id, "cron": spec.cron, "timezone": spec.timezone,
                                   "external_id": spec.external_id, "missed_policy": spec.missed_policy,
                                   "updated_at": tx.now}
        if schedule.active:
            changes["next_run_at"] = next_ticks(spec.cron, spec.timezone, tx.now)[0]
        await tx.ops.update_schedule(schedule.id, **changes)
        for name, value in changes.items():
            setattr(schedule, name, value)
        tx.emit("dispatch")
        return schedule

    async def _imperative(self, tx: Tx, schedule_id: str, action: str) -> Schedule:
        schedule = await tx.ops.get_schedule(schedule_id)
        if schedule is None:
            raise NotFoundError("Schedule not found")
        if schedule.type == DECLARATIVE and action in ("update", "delete"):
            raise ValidationError(f"Cannot {action} a declarative schedule")
        return schedule

    async def delete_schedule(self, schedule_id: str) -> Schedule:
        async with self._tx() as tx:
            schedule = await self._imperative(tx, schedule_id, "delete")
            await tx.ops.delete_schedule(schedule.id)
            return schedule

    async def set_schedule_active(self, schedule_id: str, active: bool) -> Schedule:
        """Deactivated schedules keep their settings and fire nothing; activating one starts
        from the next tick after now (the ticks in between are not missed ticks)."""
        async with self._tx() as tx:
            schedule = await self._imperative(tx, schedule_id, "activate" if active else "deactivate")
            next_run = next_ticks(schedule.cron, schedule.timezone, tx.now)[0] if active else None
            await tx.ops.update_schedule(schedule.id, active=active, next_run_at=next_run, updated_at=tx.now)
            schedule.active, schedule.next_run_at, schedule.updated_at = active, next_run, tx.now
            tx.emit("dispatch")
            return schedule

    async def get_schedule(self, schedule_id: str) -> Schedule:
        schedule = await self.store.read().get_schedule(schedule_id)
        if schedule is None:
            raise NotFoundError("Schedule not found")
        return schedule

    async def list_schedules(self, page: int = 1, per_page: int = 25,
                             **filters: Any) -> tuple[list[Schedule], int]:
        return await self.store.read().list_schedules((page - 1) * per_page, per_page, **filters)

    # -- declarative schedules -------------------------------------------------------------
    async def _sync_declarative(self, tx: Tx, version: Version) -> None:
        """Make the declarative schedules match `version`'s `schedules.task(cron=...)`s:
        one schedule per cron expression, keyed `declarative:<task>:<n>`."""
        wanted: dict[str, tuple[str, str, str]] = {}
        for task in version.tasks:
            schedule = task.schedule or {}
            for n, cron in enumerate(schedule.get("crons") or []):
                wanted[f"declarative:{task.task_id}:{n}"] = (task.task_id, cron, schedule.get("timezone") or "UTC")
        existing, _ = await tx.ops.list_schedules(0, 1_000_000, type_=DECLARATIVE, project=version.project)
        for schedule in existing:
            if schedule.deduplication_key not in wanted:
                await tx.ops.delete_schedule(schedule.id)
        by_key = {s.deduplication_key: s for s in existing}
        for key, (task_id, cron, tz) in wanted.items():
            old = by_key.get(key)
            if old is not None and (old.task_id, old.cron, old.timezone) == (task_id, cron, tz):
                continue
            next_run = next_ticks(cron, tz, tx.now)[0]
            if old is not None:
                await tx.ops.update_schedule(old.id, cron=cron, timezone=tz, next_run_at=next_run, updated_at=tx.now)
                continue
            await tx.ops.insert_schedule(Schedule(
                id=new_id("sched"), type=DECLARATIVE, task_id=task_id, cron=cron, timezone=tz, active=True,
                created_at=tx.now, updated_at=tx.now, deduplication_key=key, next_run_at=next_run,
                project=version.project))

    # -- the timer -------------------------------------------------------------------------
    async def _tick_schedules(self, tx: Tx) -> int:
        """Fire every due tick (per the schedule's missed policy); returns runs created."""
        fired = 0
        for schedule in await tx.ops.due_schedules(tx.now):
            assert schedule.next_run_at is not None
            ticks = ticks_between(schedule.cron, schedule.timezone, schedule.next_run_at, tx.now,
                                  MAX_CATCH_UP if schedule.missed_policy == "all" else 1)
            if schedule.missed_policy == "skip":
                ticks = [t for t in ticks if tx.now - t <= MISSED_GRACE_S]
            last = schedule.last_run_at
            for tick in ticks:
                await self._fire(tx, schedule, tick, last)
                last = tick
                fired += 1
            await tx.ops.update_schedule(schedule.id, last_run_at=last,
                                         next_run_at=next_ticks(schedule.cron, schedule.timezone, tx.now)[0])
        return fired

    async def _fire(self, tx: Tx, schedule: Schedule, tick: float, last: float | None) -> None:
        upcoming = next_ticks(schedule.cron, schedule.timezone, tick, UPCOMING)
        payload: dict[str, Any] = {"type": schedule.type, "scheduleId": schedule.id, "timestamp": iso(tick),
                                   "timezone": schedule.timezone, "upcoming": [iso(t) for t in upcoming]}
        if last is not None:
            payload["lastTimestamp"] = iso(last)
        if schedule.external_id is not None:
            payload["externalId"] = schedule.external_id
        req = TriggerRequest(task_id=schedule.task_id, payload=json.dumps(payload), payload_type=packets.JSON,
                             idempotency_key=tick_key(schedule.id, tick),
                             idempotency_key_user=f"{schedule.id}:{iso(tick)}", schedule_id=schedule.id,
                             project=schedule.project)
        fields = self._validate(req, tx.now)  # type: ignore[attr-defined]
        task = self.projects.task(schedule.project, schedule.task_id)
        result = await self._create_run(tx, req, fields, task, False)  # type: ignore[attr-defined]
        if not result.cached:
            await tx.ops.insert_event(result.run.id, "run.scheduled", tx.now,
                                      {"run_id": result.run.id, "schedule_id": schedule.id, "tick_at": tick})
