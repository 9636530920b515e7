"""`wait`: pause a run for a time, a token, a child run or a batch, without holding a
connection across the pause (docs/worker-protocol.md, "The runtime's side of a wait").

`wait.for_`, `wait.until` and `wait.for_token` work only inside a task run. Token creation,
completion and retrieval also work from app code (through the management client).
Every method has a blocking `_sync` form for synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

from .. import packets
from ..errors import AttemptGone, ChannelClosed
from ..limits import MAX_DURATION_S
from . import local_timers, replay
from .context import Resumed, RunState, current_run, require_run
from .results import Token, WaitResult

POLL_WAIT_S = 5
RESUME_CHECK_S = 120.0  # a waiting run of a shared process reads its wait this often anyway
FREEZE_STEP_S = 0.05  # longest step between two looks for the freeze handshake's done file
FIRST_FREEZE_STEP_S = 0.002  # the first steps are short: a dump refused or skipped is told at once
MAX_FREEZE_QUIET_S = 30.0  # bound on how long a daemon may ask the runtime to stay quiet


async def wait_on(state: RunState, body: dict[str, Any]) -> dict[str, Any]:
    """Block the attempt on a waitpoint and return its WaitResult.

    Logs and metadata are flushed first so nothing is lost if the process is checkpointed.
    Raises `AttemptGone` when the run ended (canceled) while waiting: the runtime then drops
    the attempt without completing it.
    """
    lifecycle = state.lifecycle  # on_wait / on_resume (runtime/lifecycle.py), if any
    if lifecycle is not None:
        # before the flush, so what the hooks log is sent before a checkpoint
        await lifecycle.around_wait("on_wait", body)
    await state.flush()
    if state.gone:
        raise AttemptGone("the attempt is no longer current")
    result = await _wait(state, body)
    if lifecycle is not None:
        await lifecycle.around_wait("on_resume", body)
    return result


async def _wait(state: RunState, body: dict[str, Any]) -> dict[str, Any]:
    answer = await _block(state, body)
    if answer.get("action") == "continue":
        result = answer.get("result") or {}
    else:
        checkpoint = answer.get("action") == "checkpoint"
        if checkpoint:
            # no socket may survive into a checkpoint; each poll then closes its connection
            await state.client.drop_connections()
            await _offer_freeze(state)
        result = await _poll(state, answer["waitpointId"], close=checkpoint,
                             due=local_timers.due_at(state, answer))
    if result.get("final"):
        raise AttemptGone(f"run {state.run_id} ended while waiting ({result.get('status')})")
    return result


async def durable_wait(state: RunState, kind: str, name: str | None,
                       body: dict[str, Any]) -> dict[str, Any]:
    """A wait as a durable call (sdk/replay.py): a completed record's WaitResult at once, else
    `wait_on` with the record, so a replayed wait blocks on the waitpoint its record bound."""
    call, record = state.replay.take(kind, name)
    if record is not None and replay.completed(record):
        state.from_record(call)
        result = packets.decode(record.get("result"), record.get("resultType"))
        return result if isinstance(result, dict) else {}
    return await wait_on(state, {**body, "record": replay.body(call)})


async def _offer_freeze(state: RunState) -> None:
    """The freeze handshake: say we hold no connection, then stay quiet while the daemon dumps
    us. After a restore (or if the dump failed and the run is held) the sleep ends and polling
    starts."""
    answer = await state.call("POST", f"attempts/{state.attempt}/freeze", {}, close=True)
    if not answer.get("freeze"):
        return
    done = answer.get("doneFile")
    if not done:
        await asyncio.sleep(min(float(answer.get("pollAfterS") or 0), MAX_FREEZE_QUIET_S))
        return
    # Quiet until the daemon writes `done` (dump over, seen after the restore; or no dump: it
    # failed, or the wait completed first). Steps grow from 2 to 50 ms: the no-dump answers come
    # within milliseconds, while 200 processes waiting for queued dumps must not spin.
    # Counted in steps, not by a clock: time spent frozen must not count.
    quiet, step = 0.0, FIRST_FREEZE_STEP_S
    while quiet < MAX_FREEZE_QUIET_S and not os.path.exists(done):
        await asyncio.sleep(step)
        quiet, step = quiet + step, min(step * 2, FREEZE_STEP_S)
    with contextlib.suppress(OSError):
        os.unlink(done)


async def _poll(state: RunState, waitpoint_id: str, *, close: bool,
                due: float | None = None) -> dict[str, Any]:
    if state.resumed is not None:
        return await _await_resume(state, state.resumed, waitpoint_id, due)
    while True:
        answer = await state.call("GET", f"waits/{waitpoint_id}", params={"wait_s": POLL_WAIT_S},
                                  read_timeout_s=POLL_WAIT_S, close=close)
        if answer.get("done"):
            return answer.get("result") or {}


async def _await_resume(state: RunState, resumed: asyncio.Event, waitpoint_id: str,
                        due: float | None = None) -> dict[str, Any]:
    """A run in a shared process: no poll of its own. The process's one `next` poll sets
    `resumed` when the daemon gave the run its slot back (or ended it), with the wait's result
    when the daemon sent it along; else one read of the result. A check every RESUME_CHECK_S is
    the safety net for a word lost with a daemon. `due`: the run keeps the wait's timer too,
    and goes on when it fires, if the daemon's word has not come first (sdk/local_timers.py)."""
    while True:
        timeout = RESUME_CHECK_S if due is None else min(RESUME_CHECK_S, due - time.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):  # not wait_for: no task in between
                await resumed.wait()
        if not resumed.is_set() and due is not None and timeout < RESUME_CHECK_S:
            if time.time() >= due:
                return local_timers.fired(state, waitpoint_id, partial(
                    _await_resume, state, resumed, waitpoint_id))
            continue  # woken a hair early (two clocks): wait the rest
        resumed.clear()
        word = None
        if isinstance(resumed, Resumed):
            word, resumed.word = resumed.word, None
        if word is not None and word[0] == waitpoint_id:
            return word[1]
        if word is not None and word[0] in state.own_timers:
            continue  # the daemon's word for a wait the run's own timer ended: nothing new
        answer = await _read_wait(state, waitpoint_id)
        if answer.get("done"):
            return answer.get("result") or {}


