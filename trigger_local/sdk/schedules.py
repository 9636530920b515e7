"""`schedules`: cron tasks, as in Trigger.dev.

    @schedules.task(id="daily-cleanup", cron="0 3 * * *", timezone="Europe/Paris")
    async def daily_cleanup(payload: ScheduledPayload) -> None: ...

    await schedules.create(task="daily-cleanup", cron="0 * * * *", deduplication_key="hourly")

A `schedules.task` with `cron` (one expression or a list) has declarative schedules, which
indexing creates, updates and removes; without `cron` it runs only from imperative schedules
(`schedules.create`). Management calls are async, with `_sync` twins (the SDK's naming rule),
and answer Trigger.dev's ScheduleObject dicts (camelCase keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..errors import ValidationError
from . import registry
from .client import get_client, get_sync_client
from .options import Queue
from .retry import Retry
from .routes import Call
from .tasks import Task

Json = dict[str, Any]
#: one cron expression or several (`list` is a method name inside `Schedules`)
Crons = str | list[str]


@dataclass
class ScheduledPayload:
    """What a scheduled run receives: the tick it was fired for and the schedule's context."""

    timestamp: datetime
    schedule_id: str
    timezone: str = "UTC"
    type: str = "IMPERATIVE"
    last_timestamp: datetime | None = None
    external_id: str | None = None
    upcoming: list[datetime] = field(default_factory=list)

    @classmethod
    def from_wire(cls, value: Json) -> ScheduledPayload:
        last = value.get("lastTimestamp")
        return cls(timestamp=_date(value["timestamp"]), schedule_id=value.get("scheduleId", ""),
                   timezone=value.get("timezone", "UTC"), type=value.get("type", "IMPERATIVE"),
                   last_timestamp=_date(last) if last else None,
                   external_id=value.get("externalId"),
                   upcoming=[_date(d) for d in value.get("upcoming") or []])


def _date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ScheduledTask(Task):
    """A task run by schedules: its payload arrives as a ScheduledPayload."""

    def parse_payload(self, value: Any) -> Any:
        if isinstance(value, dict) and "timestamp" in value and "scheduleId" in value:
            return ScheduledPayload.from_wire(value)
        return value


def _crons(cron: Crons | None, task_id: str) -> list[str]:
    crons = [cron] if isinstance(cron, str) else list(cron or [])
    if not crons:
        return crons
    # imported only for a task with crons: croniter runs `file -b <python>` (a subprocess)
    # at import, which every task process and the daemon paid at boot
    from croniter import croniter

    for expr in crons:
        if (not isinstance(expr, str) or len(expr.split()) not in (5, 6)
                or not croniter.is_valid(expr)):
            raise ValidationError(f"schedules.task {task_id!r}: invalid cron expression {expr!r}")
    return [" ".join(c.split()) for c in crons]


def _path(schedule_id: str, suffix: str = "") -> str:
    return f"/api/v1/schedules/{quote(schedule_id, safe='')}{suffix}"


def _body(task: str, cron: str, timezone: str | None, external_id: str | None,
          missed_policy: str | None, deduplication_key: str | None = None) -> Json:
    body: Json = {"task": task, "cron": cron}
    for name, value in (("timezone", timezone), ("externalId", external_id),
                        ("missedPolicy", missed_policy), ("deduplicationKey", deduplication_key)):
        if value is not None:
            body[name] = value
    return body


class ScheduleCalls:
    """The requests, shared by the async and blocking forms."""

    @staticmethod
    def create(task: str, cron: str, timezone: str | None = None, external_id: str | None = None,
               deduplication_key: str | None = None,
               missed_policy: str | None = None) -> Call[Json]:
        body = _body(task, cron, timezone, external_id, missed_policy, deduplication_key)
        return Call("POST", "/api/v1/schedules", body=body)

    @staticmethod
    def update(schedule_id: str, task: str, cron: str, timezone: str | None = None,
               external_id: str | None = None, missed_policy: str | None = None) -> Call[Json]:
        return Call("PUT", _path(schedule_id), body=_body(task, cron, timezone, external_id,
                                                          missed_policy))

    @staticmethod
    def retrieve(schedule_id: str) -> Call[Json]:
        return Call("GET", _path(schedule_id))

    @staticmethod
    def list(page: int = 1, per_page: int = 25) -> Call[Json]:
        return Call("GET", "/api/v1/schedules", params={"page": page, "perPage": per_page})

    @staticmethod
    def delete(schedule_id: str) -> Call[Json]:
        return Call("DELETE", _path(schedule_id))

    @staticmethod
    def activate(schedule_id: str) -> Call[Json]:
        return Call("POST", _path(schedule_id, "/activate"))

    @staticmethod
    def deactivate(schedule_id: str) -> Call[Json]:
        return Call("POST", _path(schedule_id, "/deactivate"))

    @staticmethod
    def timezones(exclude_utc: bool = False) -> Call[Json]:
        params = {"excludeUtc": "true"} if exclude_utc else {}
        return Call("GET", "/api/v1/timezones", params=params)


def _twins(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    build = getattr(ScheduleCalls, name)

    async def call(self: Schedules, *args: Any, **kwargs: Any) -> Json:
        return await get_client().send(build(*args, **kwargs))

    def call_sync(self: Schedules, *args: Any, **kwargs: Any) -> Json:
        return get_sync_client().send(build(*args, **kwargs))

    call.__doc__ = call_sync.__doc__ = f"`{name}` (see `ScheduleCalls.{name}` for the arguments)."
    return call, call_sync


class Schedules:
    """`schedules.task` plus `create / retrieve / list / update / delete / activate /
    deactivate / timezones` and their `_sync` twins."""

    create, create_sync = _twins("create")
    retrieve, retrieve_sync = _twins("retrieve")
    list, list_sync = _twins("list")
    update, update_sync = _twins("update")
    delete, delete_sync = _twins("delete")
    activate, activate_sync = _twins("activate")
    deactivate, deactivate_sync = _twins("deactivate")
    timezones, timezones_sync = _twins("timezones")

    @staticmethod
    def task(id: str, *, cron: Crons | None = None, timezone: str = "UTC",
             queue: Queue | str | None = None, retry: Retry | dict[str, Any] | None = None,
             max_duration: Any = None,
             machine: str | None = None) -> Callable[[Callable[..., Any]], Task]:
        """Decorate `fn(payload: ScheduledPayload, ctx)` as a scheduled task. `cron` (one
        expression or a list) declares schedules that indexing keeps in sync."""
        crons = _crons(cron, id)

        def decorate(fn: Callable[..., Any]) -> Task:
            t = ScheduledTask(fn, id=id, queue=queue, retry=retry, max_duration=max_duration,
                              machine=machine)
            t.manifest_extra["schedule"] = {"crons": crons, "timezone": timezone or "UTC"}
            registry.register(t)
            return t

        return decorate


schedules = Schedules()
