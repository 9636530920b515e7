"""The task side of replay (docs/durability.md): a per-run cursor over the durable records the
assignment carries.

Every durable call a task makes — a wait, a token, a child trigger, a step, a checkpoint — takes
the next `seq` from its run's cursor (`take`). A completed record answers the call at once, with
no round trip; a pending one (a wait still waiting) sends the same record so the daemon blocks
on the same waitpoint; past the last record the call goes to the daemon with its seq and is
recorded there. A record of another kind or name at a seq is a non-deterministic replay: the
attempt fails, not retried.

The cursor belongs to the run's `RunState`, never to the process: several runs in one process
each walk their own records."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ..durable_calls import COMPLETED, Call, mismatch, spelled
from ..errors import NonDeterministicReplayError

Record = dict[str, Any]


class Replay:
    """The records of one run (the assignment's `records`) and how far this attempt is."""

    def __init__(self, records: list[Record] | None = None) -> None:
        self._records = {int(r["seq"]): r for r in records or ()}
        # the last call a replay must make again; a checkpoint may be skipped (see `take`), so
        # it does not count: the logs after a skipped one are new, not already sent
        self.last = max((seq for seq, r in self._records.items()
                         if r.get("kind") != "checkpoint"), default=0)
        self.seq = 0
        self._lock = threading.Lock()  # a sync task's thread takes seqs too
        checkpoints = [r for r in self._records.values() if r.get("kind") == "checkpoint"
                       and r.get("status") == COMPLETED]
        #: the newest recorded `ctx.checkpoint` (name, result packet, type), or None
        self.checkpoint: Record | None = max(checkpoints, key=lambda r: int(r["seq"]),
                                             default=None)

    @property
    def replaying(self) -> bool:
        """True until this attempt has made every recorded call again: its logs and spans
        until then were sent by the attempt that made the records."""
        return self.seq < self.last

    @property
    def count(self) -> int:
        return len(self._records)

    def take(self, kind: str, name: str | None = None) -> tuple[Call, Record | None]:
        """The next durable call: its `Call` (what the daemon records) and its record, if this
        run has one at that seq (NonDeterministicReplayError when it is another call)."""
        with self._lock:
            self.seq += 1
            # a checkpoint is a progress marker, not a call whose place matters: code that
            # branches on `ctx.last_checkpoint` (trigger.do's way) skips the ones it passed
            while kind != "checkpoint" and self._kind(self.seq) == "checkpoint":
                self.seq += 1
            seq = self.seq
        record = self._records.get(seq)
        if record is not None and (record.get("kind"), record.get("name")) != (kind, name):
            raise NonDeterministicReplayError(mismatch(seq, (str(record.get("kind")),
                                                             record.get("name")), (kind, name)))
        return Call(seq, kind, name), record

    def _kind(self, seq: int) -> Any:
        record = self._records.get(seq)
        return None if record is None else record.get("kind")

    def saved(self, call: Call, record: Record) -> None:
        """Remember a record this attempt made (a checkpoint is then `last_checkpoint`)."""
        self._records[call.seq] = record
        if call.kind == "checkpoint":
            self.checkpoint = record


def body(call: Call) -> dict[str, Any]:
    """The `record` object of a worker request."""
    out: dict[str, Any] = {"seq": call.seq, "kind": call.kind}
    if call.name is not None:
        out["name"] = call.name
    return out


def completed(record: Record | None) -> bool:
    return record is not None and record.get("status") == COMPLETED


def span(call: Call) -> dict[str, Any]:
    """The trace entry of a call answered from its record: instant, marked `fromRecord`."""
    now = time.time()
    return {"at": now, "endedAt": now, "level": "info", "kind": "span",
            "message": f"{spelled(call.kind, call.name)} (from record)",
            "attributes": {"fromRecord": True, "seq": call.seq}, "spanId": os.urandom(8).hex()}
