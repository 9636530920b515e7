"""Running one attempt: payload in, completion body out.

The completion is `{"ok": true, "output", "outputType"}` or `{"ok": false, "error": {"name",
"message", "stack"}, "retry": bool}` (docs/worker-protocol.md). `None` means the attempt was
dropped (the run was canceled, or the daemon answered 409): nothing must be reported.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Any

from .. import packets
from ..errors import AttemptGone
from ..log_spool import SpoolWriter
from ..sdk import registry
from ..sdk.context import Context, RunState, enter_run, exit_run
from ..sdk.tasks import Task
from ..sdk.worker_client import WorkerClient
from . import stdio
from .lifecycle import Lifecycle, failure, failure_from


class _Spool:
    """This process's log spool, opened at its first attempt (None: the executor gave none)."""

    writer: SpoolWriter | None = None
    opened = False

    @classmethod
    def get(cls) -> SpoolWriter | None:
        if not cls.opened:
            cls.writer, cls.opened = SpoolWriter.from_env(), True
        return cls.writer


def _validation_failure(task: Task, exc: Exception) -> dict[str, Any]:
    # pydantic's errors name the field: say which, and do not retry a payload that cannot pass
    errors = exc.errors() if hasattr(exc, "errors") else []
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or '(payload)'}: {e.get('msg')}"
             for e in errors]
    message = f"Invalid payload for task {task.id!r}: " + ("; ".join(parts) or str(exc))
    return failure("ValidationError", message, "".join(traceback.format_exception(exc)),
                    retry=False)


async def run_task(task: Task | None, assignment: dict[str, Any], ctx: Context,
                   state: RunState) -> dict[str, Any]:
    """The completion body for one attempt, hooks and middleware included (lifecycle.py);
    AttemptGone propagates. A payload that does not decode or validate runs no hook."""
    if task is None:
        name = assignment.get("task_id")
        return failure("TaskNotFoundError", f"Task {name!r} is not defined in this version", "",
                       retry=False)
    try:
        payload = packets.decode(assignment.get("payload"), assignment.get("payload_type"))
        try:  # a schema_task validates; a schedules.task gets a ScheduledPayload; others as is
            payload = task.parse_payload(payload)
        except Exception as exc:
            return _validation_failure(task, exc)
    except (Exception, SystemExit) as exc:
        return failure_from(exc)
    lifecycle = state.lifecycle = Lifecycle(task, payload, ctx, state)
    return await lifecycle.run()


async def execute(assignment: dict[str, Any], client: WorkerClient, *,
                  resumed: asyncio.Event | None = None) -> dict[str, Any] | None:
    """Run the assignment's attempt with the SDK pointed at it; the completion body, or None
    when the attempt must be dropped without completing. `resumed`: the run shares its process
    (runtime/worker.py sets it when the daemon lets the run go on after a wait)."""
    ctx = Context.from_assignment(assignment)
    state = RunState(run_id=assignment["run_id"], attempt=int(assignment["attempt"]),
                     token=assignment["run_token"], client=client, loop=asyncio.get_running_loop(),
                     ctx=ctx, metadata=assignment.get("metadata"),
                     records=assignment.get("records"), resumed=resumed,
                     spool=_Spool.get() if resumed is None else None)  # one run's file
    token = enter_run(state, alone=resumed is None)
    try:
        body = await run_task(registry.get_task(assignment["task_id"]), assignment, ctx, state)
        stdio.end_run()
        if await _final_flush(state) and state.spool is not None:
            state.spool.clear()  # the daemon holds its lines: none left on disk after the run
        await state.settled()  # its completion after its resume (sdk/local_timers.py)
    except AttemptGone:
        return None
    finally:
        exit_run(token)
    return None if state.gone else body


async def _final_flush(state: RunState) -> bool:
    """Send what the run has buffered; False when some could not be sent."""
    try:
        await state.flush()
    except AttemptGone:
        raise
    except Exception as exc:  # lost logs must not lose the run's result
        print(f"trigger-local: could not send logs/metadata of {state.run_id}: {exc!r}",
              file=sys.stderr)
        return False
    return True
