"""A shared process keeps the timers of its runs' short duration waits (docs/waits.md, "Who keeps
a wait's timer"; issue #13, 1,000 concurrent timers).

The daemon commits a duration wait as always (its own timer stays: the backstop) and, when the
run's shared process may keep the timer too — a wait held there, due before it would be evicted
— its `hold` answer carries the due time, `until`. The run then waits for whichever comes first:
the daemon's `resume`, or its own timer. When its timer fires the run goes on at once, without a
round trip, and the process tells the daemon on its channel (a `timerDue` frame): the daemon
completes the waitpoint and puts the run back to EXECUTING, as its own timer would.

Until the daemon has answered, the run sends nothing more: every call of the run (logs,
metadata, a child, a step, a token, its next wait) and its completion wait for the answer
(`RunState.settled`), so the daemon applies them after the run's resume and never refuses a
completion that overtook it. The answer `gone` (the run was canceled or let go of meanwhile)
drops the attempt: its coroutine is cancelled, and nothing more of it is sent. When the daemon
does not take the word (no slot for the run now, a daemon that does not know the frame, the
channel closed) the run's sends wait for the daemon's own resume instead.

`TRIGGER_LOCAL_WORKER_TIMERS=off` in a task process's environment leaves every timer to the
daemon.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from .. import packets
from ..errors import AttemptGone
from .context import RunState

SWITCH = "TRIGGER_LOCAL_WORKER_TIMERS"
#: the result of a duration wait: a DATETIME waitpoint's (engine/waitpoints.py waitpoint_result)
DUE = {"ok": True, "status": "COMPLETED", "output": None, "outputType": packets.JSON}


def keeps(state: RunState) -> bool:
    """Whether the run's process keeps the timers of its duration waits: a shared process on
    its channel, not switched off. The wait request says so (`keepsTimer`), and the daemon's
    own timer then gives the process a grace before it ends the wait itself (engine/waits.py)."""
    return state.resumed is not None and state.client.channel is not None \
        and os.environ.get(SWITCH, "on") != "off"


def due_at(state: RunState, answer: dict[str, Any]) -> float | None:
    """When the run's own timer of the wait `answer` held fires (epoch seconds); None when the
    process keeps no timer for it (not a shared process on its channel, no `until`, or off)."""
    until = answer.get("until")
    if not keeps(state):
        return None
    if isinstance(until, bool) or not isinstance(until, int | float):
        return None
    return float(until)


def fired(state: RunState, waitpoint_id: str,
          resume: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The run's own timer fired: the run goes on with the wait's result now; the daemon is told
    in the background, and the run's next send waits for its answer (`resume`: waiting for the
    daemon's own resume, when it does not take the word)."""
    state.own_timers.add(waitpoint_id)
    settling = asyncio.ensure_future(_settle(state, waitpoint_id, asyncio.current_task(), resume))
    settling.add_done_callback(_seen)
    state.settling = settling
    return dict(DUE)


async def _settle(state: RunState, waitpoint_id: str, run: asyncio.Task[Any] | None,
                  resume: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    channel = state.client.channel
    try:
        if channel is not None and await channel.timer_due(state.run_id, state.attempt,
                                                           state.token, waitpoint_id):
            state.settling = None
            return
        # no slot for the run now (the daemon resumes it when it has one)
    except AttemptGone:
        _drop(state, run)
        raise
    except Exception:  # noqa: BLE001, S110 - the daemon did not take the word: its timer resumes
        pass  # the run (a daemon without the frame, the channel closed, a refusal)
    result = await resume()
    if result.get("final"):  # the run ended meanwhile
        _drop(state, run)
        raise AttemptGone(f"run {state.run_id} ended while it waited ({result.get('status')})")
    state.settling = None


def _drop(state: RunState, run: asyncio.Task[Any] | None) -> None:
    """The attempt is gone: nothing more of it is sent, and its coroutine stops now."""
    state.gone = True
    if run is not None and not run.done():
        run.cancel()


def _seen(settling: asyncio.Future[None]) -> None:
    if not settling.cancelled():
        settling.exception()  # retrieved: the run's next send raises it (RunState.settled)
