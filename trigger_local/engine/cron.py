"""Cron arithmetic for schedules: validation, the next ticks in a timezone, and a short
human description. Pure functions of their arguments (time is passed in), so tests pin DST.

Rules (docs/schedules.md):
- 5 fields (minute hour day month weekday), or 6 with seconds as the *last* field (croniter's
  convention; a local extension — Trigger.dev has no seconds).
- Ticks are computed by croniter on an aware datetime in the schedule's IANA timezone.
- Spring forward: a wall time that does not exist (02:30 when clocks jump 02:00→03:00) fires
  once at the first existing instant after it (03:00 local).
- Fall back: a wall time that happens twice (01:30 when clocks go 02:00→01:00) fires once, at
  the first occurrence, when the hour field is fixed; sub-hourly crons (`*/15 * * * *`, hour
  `*`) fire in both passes, since real time elapses in each.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter

from ..errors import ValidationError

_BAD = (CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, ValueError, KeyError)
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def validate_cron(expression: object) -> str:
    """The normalised expression; ValidationError (422) with the reason otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("Invalid cron expression: a cron expression is required")
    expr = " ".join(expression.split())
    if len(expr.split(" ")) not in (5, 6):
        raise ValidationError(f"Invalid cron expression: '{expr}' must have 5 fields "
                              "(minute hour day-of-month month day-of-week), or 6 with seconds "
                              "last")
    try:
        croniter(expr, datetime(2024, 1, 1, tzinfo=UTC))
    except _BAD as exc:
        raise ValidationError(f"Invalid cron expression: {exc}") from None
    return expr


@lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def validate_timezone(name: object) -> str:
    if name is None or name == "":
        return "UTC"
    if not isinstance(name, str):
        raise ValidationError(f"Invalid IANA timezone: '{name}'")
    try:
        zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Invalid IANA timezone: '{name}'") from None
    return name


def timezones(exclude_utc: bool = False) -> list[str]:
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n or n == "UTC")
    if exclude_utc:
        return [n for n in names if n != "UTC"]
    return names if "UTC" in names else ["UTC", *names]


def _repeated_wall_time(dt: datetime) -> bool:
    """True for the second pass of an ambiguous local time (fold=1 with another offset)."""
    return dt.fold == 1 and dt.replace(fold=0).utcoffset() != dt.utcoffset()


def next_ticks(expression: str, tz_name: str, after: float, count: int = 1) -> list[float]:
    """The next `count` tick times (epoch seconds) strictly after `after`."""
    return list(_next_ticks(expression, tz_name, after, count))


def ticks_between(expression: str, tz_name: str, first: float, now: float, cap: int) -> list[float]:
    """The last `cap` tick times in [first, now], oldest first. Walks back from `now`, so a
    daemon that was down for a month does not replay a month of minutes to find the latest."""
    return list(_ticks_between(expression, tz_name, first, now, cap))


# Pure functions of their arguments, and croniter is slow (~0.8 ms a step here): schedules that
# share a cron and a timezone (1,000 of them firing on one tick, in the benchmark) share the work.
@functools.lru_cache(maxsize=4096)
def _next_ticks(expression: str, tz_name: str, after: float, count: int) -> tuple[float, ...]:
    tz = zone(tz_name)
    it = croniter(expression, datetime.fromtimestamp(after, tz))
    fixed_hour = expression.split(" ")[1] != "*"
    out: list[float] = []
    while len(out) < count:
        dt = it.get_next(datetime)
        if fixed_hour and _repeated_wall_time(dt):
            continue
        ts = dt.timestamp()
        if ts > after:
            out.append(ts)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _ticks_between(expression: str, tz_name: str, first: float, now: float,
                   cap: int) -> tuple[float, ...]:
    tz = zone(tz_name)
    it = croniter(expression, datetime.fromtimestamp(now + 0.001, tz))
    fixed_hour = expression.split(" ")[1] != "*"
    out: list[float] = []
    while len(out) < cap:
        dt = it.get_prev(datetime)
        if fixed_hour and _repeated_wall_time(dt):
            continue
        ts = dt.timestamp()
        if ts < first - 0.0005:
            break
        out.append(ts)
    return tuple(out[::-1])


def describe(expression: str) -> str:
    """A short English description of common shapes; the expression itself otherwise."""
    fields = expression.split(" ")
    if len(fields) == 6:
        return f"Cron '{expression}' (with seconds)"
    minute, hour, dom, month, dow = fields
    every_day = dom == "*" and month == "*"
    if every_day and dow == "*":
        if minute == "*" and hour == "*":
            return "Every minute"
        if minute.startswith("*/") and hour == "*":
            return f"Every {minute[2:]} minutes"
        if minute.isdigit() and hour == "*":
            return f"At {int(minute)} minutes past every hour"
    if minute.isdigit() and hour.isdigit() and dom == "*" and month == "*":
        at = f"At {int(hour):02d}:{int(minute):02d}"
        if dow == "*":
            return f"{at} every day"
        if dow.isdigit() and int(dow) <= 7:
            return f"{at}, only on {_DAYS[int(dow) % 7]}"
        return f"{at}, on days of the week {dow}"
    return f"Cron '{expression}'"

