"""`engine.records`: the engine's door for a run's durable records (engine/durable.py has the
rules) and for how a run resumed (adopted, replayed). Composed into the `Engine` front, whose
unit of work it runs its parts in: what it records is committed and published like everything
else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..durable_calls import Call
from ..store.interface import StoreReader
from ..store.models import Run, RunStep, Waitpoint
from . import attempts, durable, eviction


class Records:
    def __init__(self, run: Callable[..., Awaitable[Any]],
                 read: Callable[[], StoreReader]) -> None:
        self._run, self._read = run, read

    async def save(self, run_id: str, attempt: int, call: Call, result: str | None,
                   result_type: str, status: str) -> RunStep:
        """A step's or checkpoint's outcome, reported by the attempt that ran it."""
        step: RunStep = await self._run(durable.save, run_id, attempt, call, result,
                                        result_type, status)
        return step

    async def token(self, run_id: str, call: Call, **options: Any) -> tuple[Waitpoint, bool]:
        """`wait.create_token` as a run's durable call: the token its record made (True), or a
        new one (engine.create_token's options), recorded (engine/durable.py `token`)."""
        made: tuple[Waitpoint, bool] = await self._run(durable.token, run_id, call, **options)
        return made

    async def listed(self, run_id: str) -> list[RunStep]:
        """The run's records as a replay sees them (a wait's from its waitpoint)."""
        return await durable.for_replay(self._read(), run_id)

    async def for_attempt(self, run: Run, attempt: int) -> list[RunStep]:
        """The records a starting attempt replays; when there are any, its history says so
        (`run.replayed`, which `runs show` prints as how the run resumed)."""
        steps = await durable.for_replay(self._read(), run.id)
        if steps:
            await self._run(durable.replay_started, run.id, attempt, len(steps))
        return steps

    async def adopted(self, run_id: str, worker_id: str) -> None:
        """A restarted daemon adopted the run's live process (`runs show`: how it resumed)."""
        await self._run(durable.adopted, run_id, worker_id)

    async def resume_by_replay(self, run_id: str, attempt: int, reason: str) -> Run | None:
        """Resume a run whose process is gone and cannot be restored (a failed restore, a
        process dead after a restart, a reboot) by replay: `attempt` ends interrupted (not
        counted against max_attempts) and the run goes back to its queue; its next attempt
        replays the records, so completed waits and steps return at once and a pending wait
        blocks on the same waitpoint."""
        run: Run | None = await self._run(attempts.worker_lost, run_id, attempt, reason,
                                          interrupted=True, error_name="Interrupted")
        return run

    async def evict(self, run_id: str, attempt: int, worker_id: str, reason: str) -> Run | None:
        """Let go of a run held waiting on `worker_id` (engine/eviction.py): its attempt ends
        interrupted, it stays WAITING with no process, and when its wait completes its next
        attempt replays it. None: it no longer waits there, leave it be."""
        run: Run | None = await self._run(eviction.evict, run_id, attempt, worker_id, reason)
        return run
