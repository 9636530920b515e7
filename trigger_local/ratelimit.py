"""Rate limits: the option's shape, and GCRA, the algorithm that enforces it.

GCRA (the generic cell rate algorithm) keeps one number per (queue, key): the theoretical
arrival time `tat`. With `limit` starts per `period`, each start costs an emission interval
`T = period / limit`; a start at `now` is allowed when `max(tat, now) - now <= period - T`,
i.e. a full `limit` may start at once (the burst) and after that one every `T`. It is a
sliding window without storing one row per start, and it says exactly when the next start is
allowed (`tat - (period - T)`), which is what the dispatcher's single timer needs.

Shared by the SDK (to check a decorator's option early) and the engine (the enforcement).
"""

from __future__ import annotations

from typing import Any

from .durations import parse_duration
from .errors import ValidationError


def parse_rate_limit(value: Any) -> dict[str, Any] | None:
    """`{"limit": 100, "period": "1m", "per_key": False}` → `{"limit", "period_s", "per_key"}`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("rate_limit must be a dict like {'limit': 100, 'period': '1m'}, "
                              f"not {value!r}")
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("rate_limit.limit must be a whole number of at least 1, not "
                              f"{limit!r}")
    period = value.get("period_s", value.get("period"))
    if period is None:
        raise ValidationError("rate_limit.period is required (e.g. '1m' or 60)")
    period_s = parse_duration(period, what="rate_limit.period")
    if period_s <= 0:
        raise ValidationError("rate_limit.period must be positive")
    per_key = value.get("per_key", value.get("perKey", False))
    return {"limit": limit, "period_s": period_s, "per_key": bool(per_key)}


def gcra(tat: float | None, now: float, limit: int, period_s: float) -> tuple[bool, float]:
    """One start attempt at `now`: (allowed, new tat) if allowed, else (False, allowed_at)."""
    interval = period_s / limit
    start = max(tat if tat is not None else now, now)
    if start - now > period_s - interval + 1e-9:
        return False, start - (period_s - interval)
    return True, start + interval
