"""Checkpointing the process executor's waiting runs with CRIU (docs/checkpoints.md).

Freeze: the runtime, told `checkpoint`, closes its connections and POSTs `freeze`; the daemon
waits (briefly) until the process holds no TCP socket, then `criu dump`s it. The process is
gone afterwards: its place among `max_processes` is free and the run is `suspended`. Any
failure leaves the process running and the run held, with the reason recorded.

Restore: when the run gets its slot back the dispatcher calls `executor.resume(run)`, which
`criu restore`s the process (same pid, not our child: watched by pidfd like an adopted one).
A failed restore fails the attempt with CRIU's log excerpt; the retry policy decides the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from ..engine import Engine
from ..engine.events import RunStatusChanged
from ..errors import CriuError
from ..ids import new_id
from ..store.models import DELAYED, FINAL_STATUSES, WAITING, Checkpoint, Run
from . import criu
from .assignments import spool_path
from .base import CheckpointSupport
from .sockets import SOCKET_WAIT_S, wait_pid_free, wait_until_no_tcp
from .workers import BUSY, WorkerHandle, pid_is_worker

log = structlog.get_logger("checkpoints")

PID_FREE_WAIT_S = 5.0


class CheckpointerBase:
    """What both checkpointers share (this one and executors/docker_checkpoints.py): the freeze
    decision a resume waits for, the run-still-waits check before a dump, finding a run's
    checkpoint, and dropping the checkpoints of runs that will never be restored."""

    def __init__(self, support: CheckpointSupport) -> None:
        self.support = support
        self.engine: Engine = support.engine
        self.settings = support.settings
        self.by_worker: dict[str, Checkpoint] = {}  # active checkpoints by the worker they froze
        self.engine.hub.subscribe(RunStatusChanged, self._on_run_moved)

    async def freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                     socket_wait_s: float = SOCKET_WAIT_S) -> bool:
        """Checkpoint `worker`; True when it is checkpointed (and has stopped)."""
        # Set before anything else: a resume() from now on waits for this decision. (Set only
        # once the socket wait was over, a wait completing during it resumed the run on the
        # live process, and the dump that followed left the EXECUTING run without a process.)
        worker.freezing = asyncio.get_running_loop().create_future()
        frozen = False
        try:
            frozen = await self._freeze(worker, run_id, attempt, socket_wait_s)
        finally:
            worker.freezing.set_result(frozen)
        return frozen

    async def _freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                      socket_wait_s: float) -> bool:
        raise NotImplementedError

    async def _still_waits(self, run_id: str, attempt: int) -> bool:
        """False when the wait completed (or the run ended) before the dump began: a dump and a
        restore now would only delay the run; the task polls and continues."""
        run = await self.engine.queries.runs.get(run_id)
        if run is None or run.status != WAITING or run.attempt_count != attempt:
            log.debug("not checkpointing: the run no longer waits", run=run_id,
                      status=run and run.status)
            return False
        return True

    def checkpoint_of(self, run: Run) -> Checkpoint | None:
        ck = self.by_worker.get(run.worker_id or "")
        if ck is None or ck.run_id != run.id or ck.attempt != run.attempt_count:
            return None
        return ck

    def _on_run_moved(self, event: RunStatusChanged) -> None:
        # a run that ended, or will start again from scratch, never needs its checkpoint
        if event.status not in FINAL_STATUSES and event.status != DELAYED:
            return
        for worker_id, ck in list(self.by_worker.items()):
            if ck.run_id == event.run_id:
                del self.by_worker[worker_id]
                self._discard(ck, f"run {event.status.lower()}")

    def _discard(self, ck: Checkpoint, why: str) -> None:
        raise NotImplementedError


class Checkpointer(CheckpointerBase):
    """CRIU on a task process: the process executor's `Checkpoints` (executors/base.py)."""

    def __init__(self, support: CheckpointSupport) -> None:
        super().__init__(support)
        self.capability = criu.Capability(False, "CRIU has not been checked yet")
        self.root = Path(self.settings.checkpoint_dir or self.settings.home / "checkpoints")

    async def start(self) -> None:
        """Decide once whether this host can checkpoint, and load the checkpoints on disk."""
        if self.settings.checkpoints == "off":
            self.capability = criu.Capability(
                False, "checkpoints are turned off (checkpoints = \"off\")")
        else:
            self.capability = await criu.check(self.settings.criu_path)
        if not self.capability.ok:
            log.info("waiting runs will be held, not checkpointed", reason=self.capability.reason,
                     criu_said=self.capability.detail)
        for ck in await self.engine.queries.checkpoints.active():
            if ck.executor == "process":
                self.by_worker[ck.worker_id] = ck
        for ck in await self.engine.queries.checkpoints.pending():
            if ck.executor == "process":
                self.support.settled(ck, await self.settle_pending(ck))

    def describe(self) -> dict[str, Any]:
        return {"available": self.capability.ok, "reason": self.capability.reason,
                "detail": self.capability.detail, "replays": self.capability.failed_at_run_time,
                "criu_version": self.capability.version, "dir": str(self.root),
                "count": len(self.by_worker),
                "bytes": sum(c.size_bytes for c in self.by_worker.values())}

    # -- freezing ---------------------------------------------------------------------------
    async def _freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                      socket_wait_s: float) -> bool:
        """Dump `worker`'s process (it is gone afterwards)."""
        pid = worker.pid
        assert pid is not None
        if not await wait_until_no_tcp(pid, socket_wait_s):
            await self.engine.checkpoint_refused(
                run_id, "the task process still holds a TCP connection, which CRIU cannot "
                        "checkpoint: the run is held instead")
            return False
        if not await self._still_waits(run_id, attempt):
            return False
        images = self.root / run_id / new_id("checkpoint")
        ck = Checkpoint(id=images.name, run_id=run_id, attempt=attempt, worker_id=worker.id,
                        pid=pid, path=str(images), status="", created_at=time.time())
        await self.engine.begin_checkpoint(ck)
        try:
            dump_ms = await criu.dump(self.settings.criu_path, pid, images)
            # CRIU killed the process; once the executor has reaped it (worker.exited) its pid
            # is free for the restore, which may be wanted at once (the wait completed meanwhile)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.exited.wait(), PID_FREE_WAIT_S)
        except (CriuError, OSError) as exc:
            _remove(images)
            await self.engine.undo_checkpoint(ck.id)
            log.warning("checkpoint failed: holding the run", run=run_id, error=str(exc)[:300])
            then = ""
            if isinstance(exc, CriuError) and not _out_of_space(str(exc)):
                self._switch_to_replay(exc)
                then = "; it resumes by replay (this daemon no longer checkpoints)"
            await self.engine.checkpoint_refused(
                run_id, f"checkpoint failed, the run is held: {exc}{then}")
            return False
        await test_pause_before_record()
        ck.size_bytes, ck.dump_ms = criu.images_size(images), round(dump_ms, 1)
        if await self.engine.record_checkpoint(ck):
            self.by_worker[worker.id] = ck
            log.info("run checkpointed", run=run_id, ms=ck.dump_ms, bytes=ck.size_bytes)
        else:
            _remove(images)
        return True

    def _switch_to_replay(self, exc: CriuError) -> None:
        """`criu check` passed at start, yet a dump failed (seen: "Can't setup RLIMIT_NOFILE"
        in some containers): this host's CRIU does not work for our processes, and every later
        dump would fail the same way after costing a freeze. From now on a waiting run is not
        checkpointed: once it has waited `hold_threshold_s` it is evicted and resumes by replay
        (executors/eviction.py), the one whose dump just failed too. The status, `doctor` and
        each run's hold reason say why. A restart tries CRIU again."""
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        when = time.strftime("%H:%M:%S")
        self.capability = criu.Capability(
            False, f"a checkpoint dump failed at run time ({when}: {first}); this daemon resumes "
                   "waiting runs by replay from now on instead of checkpointing them: a run "
                   f"waiting longer than hold_threshold_s ({self.settings.hold_threshold_s:g} s) "
                   "leaves memory (restart the daemon to try CRIU again)",
            self.capability.version, failed_at_run_time=True)
        log.warning("checkpoints switched off for this daemon: a dump failed at run time; "
                    "waiting runs resume by replay", error=first)

    # -- a dump that a killed daemon left pending ----------------------------------------------
    async def settle_pending(self, ck: Checkpoint) -> bool:
        """Finish (True) or undo (False) a dump that was under way when the last daemon died.
        Finished: the process is gone and CRIU wrote a complete image set (`inventory.img` is
        written last, and CRIU kills the process only after a dump succeeded)."""
        images = Path(ck.path)
        # criu outlives a daemon killed with -9: a dump still running holds the process traced
        await criu.wait_untraced(ck.pid, criu.DUMP_TIMEOUT_S)
        if not pid_is_worker(ck.pid, ck.worker_id) and (images / "inventory.img").exists():
            ck.size_bytes = criu.images_size(images)
            if await self.engine.record_checkpoint(ck):
                self.by_worker[ck.worker_id] = ck
                log.info("finished a checkpoint the last daemon left pending", run=ck.run_id,
                         checkpoint=ck.id)
                return True
        _remove(images)
        await self.engine.undo_checkpoint(ck.id)
        log.info("undid a checkpoint the last daemon left pending", run=ck.run_id, checkpoint=ck.id)
        return False

    # -- restoring --------------------------------------------------------------------------
    async def restore(self, run: Run, ck: Checkpoint) -> WorkerHandle | None:
        """Bring the process back. None: it could not be, and the attempt has been failed."""
        self.by_worker.pop(ck.worker_id, None)
        images = Path(ck.path)
        try:
            # CRIU restores the original pid: the dumped process must be fully gone (reaped)
            await wait_pid_free(ck.pid, PID_FREE_WAIT_S)
            restore_ms = await criu.restore(self.settings.criu_path, images)
            if not pid_is_worker(ck.pid, ck.worker_id):
                raise CriuError(f"criu restore returned but process {ck.pid} is not running")
        except (CriuError, OSError) as exc:
            _remove(images)
            message = f"Restoring the run's checkpoint failed ({exc}): the run resumes by replay"
            log.warning("restore failed: resuming by replay", run=run.id, error=str(exc)[:300])
            await self.engine.checkpoint_unusable(ck.id, message)
            await self.engine.records.resume_by_replay(run.id, run.attempt_count, message)
            return None
        # the process runs again: these images can never be used twice. Deleted in a thread:
        # ~5 ms of unlinking on the event loop would delay the restored process's first poll
        self.support.run_job(asyncio.to_thread(_remove, images))
        await self.engine.checkpoint_restored(ck.id, restore_ms)
        log.info("run restored", run=run.id, pid=ck.pid, ms=round(restore_ms, 1))
        return WorkerHandle(id=ck.worker_id, version_id=run.version_id or "", pid=ck.pid,
                            log_path=self.support.logs_dir / f"{ck.worker_id}.log", state=BUSY,
                            run_id=run.id, attempt=run.attempt_count)

    # -- clean-up ---------------------------------------------------------------------------
    def _discard(self, ck: Checkpoint, why: str) -> None:
        _remove(Path(ck.path))
        # the frozen process will never run again: no line of its spool is due
        spool_path(self.support.logs_dir / f"{ck.worker_id}.log").unlink(missing_ok=True)
        # retried (a full disk): a row left active would be loaded again by the next daemon
        self.support.run_job(self.support.supervisor.retry_until_done(
            f"forgetting checkpoint {ck.id}",
            lambda: self.engine.checkpoint_unusable(ck.id, why, deleted=True)))


async def test_pause_before_record() -> None:
    """A test hook, off unless TRIGGER_LOCAL_TEST_PAUSE_BEFORE_CHECKPOINT_RECORD_S is set: stay in
    the window between a finished dump and its record, so that a test can kill the daemon there."""
    pause = float(os.environ.get("TRIGGER_LOCAL_TEST_PAUSE_BEFORE_CHECKPOINT_RECORD_S") or 0)
    if pause > 0:
        log.warning("test hook: pausing before recording a checkpoint", seconds=pause)
        await asyncio.sleep(pause)


def _out_of_space(message: str) -> bool:
    """A dump that failed for want of disk space says nothing about CRIU on this host."""
    return "No space left" in message or "ENOSPC" in message


def _remove(images: Path) -> None:
    shutil.rmtree(images, ignore_errors=True)
    try:
        images.parent.rmdir()  # the run's directory, once empty
    except OSError:
        pass
