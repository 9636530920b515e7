"""`/api/v1/schedules` and `/api/v1/timezones` on the in-process app (TRIGGER_API.md §8)."""

from __future__ import annotations

import httpx
import pytest

from trigger_local.api.app import create_app
from trigger_local.engine import Engine
from trigger_local.store.models import TaskDef, Version

T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
async def scheduled_version(engine: Engine) -> None:
    await engine.register_version(Version(id="version_1", project_dir="/proj", created_at=T0,
                                          tasks=[
        TaskDef(task_id="cron-task", queue="task/cron-task",
                schedule={"crons": [], "timezone": "UTC"}),
        TaskDef(task_id="hello", queue="task/hello")]))


async def create(api: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await api.post("/api/v1/schedules",
                          json={"task": "cron-task", "cron": "0 * * * *", **body})


async def test_create_answers_a_schedule_object(api: httpx.AsyncClient) -> None:
    r = await create(api, deduplicationKey="hourly", externalId="user_1", timezone="Europe/Paris")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("sched_")
    assert {k: body[k] for k in ("type", "task", "active", "deduplicationKey", "externalId",
                                 "timezone")} == {
        "type": "IMPERATIVE", "task": "cron-task", "active": True, "deduplicationKey": "hourly",
        "externalId": "user_1", "timezone": "Europe/Paris"}
    assert body["generator"] == {"type": "CRON", "expression": "0 * * * *",
                                 "description": "At 0 minutes past every hour"}
    assert body["nextRun"] == "2023-11-14T23:00:00.000Z"
    assert "window" not in body and body["environments"][0]["type"] == "DEVELOPMENT"
    again = await create(api, deduplicationKey="hourly", cron="30 * * * *")
    assert again.json()["id"] == body["id"] \
        and again.json()["generator"]["expression"] == "30 * * * *"


@pytest.mark.parametrize(("body", "message"), [
    ({"cron": "every day"}, "Invalid cron expression"),
    ({"timezone": "Nowhere/Land"}, "Invalid IANA timezone: 'Nowhere/Land'"),
    ({"task": "hello"}, "Task with identifier hello is not a scheduled task."),
    ({"task": "missing"}, "Task with identifier missing not found in project."),
    ({"missedPolicy": "weird"}, 'Invalid missed policy "weird"'),  # JSON's words, not 'weird'
])
async def test_invalid_schedules_are_422_and_not_stored(api: httpx.AsyncClient, body: dict,
                                                        message: str) -> None:
    r = await create(api, **body)
    assert r.status_code == 422 and message in r.json()["error"]
    assert (await api.get("/api/v1/schedules")).json()["pagination"]["count"] == 0


async def test_a_long_unknown_task_id_is_cut_in_the_422(api: httpx.AsyncClient) -> None:
    r = await create(api, task="t" * 5000)
    assert r.status_code == 422
    assert r.json()["error"] == f"Task with identifier {'t' * 128}… not found in project."


async def test_malformed_body_is_400_with_issues(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/schedules", json={"cron": 5})
    assert r.status_code == 400
    assert r.json()["error"] == "Invalid request body"
    assert {tuple(i["path"]) for i in r.json()["issues"]} == {("task",), ("cron",)}


async def test_list_pages_and_lifecycle(api: httpx.AsyncClient) -> None:
    ids = [(await create(api, deduplicationKey=f"k{i}")).json()["id"] for i in range(3)]
    page = (await api.get("/api/v1/schedules", params={"page": 2, "perPage": 2})).json()
    assert page["pagination"] == {"currentPage": 2, "totalPages": 2, "count": 3}
    # oldest first; the fake clock gives them one created_at, so ids break the tie (two ids of
    # one millisecond are not in creation order: trigger_local/ids.py)
    assert [s["id"] for s in page["data"]] == sorted(ids)[2:]
    off = (await api.post(f"/api/v1/schedules/{ids[0]}/deactivate")).json()
    assert off["active"] is False and off["nextRun"] is None
    assert (await api.post(f"/api/v1/schedules/{ids[0]}/activate")).json()["active"] is True
    updated = await api.put(f"/api/v1/schedules/{ids[0]}",
                            json={"task": "cron-task", "cron": "*/5 * * * *"})
    assert updated.status_code == 200 \
        and updated.json()["generator"]["description"] == "Every 5 minutes"
    assert (await api.get(f"/api/v1/schedules/{ids[0]}")).json()["generator"]["expression"] \
        == "*/5 * * * *"
    assert (await api.delete(f"/api/v1/schedules/{ids[0]}")).json() == {"id": ids[0]}
    missing = await api.get(f"/api/v1/schedules/{ids[0]}")
    assert missing.status_code == 404 and missing.json()["error"] == "Schedule not found"


async def test_timezones_need_no_key(services: object) -> None:
    transport = httpx.ASGITransport(app=create_app(services))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon.test") as anonymous:
        zones = (await anonymous.get("/api/v1/timezones")).json()["timezones"]
        assert "UTC" in zones and "Europe/Paris" in zones
        no_utc = (await anonymous.get("/api/v1/timezones",
                                      params={"excludeUtc": "true"})).json()["timezones"]
        assert "UTC" not in no_utc
        assert (await anonymous.get("/api/v1/schedules")).status_code == 401


async def test_a_scheduled_run_names_its_schedule(api: httpx.AsyncClient, engine: Engine) -> None:
    schedule = (await create(api, deduplicationKey="hourly", externalId="user_1")).json()
    await create(api, deduplicationKey="other")
    engine.clock.set(T0 + 3600)  # type: ignore[attr-defined]  # 23:13Z: the 23:00 tick is due
    assert await engine.tick_timers() == 2
    runs = (await api.get("/api/v1/runs",
                          params={"filter[schedule]": schedule["id"]})).json()["data"]
    assert len(runs) == 1 and runs[0]["taskKind"] == "SCHEDULED"
    body = (await api.get(f"/api/v3/runs/{runs[0]['id']}")).json()
    assert body["schedule"] == {"id": schedule["id"], "externalId": "user_1",
                                "deduplicationKey": "hourly",
                                "generator": {"type": "CRON", "expression": "0 * * * *",
                                              "description": "At 0 minutes past every hour"}}
    await api.delete(f"/api/v1/schedules/{schedule['id']}")
    assert "schedule" not in (await api.get(f"/api/v3/runs/{runs[0]['id']}")).json()
    manual = (await api.post("/api/v1/tasks/hello/trigger", json={"payload": {}})).json()
    plain = (await api.get(f"/api/v3/runs/{manual['id']}")).json()
    assert plain["taskKind"] == "STANDARD" and "schedule" not in plain
