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
from ..store.catalog_areas import ScheduleReader
from ..store.models import Schedule, Version
from ..strict_json import shown
from .cron import next_ticks, ticks_between, validate_cron, validate_timezone
from .events import RunScheduled, ScheduleChanged
from .options import TriggerRequest, validate
from .project_state import Projects
from .triggering import Prepared, create_run
from .unit import Tx

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
    """What a create or update asks for, validated by `check_spec`."""

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


# -- validation ----------------------------------------------------------------------------
def check_spec(projects: Projects, spec: ScheduleSpec) -> ScheduleSpec:
    """Normalise and validate; ValidationError (422) with Trigger.dev's messages."""
    spec.cron = validate_cron(spec.cron)
    spec.timezone = validate_timezone(spec.timezone)
    if spec.missed_policy not in MISSED_POLICIES:
        raise ValidationError(f"Invalid missed policy {shown(spec.missed_policy)}: use one of "
                              f"{', '.join(MISSED_POLICIES)}")
    if spec.project is None:
        owners = projects.owners(spec.task_id)
        if len(owners) > 1:
            raise projects.ambiguous_error(f"Task {spec.task_id!r}", owners)
        spec.project = owners[0] if owners else None
    task = projects.task(spec.project, spec.task_id)
    if task is None:
        raise _no_schedule_task(projects, spec, "not found in project.")
    if task.schedule is None:
        raise _no_schedule_task(projects, spec, "is not a scheduled task.")
    return spec


def _no_schedule_task(projects: Projects, spec: ScheduleSpec, what: str) -> ValidationError:
    """Trigger.dev's message, with the project and the tasks it can schedule beside it (the
    CLI says them; a client reads `error` alone): the message named neither."""
    refs = [spec.project] if spec.project is not None else sorted(projects.current)
    scheduled = {ref: sorted(t.task_id for t in version.tasks if t.schedule is not None)
                 for ref in refs if (version := projects.current_of(ref)) is not None}
    shown = spec.task_id if len(spec.task_id) <= 128 else f"{spec.task_id[:128]}…"
    return ValidationError(f"Task with identifier {shown} {what}", project=spec.project,
                           scheduled_tasks=scheduled)


async def get(schedules: ScheduleReader, schedule_id: str) -> Schedule:
    schedule = await schedules.get(schedule_id)
    if schedule is None:
        raise NotFoundError("Schedule not found")
    return schedule


# -- imperative schedules ------------------------------------------------------------------
async def create(tx: Tx, spec: ScheduleSpec) -> Schedule:
    """Create one, or update the one with the same deduplication key (upsert). `spec` was
    checked (`check_spec`)."""
    assert spec.project is not None  # check_spec found the task's project
    existing = (await tx.schedules.find_by_key(spec.project, spec.deduplication_key)
                if spec.deduplication_key else None)
    if existing is not None:
        return await update(tx, existing, spec)
    schedule = Schedule(id=new_id("sched"), type=IMPERATIVE, task_id=spec.task_id, cron=spec.cron,
                        timezone=spec.timezone, active=True, created_at=tx.now, updated_at=tx.now,
                        deduplication_key=spec.deduplication_key, external_id=spec.external_id,
                        missed_policy=spec.missed_policy, project=spec.project,
                        next_run_at=next_ticks(spec.cron, spec.timezone, tx.now)[0])
    await tx.schedules.insert(schedule)
    # its first tick may come before the dispatcher's sleep ends
    await tx.record(ScheduleChanged(schedule_id=schedule.id))
    return schedule


async def update(tx: Tx, schedule: Schedule, spec: ScheduleSpec) -> Schedule:
    if schedule.type == DECLARATIVE:
        raise ValidationError("Cannot update a declarative schedule")
    changes: dict[str, Any] = {"task_id": spec.task_id, "cron": spec.cron,
                               "timezone": spec.timezone, "external_id": spec.external_id,
                               "missed_policy": spec.missed_policy, "updated_at": tx.now}
    if schedule.active:
        changes["next_run_at"] = next_ticks(spec.cron, spec.timezone, tx.now)[0]
    await tx.schedules.update(schedule.id, **changes)
    for name, value in changes.items():
        setattr(schedule, name, value)
    await tx.record(ScheduleChanged(schedule_id=schedule.id))
    return schedule


async def update_by_id(tx: Tx, schedule_id: str, spec: ScheduleSpec) -> Schedule:
    return await update(tx, await imperative(tx, schedule_id, "update"), spec)


async def imperative(tx: Tx, schedule_id: str, action: str) -> Schedule:
    """The schedule `action` (update, delete, activate, deactivate) applies to; declarative
    ones cannot be updated or deleted (their task's code owns them)."""
    schedule = await get(tx.schedules, schedule_id)
    if schedule.type == DECLARATIVE and action in ("update", "delete"):
        raise ValidationError(f"Cannot {action} a declarative schedule")
    return schedule


