"""What a task process is given: its environment when it starts, and an assignment (one run's
attempt, docs/worker-protocol.md) each time it takes a run; and what it leaves when it dies
during an attempt: the log lines in its spool (log_spool.py) it had not sent, stored before the
attempt's end is recorded, so `runs logs` shows the lines logged just before a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from .. import packet_sharing, packet_store
from ..durations import iso
from ..engine import Engine
from ..engine.log_cap import lines_received
from ..engine.retry import run_policy
from ..errors import PAYLOAD_LIMIT_SETTING
from ..log_spool import SPOOL_ENV, unsent
from ..projects import PROJECT_ENV
from ..store.models import Attempt, LogEntry, Run, RunStep, Version
from ..tokens import project_key, run_token, worker_token

log = structlog.get_logger("executor")


def worker_env(url: str, secret_key: str, worker_id: str, version: Version,
               project_dir: str, log_path: Path | None = None, *,
               payload_limit: int | None = None) -> dict[str, str]:
    """The variables the runtime of a task process reads (they win over the user's: a user
    value would break the wiring). The task's project and that project's key: the SDK inside
    a task reaches its own project only (`tasks.trigger` of a task id resolves there).
    `payload_limit`: the daemon's, so the runtime sends log bursts it takes
    (sdk/log_bursts.py)."""
    return {"TRIGGER_LOCAL_DAEMON_URL": url,
            "TRIGGER_LOCAL_WORKER_ID": worker_id,
            "TRIGGER_LOCAL_WORKER_TOKEN": worker_token(secret_key, worker_id),
            "TRIGGER_LOCAL_PROJECT_DIR": project_dir,
            "TRIGGER_LOCAL_TASK_DIRS": json.dumps(version.dirs),
            "TRIGGER_LOCAL_TASK_FILES": json.dumps(sorted({t.file for t in version.tasks
                                                           if t.file})),
            "TRIGGER_LOCAL_VERSION_ID": version.id,
            "TRIGGER_API_URL": url,
            "TRIGGER_SECRET_KEY": project_key(secret_key, version.project),
            PROJECT_ENV: version.project,
            "PYTHONUNBUFFERED": "1",
            **({PAYLOAD_LIMIT_SETTING: str(payload_limit)} if payload_limit else {}),
            # a process with an output log (the process executor's) spools its log lines
            **({SPOOL_ENV: str(spool_path(log_path))} if log_path is not None else {})}


def replay_records(steps: list[RunStep], home: Path) -> list[dict[str, Any]]:
    """The run's durable records as the runtime walks them (sdk/replay.py), compact: a large
    step result is read back from the packet store like a payload."""
    out = []
    for step in steps:
        item: dict[str, Any] = {"seq": step.seq, "kind": step.kind, "status": step.status}
        if step.name is not None:
            item["name"] = step.name
        if step.result is not None:
            item["result"], item["resultType"] = packet_store.resolve(home, step.result,
                                                                      step.result_type)
        for key, value in (("waitpointId", step.waitpoint_id), ("childRunId", step.child_run_id),
                           ("batchId", step.batch_id)):
            if value:
                item[key] = value
        out.append(item)
    return out


def assignment(run: Run, attempt: Attempt, version: Version, secret_key: str,
               home: Path, records: list[RunStep] | None = None) -> dict[str, Any]:
    """The run a process takes: the Assignment of docs/worker-protocol.md. An offloaded payload
    (`application/store`) is read back so the task gets the real one. `records`: the run's
    durable records, which the attempt replays (docs/durability.md)."""
    task = version.task(run.task_id)
    payload, payload_type = packet_store.resolve(home, run.payload, run.payload_type)
    # a run started in its trigger's transaction was created, started and given its attempt at
    # one time: formatted once (~7 µs a date in the daemon's loop, issue #13)
    attempt_started = iso(attempt.started_at)
    started = attempt_started if run.started_at == attempt.started_at else iso(run.started_at)
    created = started if run.created_at == run.started_at else iso(run.created_at)
    return {
        "records": replay_records(records, home) if records else [],
        "run_id": run.id, "attempt": attempt.number,
        "run_token": run_token(secret_key, run.id, attempt.number),
        "task_id": run.task_id, "payload": payload, "payload_type": payload_type,
        "metadata": run.metadata,
        "ctx": {
            "run": {"id": run.id, "tags": run.tags, "is_test": run.is_test,
                    "created_at": created, "started_at": started,
                    "idempotency_key": run.idempotency_key_user or run.idempotency_key,
                    "max_attempts": run_policy(run, version).max_attempts,
                    "max_duration": run.max_duration_s, "parent_run_id": run.parent_run_id,
                    "root_run_id": run.root_run_id, "batch_id": run.batch_id},
            "task": {"id": run.task_id, "file": task.file if task else "",
                     "export_name": task.export_name if task else ""},
            # interrupted tries do not count: the try after one has the same number
            "attempt": {"number": run.shown_attempt(attempt.number), "id": attempt.id,
                        "started_at": attempt_started},
            "queue": {"name": run.queue}, "machine": run.machine or "small-1x",
            "version": version.id, "environment": {"type": "DEVELOPMENT"},
        },
    }


async def before_start(engine: Engine, run: Run, home: Path) -> list[RunStep]:
    """What an attempt of `run` (DEQUEUED: no attempt of it runs, so its records do not
    change) reads, read before the attempt starts: its durable records to replay (none before
    a first attempt), and the packets its payload and records name fetched into `home` when
    they may be another daemon's (packet_sharing.py). A database that does not answer then
    fails the dispatcher's round, which puts the run back on its queue; after the start
    committed it would leave the run EXECUTING with no process given it."""
    records = [] if run.attempt_count == 0 else await engine.records.listed(run.id)
    await packet_sharing.hold_run(engine.packets, home, run, records)
    return records


async def assignment_read(engine: Engine, run: Run, attempt: Attempt, version: Version,
                          secret_key: str, home: Path) -> dict[str, Any]:
    """The `assignment` of `run`'s `attempt`, which has started, its records read now (a
    hand-over's start, executors/handover.py, whose failure here interrupts the attempt;
    on a store daemons share the dispatcher starts every run, and reads them before,
    `before_start`)."""
    first = attempt.number == 1
    records = [] if first else await engine.records.for_attempt(run, attempt.number)
    await packet_sharing.hold_run(engine.packets, home, run, records)
    return assignment(run, attempt, version, secret_key, home, records)


def spool_path(log_path: Path) -> Path:
    """A task process's spool, next to its output log."""
    return log_path.with_suffix(".spool")


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default


