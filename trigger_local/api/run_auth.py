"""Run-token checks for the worker routes.

A run token is valid for one attempt. Routes with the attempt in the path check it with no
state at all; the others need the run's current attempt, which is remembered from the
assignment the API handed out, so the hot path does no store read. After a daemon restart
(nothing remembered) the run is read once."""

from __future__ import annotations

from starlette.requests import Request

from ..engine import Engine
from ..errors import AuthenticationError, ConflictError, NotFoundError
from . import auth

#: runs remembered at once; far more than can be executing or held
MAX_REMEMBERED = 50_000


class RunAuth:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._attempts: dict[str, int] = {}

    def remember(self, run_id: str, attempt: int) -> None:
        self._attempts.pop(run_id, None)
        self._attempts[run_id] = attempt
        if len(self._attempts) > MAX_REMEMBERED:
            self._attempts.pop(next(iter(self._attempts)))

    def forget(self, run_id: str) -> None:
        self._attempts.pop(run_id, None)

    def _is_secret(self, token: str) -> bool:
        return bool(token) and auth.same(token, self.secret)

    def check_attempt(self, request: Request, run_id: str, attempt: int) -> None:
        """The token must be attempt `attempt`'s (whether that attempt is current is the engine's
        check)."""
        self.check_attempt_token(auth.bearer(request), run_id, attempt)

    def check_attempt_token(self, token: str, run_id: str, attempt: int) -> None:
        if not (auth.same(token, auth.run_token(self.secret, run_id, attempt))
                or self._is_secret(token)):
            raise AuthenticationError("Invalid run token")

    async def check(self, request: Request, engine: Engine, run_id: str) -> int | None:
        """The token must be the current attempt's; returns that attempt's number.

        A token of an earlier attempt gets 409 (the process must drop the run), anything else
        401."""
        return await self.check_token(auth.bearer(request), engine, run_id)

    async def check_token(self, token: str, engine: Engine, run_id: str) -> int | None:
        """`check` for a token that came another way (a channel frame, api/channel.py)."""
        known = self._attempts.get(run_id)
        if known is not None and auth.same(token, auth.run_token(self.secret, run_id, known)):
            return known
        run = await engine.queries.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        current = run.attempt_count
        if self._is_secret(token):
            return current or None
        if current and auth.same(token, auth.run_token(self.secret, run_id, current)):
            self.remember(run_id, current)
            return current
        if any(auth.same(token, auth.run_token(self.secret, run_id, n)) for n in range(1, current)):
            raise ConflictError(f"This attempt of run {run_id} is no longer current (the run is on "
                                f"attempt {current}); drop the run")
        raise AuthenticationError("Invalid run token")
