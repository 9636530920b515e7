"""The management client's answer to a database that does not answer (docs/scaling.md, "When
the database does not answer"): the daemon says 503 `database_unavailable` when PostgreSQL
could not be reached or refused the request's transaction fifty times in a row, and nothing of
the request was committed. So `ApiClient` and `SyncApiClient` send the same request again, after
a pause that grows from 0.1 s to 1 s, for up to `RETRY_FOR_S` (a server's restart, a failover),
and only then raise `DatabaseUnavailableError`. Any other answer is returned at once; a daemon
that does not answer at all is `DaemonNotRunningError` at once, as before."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import DatabaseUnavailableError

if TYPE_CHECKING:
    import httpx

#: how long a request answered `database_unavailable` is sent again before the error is raised
RETRY_FOR_S = 30.0
_FIRST_PAUSE_S, _MAX_PAUSE_S = 0.1, 1.0


def unavailable(response: httpx.Response) -> bool:
    """The daemon answered that the database did not answer (nothing was committed)."""
    if response.status_code != DatabaseUnavailableError.status:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == DatabaseUnavailableError.code


class Pauses:
    """The pauses between one request's sends: `next()` is the next one, None once
    `RETRY_FOR_S` has gone by since the first answer."""

    def __init__(self) -> None:
        self._end = time.monotonic() + RETRY_FOR_S
        self._pause = _FIRST_PAUSE_S

    def next(self) -> float | None:
        left = self._end - time.monotonic()
        if left <= 0:
            return None
        pause, self._pause = min(self._pause, left), min(self._pause * 2, _MAX_PAUSE_S)
        return pause
