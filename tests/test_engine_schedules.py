"""Schedules under a fake clock: validation, ticks and their payload, upserts, missed-tick
policies, a tick fired once across a restart, declarative sync, and DST."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.engine_support import ProbeExecutor
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine
from trigger_local.engine.schedules import ScheduleSpec
from trigger_local.errors import NotFoundError, ValidationError
from trigger_local.store import Store
from trigger_local.store.models import PENDING_VERSION, QUEUED, TaskDef, Version

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MINUTE = 60.0


def version(n: int = 1, crons: list[str] | None = None, tz: str = "UTC") -> Version:
    return Version(id=f"version_{n}", project_dir="/proj", created_at=T0, tasks=[
        TaskDef(task_id="cron-task", queue="task/cron-task",
                schedule={"crons": [], "timezone": "UTC"}),
        TaskDef(task_id="decl", queue="task/decl", schedule={"crons": crons or [], "timezone": tz}),
        TaskDef(task_id="plain", queue="task/plain")])


@pytest.fixture
async def engine(store: Store, clock: FakeClock, settings: DaemonSettings) -> Engine:
    eng = Engine(store, clock, settings)
    await eng.register_version(version())
    return eng


async def scheduled_runs(engine: Engine) -> list[dict]:
    runs = await engine.queries.runs.page(task_ids=["cron-task", "decl"], limit=1000)
    return sorted((json.loads(r.payload) for r in runs), key=lambda p: p["timestamp"])


async def fire(engine: Engine, clock: FakeClock, at: float) -> int:
    clock.set(at)
    return await engine.tick_timers()


@pytest.mark.parametrize(("spec", "message"), [
    (ScheduleSpec("cron-task", "61 * * * *"), "Invalid cron expression"),
    (ScheduleSpec("cron-task", "* * *"), "Invalid cron expression"),
    (ScheduleSpec("cron-task", "* * * * *", timezone="Mars/Olympus"),
     "Invalid IANA timezone: 'Mars/Olympus'"),
    (ScheduleSpec("plain", "* * * * *"), "plain is not a scheduled task"),
    (ScheduleSpec("nope", "* * * * *"), "Task with identifier nope not found in project."),
    (ScheduleSpec("cron-task", "* * * * *", missed_policy="sometimes"), "Invalid missed policy"),
])
async def test_invalid_schedule_is_refused_and_not_stored(engine: Engine, spec: ScheduleSpec,
                                                          message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        await engine.create_schedule(spec)
    assert (await engine.list_schedules())[1] == 0


async def test_tick_triggers_a_run_with_the_scheduled_payload(engine: Engine,
                                                              clock: FakeClock) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "*/5 * * * *", external_id="user_1"))
    first = 1_700_000_100.0  # 22:15:00Z
    assert s.next_run_at == first
    assert await engine.queries.timers.next_due_at() == first  # the dispatcher sleeps until then
    assert await fire(engine, clock, first - 1) == 0
    assert await fire(engine, clock, first) == 1
    await fire(engine, clock, first + 5 * MINUTE)
    p1, p2 = await scheduled_runs(engine)
    assert p1 == {"type": "IMPERATIVE", "scheduleId": s.id, "timestamp": "2023-11-14T22:15:00.000Z",
                  "timezone": "UTC", "externalId": "user_1",
                  "upcoming": [f"2023-11-14T22:{m}:00.000Z" for m in (20, 25, 30, 35, 40)]}
    assert p2["lastTimestamp"] == "2023-11-14T22:15:00.000Z" \
        and p2["timestamp"] == "2023-11-14T22:20:00.000Z"
    assert (await engine.get_schedule(s.id)).next_run_at == first + 10 * MINUTE


async def test_same_deduplication_key_updates_the_schedule(engine: Engine) -> None:
    a = await engine.create_schedule(ScheduleSpec("cron-task", "0 * * * *", deduplication_key="k"))
    b = await engine.create_schedule(ScheduleSpec("cron-task", "30 * * * *", deduplication_key="k",
                                                  timezone="Europe/Paris"))
    assert a.id == b.id
    items, total = await engine.list_schedules()
    assert total == 1 and items[0].cron == "30 * * * *" and items[0].timezone == "Europe/Paris"


@pytest.mark.parametrize(("policy", "late_s", "expected"), [
    ("latest", 30, 1), ("all", 30, 10), ("skip", 30, 1), ("latest", 50, 1), ("skip", 0, 1)])
async def test_missed_ticks_follow_the_schedules_policy(engine: Engine, clock: FakeClock,
                                                        policy: str,
                                                        late_s: float, expected: int) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *", missed_policy=policy))
    assert s.next_run_at is not None
    # the daemon was down for ten ticks; it comes back `late_s` after the last one
    await fire(engine, clock, s.next_run_at + 9 * MINUTE + late_s)
    payloads = await scheduled_runs(engine)
    assert len(payloads) == expected
    assert payloads[-1]["timestamp"] == "2023-11-14T22:23:00.000Z"
    assert (await engine.get_schedule(s.id)).next_run_at == s.next_run_at + 10 * MINUTE


async def test_skip_policy_drops_ticks_older_than_the_grace(engine: Engine,
                                                            clock: FakeClock) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "*/10 * * * *",
                                                  missed_policy="skip"))
    assert s.next_run_at is not None
    await fire(engine, clock, s.next_run_at + 5 * MINUTE)  # its only due tick is 5 minutes old
    assert await scheduled_runs(engine) == []
    assert (await engine.get_schedule(s.id)).next_run_at == s.next_run_at + 10 * MINUTE


async def test_a_tick_fires_once_even_if_replayed_after_a_restart(engine: Engine, clock: FakeClock,
                                                                  store: Store,
                                                                  settings: DaemonSettings) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *"))
    assert s.next_run_at is not None
    await fire(engine, clock, s.next_run_at)
    # a restarted daemon that somehow sees the tick as due again (e.g. an older copy of the row)
    restarted = Engine(store, clock, settings)
    await restarted.load()
    async with store.tx() as ops:
        await ops.schedules.update(s.id, next_run_at=s.next_run_at)
    await restarted.tick_timers()
    assert len(await scheduled_runs(restarted)) == 1


async def test_deactivated_schedule_fires_nothing_and_activation_skips_the_gap(
        engine: Engine, clock: FakeClock) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *"))
    off = await engine.set_schedule_active(s.id, False)
    assert not off.active and off.next_run_at is None
    assert await engine.queries.timers.next_due_at() is None
    await fire(engine, clock, T0 + 10 * MINUTE)
    on = await engine.set_schedule_active(s.id, True)
    assert on.next_run_at == 1_700_000_640.0
    await fire(engine, clock, on.next_run_at)
    assert len(await scheduled_runs(engine)) == 1


async def test_declarative_schedules_follow_indexing(engine: Engine, clock: FakeClock) -> None:
    await engine.register_version(version(2, ["0 9 * * 1-5", "0 10 * * 0,6"], "Europe/Paris"))
    items, total = await engine.list_schedules()
    assert total == 2 and {s.cron for s in items} == {"0 9 * * 1-5", "0 10 * * 0,6"}
    assert all(s.type == "DECLARATIVE" and s.timezone == "Europe/Paris" for s in items)
    with pytest.raises(ValidationError, match="Cannot update a declarative schedule"):
        await engine.update_schedule(items[0].id, ScheduleSpec("decl", "* * * * *"))
    with pytest.raises(ValidationError, match="Cannot delete a declarative schedule"):
        await engine.delete_schedule(items[0].id)
    await engine.register_version(version(3, ["0 8 * * *"]))
    items, total = await engine.list_schedules()
    assert total == 1 and items[0].cron == "0 8 * * *" and items[0].timezone == "UTC"
    await engine.register_version(version(4))
    assert (await engine.list_schedules())[1] == 0


async def test_scheduled_run_of_an_unindexed_task_waits_for_a_version(engine: Engine,
                                                                      clock: FakeClock) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *"))
    # the task leaves the index: in memory, and in the store, which a trigger that finds no
    # task reads again (a version registered meanwhile, engine/versions.py)
    engine.projects.current.clear()
    async with engine.store.tx() as tx:
        await tx.versions.insert(Version(id="version_later", project_dir="/proj",
                                         created_at=T0 + 1, tasks=[]))
    assert s.next_run_at is not None
    await fire(engine, clock, s.next_run_at)
    runs = await engine.queries.runs.page(task_ids=["cron-task"])
    assert [r.status for r in runs] == [PENDING_VERSION]


async def test_delete_and_unknown_ids(engine: Engine) -> None:
    s = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *"))
    await engine.delete_schedule(s.id)
    with pytest.raises(NotFoundError, match="Schedule not found"):
        await engine.get_schedule(s.id)


def _local(tz: str, *args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()


async def test_dst_spring_forward_0230_fires_at_0300_local(engine: Engine,
                                                           clock: FakeClock) -> None:
    # Europe/Paris, 2024-03-31: clocks jump from 02:00 to 03:00, so 02:30 does not exist
    clock.set(_local("Europe/Paris", 2024, 3, 30, 12, 0))
    s = await engine.create_schedule(ScheduleSpec("cron-task", "30 2 * * *",
                                                  timezone="Europe/Paris"))
    assert s.next_run_at == _local("Europe/Paris", 2024, 3, 31, 3, 0) == 1711846800.0
    await fire(engine, clock, s.next_run_at)
    assert (await engine.get_schedule(s.id)).next_run_at \
        == _local("Europe/Paris", 2024, 4, 1, 2, 30)


async def test_dst_fall_back_0130_fires_once(engine: Engine, clock: FakeClock) -> None:
    # America/New_York, 2024-11-03: 01:00–02:00 happens twice; a fixed 01:30 fires in the first
    # pass only
    clock.set(_local("America/New_York", 2024, 11, 2, 12, 0))
    s = await engine.create_schedule(ScheduleSpec("cron-task", "30 1 * * *",
                                                  timezone="America/New_York"))
    assert s.next_run_at == 1730611800.0  # 01:30 EDT = 05:30Z
    await fire(engine, clock, s.next_run_at)
    after = (await engine.get_schedule(s.id)).next_run_at
    # not 06:30Z (01:30 EST) the same night
    assert after == _local("America/New_York", 2024, 11, 4, 1, 30)
    assert len(await scheduled_runs(engine)) == 1
    assert [r.status for r in await engine.queries.runs.page(task_ids=["cron-task"])] == [QUEUED]


class FirstOfferExecutor(ProbeExecutor):
    """An executor that starts nothing and notes how many runs existed when the dispatcher first
    offered it one: every scheduled run must exist by then, however many share the tick."""

    room = 1

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.runs_at_first_offer: int | None = None

    async def assign(self, run: object) -> bool:
        if self.runs_at_first_offer is None:
            self.runs_at_first_offer = len(await self.engine.queries.runs.page(limit=5000))
        return False


async def test_every_schedule_of_a_tick_fires_before_any_run_is_started(engine: Engine,
                                                                        clock: FakeClock) -> None:
    # more than two of tick_timers' 500-schedule batches on one tick (the 1,000-schedule benchmark)
    for i in range(1001):
        await engine.create_schedule(ScheduleSpec("cron-task", "*/5 * * * *",
                                                  deduplication_key=f"k{i}"))
    executor = FirstOfferExecutor(engine)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    clock.set(1_700_000_100.0)  # 22:15:00Z, a */5 tick
    await dispatcher.tick()
    assert executor.runs_at_first_offer == 1001
