"""The worker protocol, `/engine/v1/…` (docs/worker-protocol.md): the hot path of every run.

Kept lean on purpose: plain dicts in and out, no pydantic models, and run tokens checked
against the attempt remembered from the assignment, so most calls cost no extra store read."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from .. import protocol
from ..durable_calls import Call
from ..errors import AuthenticationError, ConflictError, ValidationError
from . import auth, run_calls
from .common import body_doc, float_param, ok, read_json, services_of
from .errors import JsonErrorRoute
from .options import int_option
from .run_auth import RunAuth
from .services import DaemonServices
from .tokens import callback_url, create_token
from .worker_bodies import attempt_outcome, until

router = APIRouter(route_class=JsonErrorRoute, tags=["worker"])

MAX_NEXT_WAIT_S = 60.0
MAX_WAIT_POLL_S = 30.0
MAX_SEQ = 2**62  # a shared process's message numbers (executors/sharing.py)


def run_auth(request: HTTPConnection) -> RunAuth:
    checker: RunAuth = request.app.state.run_auth
    return checker


@router.get("/engine/v1/workers/{worker_id}/next")
async def next_assignment(worker_id: str, request: Request, wait_s: str | None = Query(None),
                          ack: str | None = Query(None)) -> Response:
    svc = services_of(request)
    check_worker(svc, worker_id, auth.bearer(request))
    return ok(await next_answer(request, worker_id,
                                 float_param(wait_s, "wait_s", 20.0, MAX_NEXT_WAIT_S),
                                 _ack(ack)))


def _ack(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int_option(int(raw), "ack", 0, MAX_SEQ)
    except ValueError:
        raise ValidationError(f"ack must be a whole number, not {raw[:40]!r}") from None


def check_worker(svc: DaemonServices, worker_id: str, token: str | None) -> None:
    if not auth.same(token or "", auth.worker_token(svc.secret_key, worker_id)):
        raise AuthenticationError("Invalid worker token")


async def next_answer(request: HTTPConnection, worker_id: str, wait_s: float,
                      ack: int | None = None) -> dict[str, Any]:
    """The answer to a poll (`…/next`, or a channel's `poll` frame, api/channel.py)."""
    svc: DaemonServices = request.app.state.services
    assignment = await (svc.next_assignment(worker_id, wait_s) if ack is None
                        else svc.next_assignment(worker_id, wait_s, ack))
    if assignment == "retire":
        return protocol.retire_answer()
    if assignment is None:
        return protocol.nothing_answer()
    if isinstance(assignment, list):  # a shared process: its messages (executors/sharing.py)
        for message in assignment:
            if message.get("type") == protocol.ASSIGN:
                _given(request, svc, message["assignment"])
        return protocol.messages_answer(assignment)
    return protocol.assignment_answer(_given(request, svc, assignment))


def _given(request: HTTPConnection, svc: DaemonServices,
           assignment: dict[str, Any]) -> dict[str, Any]:
    run_id, attempt = assignment["run_id"], int(assignment["attempt"])
    assignment.setdefault("run_token", auth.run_token(svc.secret_key, run_id, attempt))
    run_auth(request).remember(run_id, attempt)
    return assignment


@router.post("/engine/v1/workers/{worker_id}/lost",
             openapi_extra=body_doc({"runs": {"type": "object"}}, ["runs"]))
async def runs_lost(worker_id: str, request: Request) -> Response:
    """A shared process adopted by a restarted daemon never got these runs (`{run id:
    attempt}`): the last daemon died before handing them over. They are interrupted and queued
    again (executors/sharing.py)."""
    svc = services_of(request)
    check_worker(svc, worker_id, auth.bearer(request))
    runs = (await read_json(request, svc)).get("runs")
    if not isinstance(runs, dict):
        raise ValidationError("runs must be an object of run id to attempt number")
    for run_id, attempt in runs.items():
        run = await svc.engine.queries.runs.get(str(run_id))
        if run is None or run.worker_id != worker_id or run.attempt_count != attempt:
            continue  # not this process's (any more): nothing to undo
        await svc.engine.worker_lost(run.id, run.attempt_count, "The task process never got "
                                     "this run: the daemon restarted while handing it over",
                                     interrupted=True)
    return ok({})


@router.post("/engine/v1/runs/{run_id}/attempts/{attempt}/complete",
             openapi_extra=body_doc({"ok": {"type": "boolean"}, "output": {"type": "string"},
                                     "outputType": {"type": "string"}, "error": {"type": "object"},
                                     "retry": {"type": "boolean"},
                                     "retryDelayS": {"type": "number"}}, ["ok"]))
async def complete_attempt(run_id: str, attempt: int, request: Request) -> Response:
    svc = services_of(request)
    run_auth(request).check_attempt(request, run_id, attempt)
    body = await read_json(request, svc)
    ask = body.get("next")
    if isinstance(ask, dict):  # checked first: a refused request must change nothing
        check_worker(svc, str(ask.get("workerId")), ask.get("workerToken"))
    run = await svc.engine.finish_attempt(run_id, attempt, attempt_outcome(body))
    if run.is_final:
        run_auth(request).forget(run_id)
    out: dict[str, Any] = {"status": run.status}
    if isinstance(ask, dict):
        # complete-and-take-next: the worker's next long-poll rides on this request, which
        # saves a round trip per run on the hot path (docs/worker-protocol.md)
        wait_s = float_param(str(ask.get("waitS", 20)), "waitS", 20.0, MAX_NEXT_WAIT_S)
        out["next"] = await next_answer(request, ask["workerId"], wait_s)
    return ok(out)


@router.post("/engine/v1/workers/{worker_id}/complete",
             openapi_extra=body_doc({"completions": {"type": "array",
                                                     "items": {"type": "object"}}},
                                    ["completions"]))
async def complete_many(worker_id: str, request: Request) -> Response:
    """The completions of several runs of a shared process in one request: each item is the
    body of `…/attempts/{n}/complete` plus `runId`, `attempt` and `runToken`. Answered once every
    one is committed, with one result per item in order: `{"status"}`, or `{"gone": true}` (the
    attempt is no longer current: drop it, as for a 409)."""
    svc = services_of(request)
    check_worker(svc, worker_id, auth.bearer(request))
    items = (await read_json(request, svc)).get("completions")
    return ok({"results": await finish_many(svc, run_auth(request), items)})


async def finish_many(svc: DaemonServices, checker: RunAuth, items: Any) -> list[dict[str, Any]]:
    """What `…/workers/{wid}/complete` and the channel's `complete` frame (api/channel.py) do:
    every completion checked first (a refused batch changes nothing), then each finished; the
    results come once every one is committed."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValidationError("completions must be a list of completion objects")
    outcomes = []
    for item in items:
        run_id, attempt = str(item.get("runId")), item.get("attempt")
        if not isinstance(attempt, int) or not auth.same(
                str(item.get("runToken") or ""), auth.run_token(svc.secret_key, run_id, attempt)):
            raise AuthenticationError(f"Invalid run token for {run_id[:40]}")
        outcomes.append((run_id, attempt, attempt_outcome(item)))
    # all queued at once: they share one transaction (GroupCommit, engine/unit.py), and the
    # answer is written the loop turn after its commit (no task per completion in between)
    finishing = [(run_id, svc.engine.finish_attempt(run_id, attempt, outcome))
                 for run_id, attempt, outcome in outcomes]
    results: list[dict[str, Any]] = []
    failed: BaseException | None = None
    for run_id, done in finishing:
        try:
            run = await done
        except ConflictError:
            results.append({"gone": True})
            continue
        except Exception as exc:  # noqa: BLE001 - each one's error is taken; the first is raised
            failed = failed or exc
            continue
        if run.is_final:
            checker.forget(run_id)
        results.append({"status": run.status})
    if failed is not None:
        raise failed
    return results


@router.post("/engine/v1/runs/{run_id}/attempts/{attempt}/wait",
             openapi_extra=body_doc({"kind": {"type": "string"}, "until": {},
                                     "waitpointId": {"type": "string"},
                                     "idempotencyKey": {"type": "string"}}, ["kind"]))
async def wait(run_id: str, attempt: int, request: Request) -> Response:
    svc = services_of(request)
    run_auth(request).check_attempt(request, run_id, attempt)
    return ok(await wait_answer(svc, run_id, attempt, await read_json(request, svc)))


async def wait_answer(svc: DaemonServices, run_id: str, attempt: int,
                      body: dict[str, Any]) -> dict[str, Any]:
    """What `…/attempts/{n}/wait` and the channel's `wait` frame (api/channel.py) answer."""
    kind = body.get("kind")
    if not isinstance(kind, str):
        raise ValidationError("kind must be duration, token, run or batch")
    decision = await svc.engine.wait(run_id, attempt, kind=kind,
                                     until=until(body.get("until"), svc.engine.clock.now()),
                                     waitpoint_id=body.get("waitpointId"),
                                     idempotency_key=body.get("idempotencyKey"),
                                     idempotency_key_ttl=body.get("idempotencyKeyTTL"),
                                     record=Call.parse(body.get("record"), attempt),
                                     keeps_timer=body.get("keepsTimer") is True)
    out: dict[str, Any] = {"action": decision.action, "waitpointId": decision.waitpoint_id}
    if decision.result is not None:
        out["result"] = decision.result
    if decision.until is not None:  # a shared process may keep this wait's timer (docs/waits.md)
        out["until"] = decision.until
    return out


@router.get("/engine/v1/runs/{run_id}/waits/{waitpoint_id}")
async def poll_wait(run_id: str, waitpoint_id: str, request: Request,
                    wait_s: str | None = Query(None)) -> Response:
    """`{"done": false}` after up to `wait_s` seconds, or the result once the run has its slot
    back."""
    svc = services_of(request)
    await run_auth(request).check(request, svc.engine, run_id)
    engine = svc.engine
    timeout = float_param(wait_s, "wait_s", 5.0, MAX_WAIT_POLL_S)
    if engine.stopping:
        return _stopping()
    # listen before reading, so a wake-up between the read and the wait is not lost
    woken = asyncio.ensure_future(engine.hub.wait(f"run:{run_id}", timeout))
    try:
        result = await engine.wait_result(run_id, waitpoint_id)
        if result is None and timeout > 0:
            await woken
            result = await engine.wait_result(run_id, waitpoint_id)
    finally:
        woken.cancel()
    if result is None and engine.stopping:
        return _stopping()
    return ok({"done": True, "result": result} if result is not None else {"done": False})


def _stopping() -> Response:
    """The daemon is stopping: the waiting process polls again later (503 is retried, for up to
    TRIGGER_LOCAL_ORPHAN_TIMEOUT_S) and closes its connection meanwhile, so that it can be
    checkpointed, and it reaches the next daemon (executors/stopping.py)."""
    return ok({"error": "The daemon is stopping; poll again"}, status=503,
              headers={"Connection": "close"})


@router.post("/engine/v1/runs/{run_id}/trigger",
             openapi_extra=body_doc({"task": {"type": "string"}, "payload": {"type": "string"},
                                     "payloadType": {"type": "string"},
                                     "options": {"type": "object"}, "wait": {"type": "boolean"}},
                                    ["task"]))
async def trigger_child(run_id: str, request: Request) -> Response:
    return await _run_call(request, run_id, run_calls.trigger_child)


@router.post("/engine/v1/runs/{run_id}/batch",
             openapi_extra=body_doc({"items": {"type": "array", "items": {"type": "object"}},
                                     "wait": {"type": "boolean"}}, ["items"]))
async def batch_children(run_id: str, request: Request) -> Response:
    return await _run_call(request, run_id, run_calls.batch_children)


@router.post("/engine/v1/runs/{run_id}/logs",
             openapi_extra=body_doc({"attempt": {"type": "integer"},
                                     "entries": {"type": "array", "items": {"type": "object"}}},
                                    ["entries"]))
async def append_logs(run_id: str, request: Request) -> Response:
    return await _run_call(request, run_id, run_calls.append_logs)


@router.put("/engine/v1/runs/{run_id}/metadata",
            openapi_extra=body_doc({"metadata": {"type": "object"}}))
async def put_metadata(run_id: str, request: Request) -> Response:
    return await _run_call(request, run_id, run_calls.put_metadata)


async def _run_call(request: Request, run_id: str, handler: run_calls.Handler) -> Response:
    """A run call over HTTP: the token must be the run's current attempt's."""
    svc = services_of(request)
    attempt = await run_auth(request).check(request, svc.engine, run_id)
    return ok(await handler(svc, run_id, attempt, await read_json(request, svc)))


@router.post("/engine/v1/runs/{run_id}/tokens",
             openapi_extra=body_doc({"timeout": {"type": "string"},
                                     "idempotencyKey": {"type": "string"},
                                     "tags": {"type": "array", "items": {"type": "string"}}}))
async def create_run_token(run_id: str, request: Request) -> Response:
    svc = services_of(request)
    attempt = await run_auth(request).check(request, svc.engine, run_id)
    body = await read_json(request, svc)
    run = await svc.engine.queries.runs.get(run_id)
    wp, cached = await create_token(request, svc, body, run_id=run_id,
                                    record=Call.parse(body.get("record"), attempt or 0),
                                    project=run.project if run else None)
    return ok({"id": wp.id, "url": callback_url(request, svc, wp.id), "isCached": cached})


@router.post("/engine/v1/runs/{run_id}/attempts/{attempt}/steps",
             openapi_extra=body_doc({"record": {"type": "object"}, "status": {"type": "string"},
                                     "result": {"type": "string"},
                                     "resultType": {"type": "string"}}, ["record", "status"]))
async def save_step(run_id: str, attempt: int, request: Request) -> Response:
    """A `step.run`'s or `ctx.checkpoint`'s outcome (docs/durability.md, api/run_calls.py)."""
    svc = services_of(request)
    run_auth(request).check_attempt(request, run_id, attempt)
    return ok(await run_calls.save_step(svc, run_id, attempt, await read_json(request, svc)))
