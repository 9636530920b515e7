"""Duration strings (`30s`, `10m`, `2h`, `3d`, `1w`) and absolute times, as Trigger.dev accepts them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import ValidationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | int | float, *, what: str = "duration") -> float:
    """Seconds in `value`: a number of seconds, or a string like `90s`, `10m`, `1h30m`.

    Raises ValidationError naming the bad value and the accepted forms.
    """
    if isinstance(value, bool):
        raise ValidationError(f"Invalid {what} {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"Invalid {what} {value!r}: must be a finite number of seconds")
        if value < 0:
            raise ValidationError(f"Invalid {what} {value!r}: must not be negative")
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
            f"Invalid {what} {value!r}: use a number of seconds or a string like 30s, 10m, 2h, 3d, 1w"
        )
    return total


def parse_time(value: str | int | float | datetime, now: float, *, what: str = "delay") -> float:
    """An epoch time from a duration (relative to `now`), an ISO-8601 string, or a datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str) and ("T" in value or "-" in value[1:]):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(f"Invalid {what} {value!r}: not a duration or an ISO date") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return now + parse_duration(value, what=what)


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, as Trigger.dev's API returns dates."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
