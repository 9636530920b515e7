"""The SDK side of schedules, rate limits and debounce: what the manifest carries, the payload a
scheduled task receives, and the wire form of the options."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_runtime_daemon_stub import registry_cleared  # noqa: F401 (clean_registry, autouse)

from trigger_local import ScheduledPayload, queue, schedules, task
from trigger_local.errors import ValidationError
from trigger_local.sdk.options import trigger_options


def test_schedules_task_manifest_carries_its_crons() -> None:
    @schedules.task(id="daily", cron=["0 9 * * 1-5", "0  10 * * 0,6"], timezone="Europe/Paris")
    async def daily(payload: ScheduledPayload) -> None: ...

    @schedules.task(id="imperative-only")
    async def other(payload: ScheduledPayload) -> None: ...

    assert daily.manifest()["schedule"] == {"crons": ["0 9 * * 1-5", "0 10 * * 0,6"],
                                            "timezone": "Europe/Paris"}
    assert other.manifest()["schedule"] == {"crons": [], "timezone": "UTC"}


def test_invalid_cron_fails_at_import() -> None:
    with pytest.raises(ValidationError, match="invalid cron"):
        schedules.task(id="bad", cron="every day")


def test_scheduled_task_receives_a_scheduled_payload() -> None:
    @schedules.task(id="tick")
    def tick(payload: ScheduledPayload) -> None: ...

    wire = {"type": "IMPERATIVE", "scheduleId": "sched_1", "timestamp": "2024-01-01T03:00:00.000Z",
            "lastTimestamp": "2023-12-31T03:00:00.000Z", "timezone": "UTC", "externalId": "u1",
            "upcoming": ["2024-01-02T03:00:00.000Z"]}
    payload = tick.parse_payload(wire)
    assert isinstance(payload, ScheduledPayload)
    assert payload.timestamp == datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert payload.last_timestamp == datetime(2023, 12, 31, 3, tzinfo=UTC)
    assert (payload.schedule_id, payload.external_id, len(payload.upcoming)) == ("sched_1", "u1", 1)


def test_rate_limit_on_a_task_or_its_queue() -> None:
    @task(id="own", rate_limit={"limit": 100, "period": "1m"})
    def own(payload: object) -> None: ...

    shared = queue("emails", rate_limit={"limit": 5, "period": "1s", "per_key": True})

    @task(id="mailer", queue=shared)
    def mailer(payload: object) -> None: ...

    assert own.manifest()["rate_limit"] == {"limit": 100, "period_s": 60.0, "per_key": False}
    assert mailer.manifest()["rate_limit"] == {"limit": 5, "period_s": 1.0, "per_key": True}


def test_debounce_option_goes_out_in_camel_case() -> None:
    options = trigger_options({"debounce": {"key": "u1", "delay": 5, "mode": "trailing",
                                            "max_delay": "1m"}})
    assert options["debounce"] == {"key": "u1", "delay": "5s", "mode": "trailing", "maxDelay": "1m"}