async def _block(state: RunState, body: dict[str, Any]) -> dict[str, Any]:
    await state.settled()  # after the resume its own timer made, if any (sdk/local_timers.py)
    channel = state.client.channel  # a shared process's: never asked to checkpoint
    if body.get("kind") == "duration" and local_timers.keeps(state):
        body = {**body, "keepsTimer": True}  # the daemon's timer waits for its word a while
    if channel is not None:
        with contextlib.suppress(ChannelClosed):
            return await channel.wait(state.run_id, state.attempt, state.token, body)
    answer: dict[str, Any] = await state.call("POST", f"attempts/{state.attempt}/wait", body)
    return answer


async def _read_wait(state: RunState, waitpoint_id: str) -> dict[str, Any]:
    """One read of a wait: on the process's channel when it has one (docs/worker-protocol.md,
    "The channel"), else a request."""
    channel = state.client.channel
    if channel is not None:
        with contextlib.suppress(ChannelClosed):
            return await channel.read_wait(state.run_id, state.token, waitpoint_id)
    answer: dict[str, Any] = await state.call_now("GET", f"waits/{waitpoint_id}",
                                                  params={"wait_s": 0})
    return answer


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _key(key: str | list[str] | None) -> str | None:
    # wait keys travel raw: the daemon scopes them to the run itself
    if key is None:
        return None
    return "-".join(str(p) for p in key) if isinstance(key, list | tuple) else str(key)


def _duration_body(until: datetime, key: Any, key_ttl: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "duration", "until": _iso(until)}
    if key is not None:
        body["idempotencyKey"] = _key(key)
    if key_ttl is not None:
        body["idempotencyKeyTTL"] = key_ttl
    return body


def _token_id(token: Token | str | dict[str, Any]) -> str:
    if isinstance(token, Token):
        return token.id
    if isinstance(token, dict):
        return str(token["id"])
    return str(token)


def _timeout(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}s"
    return value


def _token_request(timeout: Any, key: Any, key_ttl: str | None, tags: Any) -> dict[str, Any]:
    body = {"timeout": _timeout(timeout), "idempotencyKey": _key(key), "idempotencyKeyTTL": key_ttl,
            "tags": [tags] if isinstance(tags, str) else (list(tags) if tags else None)}
    return {k: v for k, v in body.items() if v is not None}


