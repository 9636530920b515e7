"""A run's life after it is created: dequeue, attempts, results, retries, cancel, replay, timers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .. import packets
from ..durations import parse_time
from ..errors import ConflictError, NotFoundError, PayloadTooLargeError, ValidationError
from ..ids import new_id
from ..machines import DEFAULT_MACHINE
from ..store import Ops
from ..store.models import (
    CANCELED,
    COMPLETED,
    CRASHED,
    DELAYED,
    DEQUEUED,
    EXECUTING,
    EXPIRED,
    FINAL_STATUSES,
    INTERRUPTED,
    PENDING_VERSION,
    QUEUED,
    SYSTEM_FAILURE,
    TIMED_OUT,
    WAITING,
    Attempt,
    Run,
)
from .base import Tx
from .retry import RetryPolicy, run_policy
from .states import K_QUEUED
from .triggering import TriggerMixin, TriggerRequest

_METADATA_OPS = ("set", "delete", "increment", "append", "remove", "update")


def check_operations(operations: list[Any]) -> list[dict[str, Any]]:
    """Metadata operations as `apply_metadata_operations` needs them; ValidationError naming the
    first bad one (a list as a key, or a string to increment by, would fail half-way)."""
    for number, op in enumerate(operations):
        where = f"operations[{number}]"
        if not isinstance(op, dict) or op.get("type") not in _METADATA_OPS:
            raise ValidationError(f"{where} must be an object whose type is one of {', '.join(_METADATA_OPS)}")
        if op["type"] != "update" and not isinstance(op.get("key"), str):
            raise ValidationError(f"{where}.key must be a string")
        by = op.get("value", 1)
        if op["type"] == "increment" and (isinstance(by, bool) or not isinstance(by, int | float)
                                          or not math.isfinite(by) or abs(by) > 2**53):
            raise ValidationError(f"{where}.value must be a finite number to increment by")
    return operations


@dataclass
class AttemptOutcome:
    """What a worker reports when an attempt ends."""

    ok: bool
    output: str | None = None
    output_type: str = packets.JSON
    error: dict[str, Any] | None = None
    retryable: bool = True
    status: str = "FAILED"  # FAILED | CRASHED | TIMED_OUT for failures


class LifecycleMixin(TriggerMixin):
    # -- dequeue and start ------------------------------------------------------------------
    async def dequeue(self, limit: int) -> list[Run]:
        """Take up to `limit` runnable runs, oldest effective queue time first, respecting paused
        queues, queue and concurrency-key limits, offline projects (engine/projects.py) and the
        global concurrency; they become DEQUEUED on their project's current version."""
        if limit <= 0:
            return []
        async with self._tx() as tx:
            ops = tx.ops
            running = await ops.running_counts()
            free = min(limit, self.settings.concurrency - sum(running.values()))
            if free <= 0:
                return []
            paused, limits = await ops.paused_queues(), await ops.queue_limits()
            offline = self.projects.offline()
            gate = await self._rate_gate(tx)  # type: ignore[attr-defined]
            candidates: list[Run] = []
            for project, queue in await ops.queues_with_queued_runs():
                if (project, queue) in paused or project in offline:
                    continue
                qlimit = limits.get((project, queue))
                taken: dict[str | None, int] = {}
                # keys already at their limit can use up to `running` rows of the page
                in_use = sum(n for (p, q, _), n in running.items() if (p, q) == (project, queue))
                page = free if qlimit is None else free + in_use
                for run in await ops.queued_runs(project, queue, page, per_key=qlimit):
                    key = run.concurrency_key
                    used = running.get((project, queue, key), 0) + taken.get(key, 0)
                    if qlimit is not None and used >= qlimit:
                        continue
                    taken[key] = taken.get(key, 0) + 1
                    candidates.append(run)
            candidates.sort(key=lambda r: (r.queued_at, r.id))
            out = []
            for run in candidates:
                if len(out) >= free:
                    break
                if gate is not None and not gate.admit(run, tx.now):
                    continue  # stays QUEUED; the gate records when its window opens
                current = self.projects.current_of(run.project)
                version_id = run.version_id or (current.id if current else None)
                out.append(await self._move(tx, run, DEQUEUED, version_id=version_id, expires_at=None))
            if gate is not None:
                await gate.save(tx)
            return out

    async def start_attempt(self, run: Run, worker_id: str, pid: int | None, executor: str = "process") \
            -> tuple[Run, Attempt] | None:
        """DEQUEUED → EXECUTING with a new attempt on `worker_id`. None if the run moved on."""
        async with self._tx() as tx:
            current = await tx.ops.get_run(run.id)
            if current is None or current.status != DEQUEUED:
                return None
            number = current.attempt_count + 1
            attempt = Attempt(id=new_id("attempt"), run_id=run.id, number=number, status=EXECUTING,
                              started_at=tx.now, worker_id=worker_id, pid=pid, executor=executor)
            await tx.ops.insert_attempt(attempt)
            deadline = (tx.now + max(0.0, current.max_duration_s - current.executed_s)
                        if current.max_duration_s else None)
            data: dict[str, Any] = {"attempt": number, "worker_id": worker_id}
            if current.attempt_count:  # a run that ran before: say so if it was interrupted (dev prints it)
                previous = (await tx.ops.attempts(run.id))[-2:-1]
                if previous and previous[0].status == INTERRUPTED:
                    data["interrupted_by"] = (previous[0].error or {}).get("message") or "an interruption"
            await self._move(tx, current, EXECUTING, attempt_count=number, worker_id=worker_id,
                             started_at=current.started_at or tx.now, deadline_at=deadline, data=data)
            return current, attempt

    async def requeue(self, run: Run, reason: str) -> None:
        """A DEQUEUED run that no worker could take goes back to its queue."""
        async with self._tx() as tx:
            current = await tx.ops.get_run(run.id)
            if current is not None and current.status == DEQUEUED:
                await self._move(tx, current, QUEUED, description=reason)

    async def resume_held(self, run: Run) -> Run | None:
        """A DEQUEUED run whose process is held alive continues in that process."""
        async with self._tx() as tx:
            current = await tx.ops.get_run(run.id)
            if current is None or current.status != DEQUEUED:
                return None
            deadline = (tx.now + max(0.0, current.max_duration_s - current.executed_s)
                        if current.max_duration_s else None)
            await self._move(tx, current, EXECUTING, deadline_at=deadline, event="run.resumed",
                             data={"attempt": current.attempt_count, "worker_id": current.worker_id})
            tx.wake(f"run:{current.id}")
            return current

    # -- attempt results --------------------------------------------------------------------
    async def _live_run(self, tx: Tx, run_id: str, attempt: int) -> Run:
        run = await tx.ops.get_run(run_id)
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        if run.attempt_count != attempt or run.status not in (EXECUTING, WAITING, DEQUEUED):
            raise ConflictError(f"Attempt {attempt} of run {run_id} is no longer current (run is {run.status})")
        return run

    async def finish_attempt(self, run_id: str, attempt: int, outcome: AttemptOutcome) -> Run:
        """Record the end of an attempt: complete the run, schedule a retry, or fail it."""
        async with self._tx() as tx:
            run = await self._live_run(tx, run_id, attempt)
            return await self._finish_attempt(tx, run, outcome)

    async def _finish_attempt(self, tx: Tx, run: Run, outcome: AttemptOutcome) -> Run:
        attempts = await tx.ops.attempts(run.id)
        current = attempts[-1] if attempts else None
        if outcome.ok:
            if current:
                await tx.ops.update_attempt(current.id, status=COMPLETED, finished_at=tx.now)
            await self._move(tx, run, COMPLETED, output=outcome.output, output_type=outcome.output_type,
                             completed_at=tx.now, deadline_at=None, worker_id=None)
            await self._after_final(tx, run)
            return run
        if current:
            await tx.ops.update_attempt(current.id, status=outcome.status, finished_at=tx.now, error=outcome.error)
        counted = sum(1 for a in attempts if a.counts)
        policy = await self.retry_policy(run, tx.ops)
        if outcome.retryable and outcome.status != TIMED_OUT and counted < policy.max_attempts:
            delay = policy.delay_s(counted)
            data: dict[str, Any] = {"attempt": run.attempt_count, "retry_in_s": round(delay, 3)}
            description = f"attempt {run.attempt_count} failed; retry in {delay:.1f}s"
            changes: dict[str, Any] = {}
            bigger = policy.retry_machine(outcome.error, run.machine)
            if bigger is not None:
                # the run's machine is what the executor reads when it starts the next attempt
                changes["machine"] = data["machine"] = bigger
                data["previous_machine"] = run.machine or DEFAULT_MACHINE
                description = (f"attempt {run.attempt_count} ran out of memory on {data['previous_machine']}; "
                               f"retry on {bigger} in {delay:.1f}s")
            await tx.ops.unblock_run(run.id)
            await self._move(tx, run, DELAYED, kind="delayed_retry", delay_until=tx.now + delay, worker_id=None,
                             deadline_at=None, error=outcome.error, executed_s=0.0, event="run.retrying",
                             description=description, data=data, **changes)
            return run
        final = outcome.status if outcome.status in FINAL_STATUSES else "FAILED"
        await self._move(tx, run, final, error=outcome.error, completed_at=tx.now, deadline_at=None,
                         worker_id=None)
        await self._after_final(tx, run)
        return run

    async def retry_policy(self, run: Run, ops: Ops | None = None) -> RetryPolicy:
        """The policy `run` is retried by: its task's, else its version's project's, else the
        built-in default (engine/retry.py), with the trigger's max_attempts on top."""
        return run_policy(run, await self.version_of(run, ops))

    async def _after_final(self, tx: Tx, run: Run) -> None:
        """A run ended: free its idempotent waits, complete its waitpoint and its batch's."""
        await tx.ops.unblock_run(run.id)
        tx.emit("dispatch")
        tx.wake(f"run:{run.id}")
        if run.waitpoint_id:
            await self._complete_run_waitpoint(tx, run)  # type: ignore[attr-defined]
        if run.batch_id:
            await self._maybe_complete_batch(tx, run.batch_id)  # type: ignore[attr-defined]
        if run.status == CANCELED:
            for child in await tx.ops.child_runs(run.id):
                if child.resume_parent and not child.is_final:
                    await self._cancel(tx, child, f"parent {run.id} was canceled")

    async def worker_lost(self, run_id: str, attempt: int, reason: str, *, interrupted: bool = False,
                          error_name: str = "TaskProcessExited") -> Run | None:
        """The process running (or holding) `attempt` is gone. A crash is retried per policy; an
        interruption (daemon restart or shutdown) queues the run again without using an attempt."""
        async with self._tx() as tx:
            run = await tx.ops.get_run(run_id)
            if run is None or run.attempt_count != attempt or run.status not in (DEQUEUED, EXECUTING, WAITING):
                return run
            if interrupted:
                attempts = await tx.ops.attempts(run.id)
                if attempts:
                    await tx.ops.update_attempt(attempts[-1].id, status=INTERRUPTED, finished_at=tx.now,
                                                counts=False, error={"message": reason})
                await tx.ops.unblock_run(run.id)
                return await self._move(tx, run, QUEUED, kind=K_QUEUED, worker_id=None, deadline_at=None,
                                        event="run.interrupted", description=reason, data={"reason": reason})
            error = {"name": error_name, "message": reason}
            return await self._finish_attempt(tx, run, AttemptOutcome(ok=False, error=error, status=CRASHED))

    # -- management -------------------------------------------------------------------------
    async def cancel(self, run_id: str) -> Run:
        async with self._tx() as tx:
            run = await tx.ops.get_run(run_id)
            if run is None:
                raise NotFoundError(f"Run {run_id} not found")
            if run.is_final:
                return run
            return await self._cancel(tx, run, "canceled by request")

    async def _cancel(self, tx: Tx, run: Run, reason: str) -> Run:
        worker_id = run.worker_id
        if run.status in (EXECUTING, WAITING, DEQUEUED):
            attempts = await tx.ops.attempts(run.id)
            if attempts and attempts[-1].status == EXECUTING:
                await tx.ops.update_attempt(attempts[-1].id, status=CANCELED, finished_at=tx.now)
        await self._move(tx, run, CANCELED, completed_at=tx.now, worker_id=None, deadline_at=None,
                         error={"name": "Canceled", "message": reason}, description=reason)
        if worker_id:
            tx.emit("worker.kill", worker_id=worker_id, run_id=run.id, reason=reason)
        await self._after_final(tx, run)
        return run

    async def replay(self, run_id: str) -> Run:
        run = await self.store.read().get_run(run_id)
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        req = TriggerRequest(task_id=run.task_id, payload=run.payload, payload_type=run.payload_type,
                             queue=run.queue, concurrency_key=run.concurrency_key, tags=run.tags,
                             max_attempts=run.max_attempts, max_duration=run.max_duration_s,
                             machine=run.machine, metadata=run.metadata, is_test=run.is_test, project=run.project)
        return (await self.trigger(req)).run

    async def reschedule(self, run_id: str, delay: Any) -> Run:
        async with self._tx() as tx:
            run = await tx.ops.get_run(run_id)
            if run is None:
                raise NotFoundError(f"Run {run_id} not found")
            if run.status != DELAYED:
                raise ValidationError(f"Cannot reschedule run {run_id}: it is {run.status}, not DELAYED")
            until = parse_time(delay, tx.now, what="delay")
            changes: dict[str, Any] = {"delay_until": until}
            if run.expires_at is not None and run.delay_until is not None:
                changes["expires_at"] = run.expires_at + (until - run.delay_until)  # the ttl moves with the delay
            await self._move(tx, run, DELAYED, event="run.rescheduled", **changes)
            tx.emit("dispatch")
            return run

    async def update_metadata(self, run_id: str, metadata: dict[str, Any] | None,
                              operations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        async with self._tx() as tx:
            run = await tx.ops.get_run(run_id)
            if run is None:
                raise NotFoundError(f"Run {run_id} not found")
            value = dict(run.metadata) if metadata is None else dict(metadata)
            value = packets.apply_metadata_operations(value, check_operations(operations or []))
            if (size := len(json.dumps(value))) > self.settings.payload_limit_bytes:
                raise PayloadTooLargeError.over_limit("Metadata", self.settings.payload_limit_bytes, size)
            await tx.ops.update_run(run.id, None, metadata=value)
            await tx.ops.insert_event(run.id, "run.metadata", tx.now, {"run_id": run.id})
            tx.emit("run.metadata", run_id=run.id)
            return value

    # -- timers -----------------------------------------------------------------------------
    async def tick_timers(self) -> int:
        """Do everything that is due now (delays, TTLs, max durations, waitpoint times).
        Returns how many things changed."""
        done = 0
        async with self._tx() as tx:
            now = tx.now
            for run in await tx.ops.due_delayed_runs(now):
                await self._delay_elapsed(tx, run)
                done += 1
            for run in await tx.ops.due_expired_runs(now):
                await self._move(tx, run, EXPIRED, completed_at=now, description="ttl elapsed before start",
                                 error={"name": "Expired", "message": "The run was not started within its ttl"})
                await self._after_final(tx, run)
                done += 1
            for run in await tx.ops.due_deadline_runs(now):
                worker_id = run.worker_id
                error = {"name": "MaxDurationExceeded",
                         "message": f"Run exceeded its max_duration of {run.max_duration_s:g}s and was stopped"}
                await self._finish_attempt(tx, run, AttemptOutcome(ok=False, error=error, status=TIMED_OUT,
                                                                   retryable=False))
                if worker_id:
                    tx.emit("worker.kill", worker_id=worker_id, run_id=run.id, reason="max_duration")
                done += 1
            done += await self._tick_waitpoints(tx)  # type: ignore[attr-defined]
            done += await self._tick_schedules(tx)  # type: ignore[attr-defined]
            done += await self._tick_rate_limits(tx)  # type: ignore[attr-defined]
            if done:
                tx.emit("dispatch")
        return done

    async def _delay_elapsed(self, tx: Tx, run: Run) -> None:
        """A DELAYED run's time came: QUEUED when its project's version has its task (or it is a
        retry, locked to its version), else PENDING_VERSION. A run triggered before any project
        had its task joins the one project that has it now."""
        owners = self.projects.owners(run.task_id)
        project = run.project if run.project is not None else owners[0] if len(owners) == 1 else None
        if self.projects.current_of(project) is None or not (run.version_id or self.projects.task(project,
                                                                                                run.task_id)):
            await self._move(tx, run, PENDING_VERSION, delay_until=None, description="delay elapsed")
            return
        if run.project is None and project is not None:
            await self._ensure_queue(tx, project, run.queue, None, custom=False)
        await self._move(tx, run, QUEUED, delay_until=None, project=project, description="delay elapsed")

    async def system_failure(self, run: Run, reason: str) -> None:
        async with self._tx() as tx:
            current = await tx.ops.get_run(run.id)
            if current is not None and not current.is_final:
                await self._move(tx, current, SYSTEM_FAILURE, completed_at=tx.now, worker_id=None,
                                 error={"name": "SystemFailure", "message": reason})
                await self._after_final(tx, current)
