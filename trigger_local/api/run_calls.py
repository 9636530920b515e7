"""What a task process's run calls do — logs, metadata, child triggers, batches, steps — once
the caller is known to hold the run: the same for their HTTP routes (api/worker.py) and for a
channel's `call` frame (api/channel.py), so both answer alike, each once what it did is
committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .. import packet_sharing, packet_store, protocol
from ..durable_calls import Call
from ..engine import TriggerRequest
from ..errors import ConflictError, NotFoundError, ValidationError
from ..statuses import FINAL_STATUSES
from ..strict_json import shown
from .auth import Caller
from .options import batch_item_request, int_option, trigger_request
from .packets import check_payload_packets
from .services import DaemonServices
from .worker_bodies import log_entries

#: (services, run id, the caller's attempt, body) → the route's answer
Handler = Callable[[DaemonServices, str, int | None, dict[str, Any]], Awaitable[dict[str, Any]]]


async def trigger_child(svc: DaemonServices, run_id: str, attempt: int | None,
                        body: dict[str, Any]) -> dict[str, Any]:
    task = body.get("task")
    if not isinstance(task, str) or not task:
        raise ValidationError("task (the id of the task to trigger) is required")
    req = trigger_request(task, body)
    wait_for = bool(body.get("wait"))
    req.parent_run_id, req.resume_parent = run_id, wait_for
    req.record = Call.parse(body.get("record"), attempt or 0)
    await _check_packets(svc, run_id, [req])
    result = await svc.engine.trigger(req, wait=wait_for)
    out: dict[str, Any] = {"id": result.run.id, "isCached": result.cached}
    if result.waitpoint_id:
        out["waitpointId"] = result.waitpoint_id
    return out


async def batch_children(svc: DaemonServices, run_id: str, attempt: int | None,
                         body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ValidationError("items must be a non-empty list of "
                              "{task, payload, payloadType, options}")
    reqs = [batch_item_request(item, i) for i, item in enumerate(items)]
    await _check_packets(svc, run_id, reqs)
    batch, results, _ = await svc.engine.batch_trigger(
        reqs, parent_run_id=run_id, wait=bool(body.get("wait")),
        record=Call.parse(body.get("record"), attempt or 0))
    out: dict[str, Any] = {"batchId": batch.id,
                           "runs": [{"id": r.run.id, "isCached": r.cached} for r in results]}
    if batch.waitpoint_id:
        out["waitpointId"] = batch.waitpoint_id
    return out


async def _check_packets(svc: DaemonServices, run_id: str, reqs: list[TriggerRequest]) -> None:
    """A task's child payload packets are its run's project's (api/packets.py)."""
    if any(r.payload_type == packet_store.STORE for r in reqs):
        run = await svc.engine.queries.runs.get(run_id)
        await check_payload_packets(svc, Caller(run.project if run else None, scoped=True), reqs)


async def append_logs(svc: DaemonServices, run_id: str, attempt: int | None,
                      body: dict[str, Any]) -> dict[str, Any]:
    again = body.get("again")
    if again is not None and not isinstance(again, bool):  # a truthy "no" would drop lines
        raise ValidationError(f"again must be true or false, not {shown(again)}")
    first = int_option(body.get("first"), "first", 0, 2**62)
    if again and first is None:  # without it the daemon cannot tell which lines it holds
        raise ValidationError("first (the number of the burst's first line among the "
                              "attempt's lines) is required with again")
    entries = log_entries(run_id, body, attempt, svc.engine.clock.now())
    await _check_attempt_takes_logs(svc, run_id, entries[0].attempt if entries else attempt)
    # its lines from `first` on may be stored already: sent again, or read from the spool of
    # its process, which died meanwhile (executors/assignments.py)
    await svc.engine.append_logs(entries, first, recount=bool(again))
    return {}


async def _check_attempt_takes_logs(svc: DaemonServices, run_id: str, number: int | None) -> None:
    """Log lines belong to an attempt that exists, of a run that has not ended: else 404 / 409
    and nothing stored (lines of a canceled run's process, or an attempt number made up, used
    to be kept). The runtime takes either answer as "the attempt is gone"."""
    run = await svc.engine.queries.runs.get(run_id)
    if run is None:
        raise NotFoundError(f"Run {run_id} not found")
    if number is None or not 1 <= number <= run.attempt_count:
        raise NotFoundError(f"Run {run_id} has no attempt {number} (it has "
                            f"{run.attempt_count}): log lines are kept for an attempt that "
                            "exists")
    if run.status in FINAL_STATUSES:
        raise ConflictError(f"Run {run_id} has ended ({run.status}): it takes no more log "
                            "lines; drop the run")


async def put_metadata(svc: DaemonServices, run_id: str, attempt: int | None,
                       body: dict[str, Any]) -> dict[str, Any]:
    metadata, operations = body.get("metadata"), body.get("operations")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationError("metadata must be a JSON object")
    if operations is not None and not isinstance(operations, list):
        raise ValidationError("operations must be a list")
    return {"metadata": await svc.engine.update_metadata(run_id, metadata, operations)}


async def save_step(svc: DaemonServices, run_id: str, attempt: int | None,
                    body: dict[str, Any]) -> dict[str, Any]:
    """A `step.run`'s or `ctx.checkpoint`'s outcome (docs/durability.md): kept as the run's
    record at its seq; a result of 128 KiB or more goes to the packet store. `attempt` is the
    route's (the token was checked against it)."""
    number = attempt or 0
    call = Call.parse(body.get("record"), number)
    if call is None:
        raise ValidationError("record {seq, kind, name} is required")
    result, result_type = body.get("result"), body.get("resultType") or "application/json"
    if result is not None and not isinstance(result, str):
        raise ValidationError("result must be a packet string (or null)")
    if not isinstance(result_type, str):
        raise ValidationError("resultType must be a string")
    try:
        result, result_type = await packet_sharing.offload(
            svc.engine.packets, svc.settings.home, f"steps/{run_id}/{call.seq}", result,
            result_type)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    step = await svc.engine.records.save(run_id, number, call, result, result_type,
                                         str(body.get("status")))
    return {"seq": step.seq, "status": step.status}


HANDLERS: dict[str, Handler] = {
    protocol.LOGS: append_logs, protocol.METADATA: put_metadata,
    protocol.TRIGGER: trigger_child, protocol.BATCH: batch_children, protocol.STEPS: save_step}

#: calls whose token must be that attempt's exactly (the route has the attempt in its path);
#: the others take the run's current attempt's token
BY_ATTEMPT = frozenset({protocol.STEPS})