def _entry(run_id: str, attempt: int, raw: dict[str, object], now: float) -> LogEntry:
    attributes = raw.get("attributes")
    ended = raw.get("endedAt")
    return LogEntry(run_id=run_id, attempt=attempt, at=_float(raw.get("at"), now),
                    level=str(raw.get("level") or "info"), message=str(raw.get("message", "")),
                    attributes=attributes if isinstance(attributes, dict) else {},
                    kind="span" if raw.get("kind") == "span" else "log",
                    span_id=str(raw["spanId"]) if raw.get("spanId") else None,
                    parent_span_id=str(raw["parentSpanId"]) if raw.get("parentSpanId") else None,
                    ended_at=_float(ended, now) if ended is not None else None)


async def lose_attempt(engine: Engine, log_path: Path, run_id: str, attempt: int, reason: str,
                       *, interrupted: bool, last: bool = True) -> None:
    """The process of `attempt` has exited: store what its spool holds that the daemon has not
    (and remove the spool once its `last` run is done: a shared process's spool holds the lines
    of every run it held), then record the attempt's end (engine.worker_lost)."""
    path = spool_path(log_path)
    try:
        await store_unsent(engine, path, run_id, attempt)
    finally:
        if last:
            path.unlink(missing_ok=True)
    await engine.worker_lost(run_id, attempt, reason, interrupted=interrupted)


async def store_unsent(engine: Engine, path: Path, run_id: str, attempt: int) -> None:
    """Store the lines of `attempt` the spool at `path` holds and the daemon does not."""
    held = await lines_received(engine.queries.logs, engine.ctx.log_caps, run_id, attempt)
    missing = unsent(path, run_id, attempt, held)
    if missing:
        now = engine.clock.now()
        # from line `held` on: one a burst stored since the count above is not stored twice
        await engine.append_logs([_entry(run_id, attempt, raw, now) for raw in missing], held,
                                 recount=True)
        log.info("stored log lines the task process had not sent", run=run_id,
                 attempt=attempt, lines=len(missing))
