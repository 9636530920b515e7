"""The `timerDue` frame on a real channel (api/channel.py; docs/worker-protocol.md, "The
channel"): checked like a wait (a forged run token changes nothing), refused before the wait is
due, answered `resumed` once committed, and `gone` (AttemptGone in the runtime) for a run that
was canceled. The daemon is a real HTTP server on a free port (tests/test_worker_channel.py's
`served`); the runtime's Channel is its client."""

from __future__ import annotations

import pytest

from tests.conftest import T0, InProcessServices
from tests.test_worker_channel import Served, served
from trigger_local.clock import FakeClock
from trigger_local.errors import AttemptGone, AuthenticationError, ValidationError

__all__ = ["served"]  # the fixture, used by name


async def test_a_timer_due_frame_is_checked_and_answered_once_committed(
        served: Served, services: InProcessServices, clock: FakeClock) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        a = (await channel.poll(0))["assignment"]
        rid, token = a["run_id"], a["run_token"]
        answer = await channel.wait(rid, 1, token, {"kind": "duration", "until": T0 + 5})
        assert answer["action"] == "hold"
        wp = answer["waitpointId"]
        with pytest.raises(ValidationError, match="not due"):
            await channel.timer_due(rid, 1, token, wp)
        clock.advance(5)
        with pytest.raises(AuthenticationError):
            await channel.timer_due(rid, 1, "forged", wp)
        waitpoint = await services.engine.queries.waitpoints.get(wp)
        assert waitpoint is not None and waitpoint.status == "WAITING"  # nothing done
        # this daemon's executor holds no shared process: no slot in place, queued held (the
        # process waits for its resume)
        assert await channel.timer_due(rid, 1, token, wp) is False
        waitpoint = await services.engine.queries.waitpoints.get(wp)
        assert waitpoint is not None and waitpoint.status == "COMPLETED"
        run = await services.engine.queries.runs.get(rid)
        assert run is not None and run.status == "QUEUED"
        await services.engine.cancel(rid)
        with pytest.raises(AttemptGone):
            await channel.timer_due(rid, 1, token, wp)
    finally:
        await channel.close()