class Wait:
    """The `wait` object. Durations add up: `for_(minutes=1, seconds=30)` waits 90 s."""

    async def for_(self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0,
                   idempotency_key: str | list[str] | None = None,
                   idempotency_key_ttl: str | None = None) -> None:
        total = _wait_seconds(seconds, minutes, hours, days)
        until = datetime.fromtimestamp(time.time() + total, UTC)
        # a replayed wait keeps the due time recorded the first time, not this one
        state = require_run("wait.for_")
        await durable_wait(state, "wait.for", None,
                           _duration_body(until, idempotency_key, idempotency_key_ttl))

    async def until(self, date: datetime, *, idempotency_key: str | list[str] | None = None,
                    idempotency_key_ttl: str | None = None) -> None:
        state = require_run("wait.until")
        await durable_wait(state, "wait.until", None,
                           _duration_body(date, idempotency_key, idempotency_key_ttl))

    async def create_token(self, timeout: Any = None,  # noqa: ASYNC109 - Trigger.dev's name
                           idempotency_key: str | list[str] | None = None,
                           idempotency_key_ttl: str | None = None, tags: Any = None) -> Token:
        body = _token_request(timeout, idempotency_key, idempotency_key_ttl, tags)
        state = current_run()
        if state is not None:
            # always asked: the answer's url is the daemon's to make; a recorded call gets
            # the token it made the first time
            call, record = state.replay.take("token.create")
            answer = await state.call("POST", "tokens", {**body, "record": replay.body(call)})
            if record is not None:
                state.from_record(call)
            return Token.from_answer(answer)
        from .client import get_client

        return Token.from_answer(await get_client().create_token(**_snake(body)))

    async def for_token(self, token: Token | str | dict[str, Any]) -> WaitResult:
        state = require_run("wait.for_token")
        result = await durable_wait(state, "wait.token", None,
                                    {"kind": "token", "waitpointId": _token_id(token)})
        return WaitResult.from_wait(result)

    async def complete_token(self, token: Token | str | dict[str, Any], data: Any = None) -> None:
        from .client import get_client

        await get_client().complete_token(_token_id(token), data)

    async def retrieve_token(self, token: Token | str | dict[str, Any]) -> dict[str, Any]:
        from .client import get_client

        return await get_client().retrieve_token(_token_id(token))

    # -- blocking forms -------------------------------------------------------------------
    def for_sync(self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0,
                 idempotency_key: str | list[str] | None = None,
                 idempotency_key_ttl: str | None = None) -> None:
        state = require_run("wait.for_sync")
        state.block_on(self.for_(seconds, minutes, hours, days, idempotency_key,
                                 idempotency_key_ttl))

    def until_sync(self, date: datetime, *, idempotency_key: str | list[str] | None = None,
                   idempotency_key_ttl: str | None = None) -> None:
        state = require_run("wait.until_sync")
        state.block_on(self.until(date, idempotency_key=idempotency_key,
                                  idempotency_key_ttl=idempotency_key_ttl))

    def create_token_sync(self, timeout: Any = None, idempotency_key: str | list[str] | None = None,
                          idempotency_key_ttl: str | None = None, tags: Any = None) -> Token:
        state = current_run()
        if state is not None:
            return state.block_on(self.create_token(timeout, idempotency_key, idempotency_key_ttl,
                                                    tags))
        from .client import get_sync_client

        body = _token_request(timeout, idempotency_key, idempotency_key_ttl, tags)
        return Token.from_answer(get_sync_client().create_token(**_snake(body)))

    def for_token_sync(self, token: Token | str | dict[str, Any]) -> WaitResult:
        state = require_run("wait.for_token_sync")
        return state.block_on(self.for_token(token))

    def complete_token_sync(self, token: Token | str | dict[str, Any], data: Any = None) -> None:
        from .client import get_sync_client

        get_sync_client().complete_token(_token_id(token), data)

    def retrieve_token_sync(self, token: Token | str | dict[str, Any]) -> dict[str, Any]:
        from .client import get_sync_client

        return get_sync_client().retrieve_token(_token_id(token))


def _wait_seconds(seconds: float, minutes: float, hours: float, days: float) -> float:
    """The seconds `wait.for_` waits; ValueError for a value that is not a number of seconds
    or past the longest wait (limits.MAX_DURATION_S, 10 years)."""
    parts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
    for name, value in parts.items():
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise ValueError(f"wait.for_({name}={value!r}): give a finite number")
    total = float(seconds + 60 * minutes + 3600 * hours + 86400 * days)
    if total > MAX_DURATION_S:
        raise ValueError(f"wait.for_ of {total:g} seconds is longer than the longest wait, "
                         f"{MAX_DURATION_S:,} seconds (10 years)")
    return max(0.0, total)


def _snake(body: dict[str, Any]) -> dict[str, Any]:
    names = {"idempotencyKey": "idempotency_key", "idempotencyKeyTTL": "idempotency_key_ttl"}
    return {names.get(k, k): v for k, v in body.items()}


wait = Wait()
