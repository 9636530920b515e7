"""Statuses are defined once (`trigger_local.statuses`) and look the same in the CLI and the
dashboard (`trigger_local.display`): one colour per status, local time everywhere, one symbol
for "no limit"."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from trigger_local import display
from trigger_local.cli import render
from trigger_local.cli.queues import queues_table
from trigger_local.cli.schedules import schedules_table
from trigger_local.display import detail_time, duration_text, limit_text, status_text, table_time
from trigger_local.statuses import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    QUEUED_STATUSES,
    RUNNING_STATUSES,
    RunStatus,
    WaitpointStatus,
)
from tui import runs as tui_runs
from tui import waitpoints as tui_waitpoints

ROOT = Path(__file__).resolve().parent.parent


def printed(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_statuses_are_their_own_names_so_plain_strings_match() -> None:
    assert all(s.name == s.value for s in (*RunStatus, *WaitpointStatus))
    assert "CANCELED" in FINAL_STATUSES and "WAITING" in LIVE_STATUSES  # as read from a row or JSON
    assert set(RunStatus) == FINAL_STATUSES | LIVE_STATUSES and not FINAL_STATUSES & LIVE_STATUSES
    assert QUEUED_STATUSES | RUNNING_STATUSES <= LIVE_STATUSES


def test_every_status_has_one_colour_for_the_cli_and_the_dashboard() -> None:
    assert all(status in display.STATUS_STYLES for status in (*RunStatus, *WaitpointStatus))
    assert render.status_text is tui_runs.status_text is tui_waitpoints.status_text is status_text
    assert status_text("WAITING").style == "yellow" and status_text(None).plain == display.MISSING


def test_statuses_and_their_colours_are_defined_in_one_place() -> None:
    """No second list of statuses or colour table anywhere in the package or the dashboard."""
    homes = {ROOT / "trigger_local" / "statuses.py", ROOT / "trigger_local" / "display.py"}
    found = []
    for path in [*(ROOT / "trigger_local").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]:
        if path in homes:
            continue
        source = path.read_text(encoding="utf-8")
        for pattern in (r"[\"']SYSTEM_FAILURE[\"']", r"[\"']PENDING_VERSION[\"']",
                        r"^\s*STATUS_STYLES\s*="):
            if re.search(pattern, source, re.MULTILINE):
                found.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert found == []


@pytest.fixture
def away_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone that is not UTC, so "local time" is not UTC by accident."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("away_from_utc")
def test_tables_show_the_time_of_day_for_today_and_the_date_otherwise() -> None:
    now = datetime(2025, 3, 4, 15, 0).astimezone()
    assert table_time(now.replace(hour=9, minute=5, second=7).isoformat(), now) == "09:05:07"
    assert table_time((now - timedelta(days=1)).isoformat(), now) == "2025-03-03 15:00"
    assert (table_time(None, now) == display.MISSING
            and table_time("not a date", now) == display.MISSING)
    # the API's UTC "Z" dates are shown in local time
    utc = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert detail_time(utc) == "2025-03-04 15:00:00" and table_time(utc, now) == "15:00:00"


@pytest.mark.parametrize(("ms", "text"), [(None, "-"), (0, "-"), (850, "850ms"), (12_340, "12.3s"),
                                          (245_000, "4m05s"), (7_380_000, "2h03m")])
def test_durations(ms: float | None, text: str) -> None:
    assert duration_text(ms) == text


def test_a_queue_without_a_limit_shows_the_same_symbol_in_the_cli() -> None:
    table = printed(queues_table([{"name": "hello", "type": "task", "concurrencyLimit": None},
                                  {"name": "one", "type": "custom", "concurrencyLimit": 1}]))
    assert limit_text(None) == display.NO_LIMIT and display.NO_LIMIT in table.splitlines()[1]


@pytest.mark.usefixtures("away_from_utc")
def test_schedules_show_their_next_run_in_local_time_like_other_tables() -> None:
    next_run = (datetime.now().astimezone() + timedelta(days=2)).replace(microsecond=0)
    iso_utc = next_run.astimezone(UTC).isoformat().replace("+00:00", "Z")
    row = {"id": "sched_1", "task": "nightly", "type": "DECLARATIVE",
           "generator": {"expression": "0 3 * * *"},
           "timezone": "UTC", "nextRun": iso_utc, "active": True}
    shown = printed(schedules_table([row]))
    assert next_run.strftime("%Y-%m-%d %H:%M") in shown and iso_utc not in shown


def test_the_runs_filter_knows_every_status_word() -> None:
    parsed = tui_runs.parse_filter("waiting hello status:failed")
    assert parsed == ({"status": ["WAITING", "FAILED"]}, "hello")
