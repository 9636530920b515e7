"""Duration strings and absolute times, as Trigger.dev accepts them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from trigger_local.durations import iso, parse_duration, parse_time
from trigger_local.errors import ValidationError
from trigger_local.strict_json import shown

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("value", "seconds"), [
    (0, 0.0), (5, 5.0), (2.5, 2.5), ("30", 30.0), ("1.5", 1.5),
    ("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("3d", 259200.0),
    ("1w", 604800.0),
    ("1h30m", 5400.0), ("1m5s", 65.0), ("1.5h", 5400.0), (" 10S ", 10.0), ("1d2h3m4s", 93784.0),
])
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", " ", "soon", "10x", "-5s", "5s10", "s", "1h 30m", "h1", True,
                                   -1])
def test_bad_durations_name_the_value_and_the_forms(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(value, what="ttl")  # type: ignore[arg-type]
    assert info.value.message.startswith("Invalid ttl")
    assert shown(value) in info.value.message  # as JSON writes it: "soon", true


def test_parse_time_relative_to_now() -> None:
    assert parse_time("10m", NOW) == NOW + 600
    assert parse_time(30, NOW) == NOW + 30


def test_parse_time_absolute() -> None:
    assert parse_time("2024-12-01T00:00:00Z", NOW) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    assert parse_time("2024-12-01T00:00:00", NOW) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    assert parse_time("2024-12-01", NOW) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    plus_two = timezone(timedelta(hours=2))
    midnight = datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    assert parse_time("2024-12-01T02:00:00+02:00", NOW) == midnight
    assert parse_time(datetime(2024, 12, 1, 2, tzinfo=plus_two),
                      NOW) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()
    assert parse_time(datetime(2024, 12, 1), NOW) == datetime(2024, 12, 1, tzinfo=UTC).timestamp()


def test_parse_time_refuses_a_bad_date() -> None:
    with pytest.raises(ValidationError, match="Invalid delay"):
        parse_time("2024-13-45T00:00:00Z", NOW)
    with pytest.raises(ValidationError, match="Invalid wait"):
        parse_time("later", NOW, what="wait")


def test_iso() -> None:
    assert iso(None) is None
    assert iso(datetime(2024, 12, 1, 8, 30, 5, 123456,
                        tzinfo=UTC).timestamp()) == "2024-12-01T08:30:05.123Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z"
