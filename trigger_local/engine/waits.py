"""Waitpoints: every wait a run can make (a time, a token, a child run, a batch) is one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import packets
from ..durations import iso, parse_duration, parse_time
from ..errors import ConflictError, NotFoundError, ValidationError
from ..ids import new_id
from ..store.models import (
    COMPLETED,
    EXECUTING,
    QUEUED,
    WAITING,
    WP_BATCH,
    WP_COMPLETED,
    WP_DATETIME,
    WP_MANUAL,
    WP_TIMED_OUT,
    WP_WAITING,
    Batch,
    Run,
    Waitpoint,
)
from . import suspension
from .base import Tx
from .lifecycle import LifecycleMixin
from .states import K_QUEUED_HELD
from .triggering import MAX_TAGS, TriggerRequest, TriggerResult, request_scope


@dataclass
class WaitDecision:
    action: str  # continue | hold | checkpoint
    waitpoint_id: str
    result: dict[str, Any] | None = None


def waitpoint_result(wp: Waitpoint) -> dict[str, Any]:
    """What a waiting task receives: ok, output (raw packet) and its type, or an error."""
    if wp.status == WP_TIMED_OUT or wp.output_is_error:
        error = packets.decode(wp.output, wp.output_type) if wp.output else {"message": "failed"}
        return {"ok": False, "status": wp.status, "error": error, "output": None, "outputType": wp.output_type}
    return {"ok": True, "status": wp.status, "output": wp.output, "outputType": wp.output_type}


class WaitMixin(LifecycleMixin):
    executor_capability: suspension.CheckpointCapability | None = None

    # -- waiting ----------------------------------------------------------------------------
    async def wait(self, run_id: str, attempt: int, *, kind: str, until: Any = None,
                   waitpoint_id: str | None = None, idempotency_key: str | None = None,
                   idempotency_key_ttl: str | None = None) -> WaitDecision:
        """Block the run's current attempt on a waitpoint, or return its result at once."""
        async with self._tx() as tx:
            run = await self._live_run(tx, run_id, attempt)
            if run.status != EXECUTING:  # one wait at a time; WAITING → WAITING is only for suspending
                raise ConflictError(f"Run {run_id} is {run.status}: it can only wait while EXECUTING")
            if kind == "duration":
                wp = await self._duration_waitpoint(tx, run, until, idempotency_key, idempotency_key_ttl)
            elif kind in ("token", "run", "batch"):
                if not waitpoint_id:
                    raise ValidationError(f"A {kind} wait needs a waitpoint id")
                wp = await tx.ops.get_waitpoint(waitpoint_id)
                if wp is None:
                    raise NotFoundError(f"Waitpoint {waitpoint_id} not found")
            else:
                raise ValidationError(f"Unknown wait kind {kind!r}: use duration, token, run or batch")
            action = suspension.decide(wp, tx.now, self.settings, self.executor_capability)
            if action == suspension.CONTINUE:
                return WaitDecision(action, wp.id, waitpoint_result(wp))
            await tx.ops.block_run(run.id, [wp.id], tx.now)
            executed = run.executed_s
            if run.deadline_at is not None and run.max_duration_s:
                executed = run.max_duration_s - max(0.0, run.deadline_at - tx.now)
            await self._move(tx, run, WAITING, deadline_at=None, executed_s=executed, event="run.waiting",
                             data={"waitpoint_id": wp.id, "waitpoint_type": wp.type, "action": action,
                                   "until": wp.complete_after,
                                   "hold_reason": suspension.hold_reason(wp, tx.now, self.settings,
                                                                         self.executor_capability)})
            tx.emit("dispatch")  # the slot it held is free
            return WaitDecision(action, wp.id)

    async def _duration_waitpoint(self, tx: Tx, run: Run, until: Any, key: str | None,
                                  key_ttl: str | None) -> Waitpoint:
        when = parse_time(until, tx.now, what="wait time") if until is not None else tx.now
        scoped = f"{run.id}:{key}" if key else None
        if scoped:
            existing = await tx.ops.find_waitpoint_by_key(WP_DATETIME, scoped, tx.now)
            if existing is not None:
                return existing
        status = WP_COMPLETED if when <= tx.now else WP_WAITING
        wp = Waitpoint(id=new_id("waitpoint"), type=WP_DATETIME, status=status, created_at=tx.now,
                       completed_at=tx.now if status == WP_COMPLETED else None, complete_after=when,
                       idempotency_key=scoped, created_by_run_id=run.id,
                       idempotency_expires_at=(tx.now + parse_duration(key_ttl, what="idempotency_key_ttl")) if key_ttl else None)
        await tx.ops.insert_waitpoint(wp)
        return wp

    async def wait_result(self, run_id: str, waitpoint_id: str) -> dict[str, Any] | None:
        """The result for a held run, once the dispatcher gave it its slot back; else None."""
        ops = self.store.read()
        run = await ops.get_run(run_id)
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        if run.is_final:
            return {"ok": False, "status": run.status, "error": {"message": f"Run is {run.status}"},
                    "final": True}
        if run.status != EXECUTING:
            return None
        wp = await ops.get_waitpoint(waitpoint_id)
        if wp is None:
            raise NotFoundError(f"Waitpoint {waitpoint_id} not found")
        return None if wp.status == WP_WAITING else waitpoint_result(wp)

    # -- tokens -----------------------------------------------------------------------------
    async def create_token(self, *, timeout: Any = None, idempotency_key: str | None = None,
                           idempotency_key_ttl: str | None = None, tags: list[str] | None = None,
                           created_by_run_id: str | None = None) -> tuple[Waitpoint, bool]:
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"Tokens can only have {MAX_TAGS} tags, you're trying to set {len(tags)}.")
        async with self._tx() as tx:
            timeout_at = parse_time(timeout, tx.now, what="timeout") if timeout else None
            if idempotency_key:
                existing = await tx.ops.find_waitpoint_by_key(WP_MANUAL, idempotency_key, tx.now)
                if existing is not None:
                    return existing, True
            wp = Waitpoint(id=new_id("waitpoint"), type=WP_MANUAL, status=WP_WAITING, created_at=tx.now,
                           timeout_at=timeout_at, idempotency_key=idempotency_key, tags=tags,
                           created_by_run_id=created_by_run_id,
                           idempotency_expires_at=(tx.now + parse_duration(idempotency_key_ttl, what="idempotency_key_ttl"))
                           if idempotency_key_ttl else None)
            await tx.ops.insert_waitpoint(wp)
            await tx.ops.insert_event(None, "waitpoint.created", tx.now, {"waitpoint_id": wp.id})
            tx.emit("waitpoint.created", waitpoint_id=wp.id)
            return wp, False

    async def complete_token(self, waitpoint_id: str, output: str | None, output_type: str = packets.JSON) -> Waitpoint:
        """Complete a MANUAL waitpoint. Completing one that is already done changes nothing."""
        async with self._tx() as tx:
            wp = await tx.ops.get_waitpoint(waitpoint_id)
            if wp is None or wp.type != WP_MANUAL:
                raise NotFoundError(f"Waitpoint token {waitpoint_id} not found")
            if wp.status == WP_WAITING:
                await self._complete_wp(tx, wp, output, output_type)
            return wp

    async def timeout_token(self, waitpoint_id: str) -> Waitpoint:
        async with self._tx() as tx:
            wp = await tx.ops.get_waitpoint(waitpoint_id)
            if wp is None or wp.type != WP_MANUAL:
                raise NotFoundError(f"Waitpoint token {waitpoint_id} not found")
            if wp.status == WP_WAITING:
                await self._time_out_wp(tx, wp)
            return wp

    # -- completing waitpoints --------------------------------------------------------------
    async def _complete_wp(self, tx: Tx, wp: Waitpoint, output: str | None, output_type: str,
                           *, is_error: bool = False, status: str = WP_COMPLETED) -> None:
        ok = await tx.ops.update_waitpoint(wp.id, WP_WAITING, status=status, completed_at=tx.now, output=output,
                                           output_type=output_type, output_is_error=is_error)
        if not ok:
            return
        wp.status, wp.completed_at, wp.output, wp.output_type, wp.output_is_error = \
            status, tx.now, output, output_type, is_error
        await tx.ops.insert_event(None, "waitpoint.completed", tx.now, {"waitpoint_id": wp.id, "status": status})
        tx.emit("waitpoint.completed", waitpoint_id=wp.id, status=status)
        for run_id in await tx.ops.runs_blocked_by(wp.id):
            if await tx.ops.pending_blocker_count(run_id):
                continue
            run = await tx.ops.get_run(run_id)
            if run is None or run.status != WAITING:
                continue
            await tx.ops.unblock_run(run_id)
            await self._move(tx, run, QUEUED, kind=K_QUEUED_HELD, event="run.unblocked",
                             data={"waitpoint_id": wp.id})
            tx.emit("dispatch")

    async def _time_out_wp(self, tx: Tx, wp: Waitpoint) -> None:
        # Trigger.dev's stored timeout output (TRIGGER_API.md §6.4), so a Python task, the API and
        # the official SDK all see the same error; a forced timeout happened now, not at timeout_at
        at = wp.timeout_at if wp.timeout_at is not None and wp.timeout_at <= tx.now else tx.now
        error = json.dumps({"code": "TRIGGER_WAITPOINT_TIMEOUT", "message": f"Waitpoint timed out at {iso(at)}"})
        await self._complete_wp(tx, wp, error, packets.JSON, is_error=True, status=WP_TIMED_OUT)

    async def _complete_run_waitpoint(self, tx: Tx, run: Run) -> None:
        wp = await tx.ops.get_waitpoint(run.waitpoint_id) if run.waitpoint_id else None
        if wp is None or wp.status != WP_WAITING:
            return
        if run.status == COMPLETED:
            await self._complete_wp(tx, wp, run.output, run.output_type or packets.JSON)
        else:
            error = dict(run.error or {"message": f"Run {run.status.lower()}"})
            error.setdefault("status", run.status)
            await self._complete_wp(tx, wp, json.dumps(error), packets.JSON, is_error=True)

    async def _maybe_complete_batch(self, tx: Tx, batch_id: str) -> None:
        batch = await tx.ops.get_batch(batch_id)
        if batch is None or batch.status == "COMPLETED":
            return
        if len(batch.run_ids) < batch.run_count or await tx.ops.batch_has_unfinished(batch_id):
            return
        await tx.ops.update_batch(batch_id, status="COMPLETED")
        if batch.waitpoint_id:
            wp = await tx.ops.get_waitpoint(batch.waitpoint_id)
            if wp is not None:
                runs = await tx.ops.get_runs(batch.run_ids)
                items = [{"id": r.id, "ok": r.status == COMPLETED, "output": r.output,
                          "outputType": r.output_type or packets.JSON, "error": r.error} for r in runs]
                await self._complete_wp(tx, wp, json.dumps(items), packets.JSON)

    async def create_batch(self, run_count: int, *, parent_run_id: str | None = None, wait: bool = False,
                           idempotency_key: str | None = None, request_key: str | None = None,
                           project: str | None = None) -> tuple[Batch, bool]:
        """A new batch of `run_count` runs, or (with True) the batch `idempotency_key` or the
        request key `request_key` (within the caller's `project`) already made. One
        transaction: concurrent requests with the same key get the same batch."""
        async with self._tx() as tx:
            known = await self._request_batch(tx, request_key, project)
            if known is not None:
                return known, True
            batch, cached = await self._create_batch(tx, run_count, parent_run_id, wait, idempotency_key)
            await self._remember_request(tx, request_key, project, {"batch": batch.id})
            return batch, cached

    async def batch_trigger(self, reqs: list[TriggerRequest], *, parent_run_id: str | None = None,
                            wait: bool = False, idempotency_key: str | None = None,
                            request_key: str | None = None) -> tuple[Batch, list[TriggerResult], bool]:
        """A batch and all its runs in one transaction (True: an existing batch, by its
        idempotency key or by `request_key` within the items' project, whose runs are returned
        as they are)."""
        for req in reqs:  # resolved as the batch's children: in the parent's project if unsaid
            req.parent_run_id = req.parent_run_id or parent_run_id
        prepared = await self._prepare(reqs, self.clock.now())
        scope = request_scope([req for req, _, _ in prepared])
        async with self._tx() as tx:
            batch = await self._request_batch(tx, request_key, scope)
            cached = batch is not None
            if batch is None:
                batch, cached = await self._create_batch(tx, len(reqs), parent_run_id, wait, idempotency_key)
            if cached:
                return batch, [TriggerResult(r, cached=True) for r in await tx.ops.get_runs(batch.run_ids)], True
            results = []
            for req, fields, task in prepared:
                req.batch_id = batch.id
                if parent_run_id:
                    req.parent_run_id, req.resume_parent = parent_run_id, batch.waitpoint_id is not None
                results.append(await self._create_run(tx, req, fields, task, False))
            await self._add_batch_runs(tx, batch, [r.run.id for r in results])
            await self._remember_request(tx, request_key, scope, {"batch": batch.id})
            tx.emit("dispatch")
            return batch, results, False

    async def _request_batch(self, tx: Tx, request_key: str | None, scope: str | None) -> Batch | None:
        known = await self._remembered_request(tx, request_key, scope)
        batch_id = known.get("batch") or known.get("id") if known else None  # "id": rows of before
        return await tx.ops.get_batch(batch_id) if batch_id else None

    async def _create_batch(self, tx: Tx, run_count: int, parent_run_id: str | None, wait: bool,
                            idempotency_key: str | None) -> tuple[Batch, bool]:
        if idempotency_key:
            existing = await tx.ops.find_batch_by_key(idempotency_key)
            if existing is not None:
                return existing, True
        batch = Batch(id=new_id("batch"), run_count=run_count, created_at=tx.now, status="PENDING",
                      parent_run_id=parent_run_id, idempotency_key=idempotency_key)
        if wait:
            wp = Waitpoint(id=new_id("waitpoint"), type=WP_BATCH, status=WP_WAITING, created_at=tx.now,
                           batch_id=batch.id)
            await tx.ops.insert_waitpoint(wp)
            batch.waitpoint_id = wp.id
        await tx.ops.insert_batch(batch)
        return batch, False

    async def add_batch_runs(self, batch_id: str, run_ids: list[str]) -> Batch:
        async with self._tx() as tx:
            batch = await tx.ops.get_batch(batch_id)
            if batch is None:
                raise NotFoundError(f"Batch {batch_id} not found")
            return await self._add_batch_runs(tx, batch, run_ids)

    async def _add_batch_runs(self, tx: Tx, batch: Batch, run_ids: list[str]) -> Batch:
        ids = list(dict.fromkeys([*batch.run_ids, *run_ids]))
        await tx.ops.update_batch(batch.id, run_ids=ids, status="PROCESSING")
        batch.run_ids = ids
        await self._maybe_complete_batch(tx, batch.id)
        return batch

    async def _tick_waitpoints(self, tx: Tx) -> int:
        done = 0
        for wp in await tx.ops.due_waitpoints(tx.now):
            if wp.type == WP_DATETIME:
                await self._complete_wp(tx, wp, None, packets.JSON)
            else:
                await self._time_out_wp(tx, wp)
            done += 1
        return done