async def delete(tx: Tx, schedule_id: str) -> Schedule:
    schedule = await imperative(tx, schedule_id, "delete")
    await tx.schedules.delete(schedule.id)
    return schedule


async def set_active(tx: Tx, schedule_id: str, active: bool) -> Schedule:
    """Deactivated schedules keep their settings and fire nothing; activating one starts from
    the next tick after now (the ticks in between are not missed ticks)."""
    schedule = await imperative(tx, schedule_id, "activate" if active else "deactivate")
    next_run = next_ticks(schedule.cron, schedule.timezone, tx.now)[0] if active else None
    await tx.schedules.update(schedule.id, active=active, next_run_at=next_run, updated_at=tx.now)
    schedule.active, schedule.next_run_at, schedule.updated_at = active, next_run, tx.now
    await tx.record(ScheduleChanged(schedule_id=schedule.id))
    return schedule


# -- declarative schedules -----------------------------------------------------------------
async def sync_declarative(tx: Tx, version: Version) -> None:
    """Make the declarative schedules match `version`'s `schedules.task(cron=...)`s: one
    schedule per cron expression, keyed `declarative:<task>:<n>`."""
    wanted: dict[str, tuple[str, str, str]] = {}
    for task in version.tasks:
        declared = task.schedule or {}
        for n, cron in enumerate(declared.get("crons") or []):
            wanted[f"declarative:{task.task_id}:{n}"] = (task.task_id, cron,
                                                         declared.get("timezone") or "UTC")
    existing, _ = await tx.schedules.page(0, 1_000_000, type_=DECLARATIVE,
                                          project=version.project)
    for schedule in existing:
        if schedule.deduplication_key not in wanted:
            await tx.schedules.delete(schedule.id)
    by_key = {s.deduplication_key: s for s in existing}
    for key, (task_id, cron, tz) in wanted.items():
        old = by_key.get(key)
        if old is not None and (old.task_id, old.cron, old.timezone) == (task_id, cron, tz):
            continue
        next_run = next_ticks(cron, tz, tx.now)[0]
        if old is not None:
            await tx.schedules.update(old.id, cron=cron, timezone=tz, next_run_at=next_run,
                                      updated_at=tx.now)
            continue
        await tx.schedules.insert(Schedule(
            id=new_id("sched"), type=DECLARATIVE, task_id=task_id, cron=cron, timezone=tz,
            active=True, created_at=tx.now, updated_at=tx.now, deduplication_key=key,
            next_run_at=next_run, project=version.project))


# -- the timer -----------------------------------------------------------------------------
async def tick(tx: Tx) -> int:
    """Fire every due tick (per the schedule's missed policy); returns runs created."""
    fired = 0
    for schedule in await tx.timers.schedules(tx.now):
        assert schedule.next_run_at is not None
        ticks = ticks_between(schedule.cron, schedule.timezone, schedule.next_run_at, tx.now,
                              MAX_CATCH_UP if schedule.missed_policy == "all" else 1)
        if schedule.missed_policy == "skip":
            ticks = [t for t in ticks if tx.now - t <= MISSED_GRACE_S]
        last = schedule.last_run_at
        for at in ticks:
            await _fire(tx, schedule, at, last)
            last = at
            fired += 1
        await tx.schedules.update(schedule.id, last_run_at=last,
                                  next_run_at=next_ticks(schedule.cron, schedule.timezone,
                                                         tx.now)[0])
    return fired


async def _fire(tx: Tx, schedule: Schedule, at: float, last: float | None) -> None:
    upcoming = next_ticks(schedule.cron, schedule.timezone, at, UPCOMING)
    payload: dict[str, Any] = {"type": schedule.type, "scheduleId": schedule.id,
                               "timestamp": iso(at), "timezone": schedule.timezone,
                               "upcoming": [iso(t) for t in upcoming]}
    if last is not None:
        payload["lastTimestamp"] = iso(last)
    if schedule.external_id is not None:
        payload["externalId"] = schedule.external_id
    req = TriggerRequest(task_id=schedule.task_id, payload=json.dumps(payload),
                         payload_type=packets.JSON, idempotency_key=tick_key(schedule.id, at),
                         idempotency_key_user=f"{schedule.id}:{iso(at)}",
                         schedule_id=schedule.id, project=schedule.project)
    # the task as its project has it now (a tick never resolves the task elsewhere)
    prepared = Prepared(req, validate(req, tx.now, tx.settings),
                        tx.ctx.projects.task(schedule.project, schedule.task_id))
    result = await create_run(tx, prepared, False)
    if not result.cached:
        await tx.record(RunScheduled(run_id=result.run.id, schedule_id=schedule.id, tick_at=at))
