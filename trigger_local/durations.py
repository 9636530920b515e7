"""Duration strings (`30s`, `10m`, `2h`, `3d`, `1w`) and absolute times, as Trigger.dev
accepts them.

Every duration is at most `limits.MAX_DURATION_S` (10 years) and every date within that of now,
so what is stored always formats as a date (`iso`)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from .errors import ValidationError
from .limits import MAX_DURATION_S
from .strict_json import shown

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


_TOO_LONG = "at most 10 years (315360000 seconds)"


def parse_duration(value: str | int | float, *, what: str = "duration") -> float:
    """Seconds in `value`: a number of seconds, or a string like `90s`, `10m`, `1h30m`.

    Raises ValidationError naming the bad value and the accepted forms, or the limit.
    """
    seconds = _parse_duration(value, what)
    if seconds > MAX_DURATION_S:
        raise ValidationError(f"Invalid {what} {shown(value)}: must be {_TOO_LONG}")
    return seconds


def _parse_duration(value: str | int | float, what: str) -> float:
    if isinstance(value, bool):  # a bool is an int to Python, but no duration
        raise ValidationError(f"Invalid {what} {shown(value)}: use a number of seconds or a string "
                              "like 30s, 10m, 2h, 3d, 1w")
    if isinstance(value, int | float):
        # float() of a huge int overflows
        if isinstance(value, int) and abs(value) > MAX_DURATION_S:
            raise ValidationError(f"Invalid {what} {shown(value)}: must be {_TOO_LONG}")
        if not math.isfinite(value):
            raise ValidationError(f"Invalid {what} {shown(value)}: must be a finite number of "
                                  "seconds")
        if value < 0:
            raise ValidationError(f"Invalid {what} {shown(value)}: must not be negative")
        return float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):  # plain digits: never nan/inf
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValidationError(
            f"Invalid {what} {shown(value)}: use a number of seconds or a string like 30s, 10m, "
            "2h, 3d, 1w"
        )
    return total


def parse_time(value: str | int | float | datetime, now: float, *, what: str = "delay") -> float:
    """An epoch time from a duration (relative to `now`), an ISO-8601 string, or a datetime.

    Raises ValidationError for anything else, and for dates before 1970 or more than 10 years
    from now."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return check_time(value.timestamp(), now, what=what, written=value.isoformat())
    if isinstance(value, str) and ("T" in value or "-" in value[1:]):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(
                f"Invalid {what} {shown(value)}: not a duration or an ISO date") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return check_time(dt.timestamp(), now, what=what, written=value)
    return now + parse_duration(value, what=what)


def check_time(at: float, now: float, *, what: str = "time", written: str | None = None) -> float:
    """`at` (epoch seconds) if it is from 1970 to 10 years after `now` (a past time means "now"
    to every caller); ValidationError otherwise, with the time as `written` by the caller."""
    if isinstance(at, bool) or not isinstance(at, int | float) or \
            (isinstance(at, int) and abs(at) > 2**53) or not math.isfinite(at) or \
            not 0 <= at <= now + MAX_DURATION_S:
        raise ValidationError(f"Invalid {what} {written or shown(at)}: must be a date from 1970 to "
                              "10 years from now")
    return float(at)


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, as Trigger.dev's API returns dates.

    Never raises: a time no date can show (stored before the limits, or hand-edited) is shown
    as the nearest date there is, and NaN as None, so one bad row cannot break a listing."""
    if ts is None or ts != ts:
        return None
    try:
        dt = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        dt = datetime.max.replace(tzinfo=UTC) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
