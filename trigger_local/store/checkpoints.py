"""The checkpoints table: one row per CRIU dump of a waiting run's process.

A row is `pending` from just before the dump starts until it is recorded (or undone: the row
is then deleted), so that a daemon killed in between leaves a trace the next one can finish;
`active` while its images may still be restored; `restored`, `failed` or `deleted` afterwards
(the images are gone, the row stays as the run's history)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .ops import Ops

CK_PENDING, CK_ACTIVE, CK_RESTORED, CK_FAILED, CK_DELETED = "pending", "active", "restored", "failed", "deleted"

_COLUMNS = ("id", "run_id", "attempt", "worker_id", "pid", "executor", "path", "status", "size_bytes",
            "dump_ms", "restore_ms", "error", "created_at", "restored_at")


@dataclass
class Checkpoint:
    id: str
    run_id: str
    attempt: int
    worker_id: str
    pid: int
    path: str
    status: str
    created_at: float
    executor: str = "process"
    size_bytes: int = 0
    dump_ms: float | None = None
    restore_ms: float | None = None
    error: str | None = None
    restored_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(row: Any) -> Checkpoint:
    return Checkpoint(**dict(zip(_COLUMNS, row, strict=True)))


class CheckpointOps:
    """Checkpoint rows over an `Ops` (so inside the caller's transaction when it is a write one)."""

    def __init__(self, ops: Ops) -> None:
        self._ops = ops

    async def insert(self, ck: Checkpoint) -> None:
        values = ck.to_dict()
        sql = f"INSERT INTO checkpoints ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        await self._ops._db.execute(sql, tuple(values[c] for c in _COLUMNS))

    async def update(self, checkpoint_id: str, expected_status: str | None = None, **changes: Any) -> bool:
        """Change a row; with `expected_status`, only if it still has it. False: nothing changed."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown checkpoint columns {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in changes)
        where, params = "id = ?", [checkpoint_id]
        if expected_status is not None:
            where += " AND status = ?"
            params.append(expected_status)
        cur = await self._ops._db.execute(f"UPDATE checkpoints SET {sets} WHERE {where}",
                                          (*changes.values(), *params))
        return bool(cur.rowcount > 0)

    async def delete(self, checkpoint_id: str, expected_status: str) -> bool:
        cur = await self._ops._db.execute("DELETE FROM checkpoints WHERE id = ? AND status = ?",
                                          (checkpoint_id, expected_status))
        return bool(cur.rowcount > 0)

    async def get(self, checkpoint_id: str) -> Checkpoint | None:
        row = await self._ops._one(f"SELECT {', '.join(_COLUMNS)} FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return _row(row) if row else None

    async def for_run(self, run_id: str) -> list[Checkpoint]:
        rows = await self._ops._all(f"SELECT {', '.join(_COLUMNS)} FROM checkpoints WHERE run_id = ? "
                                    "ORDER BY created_at, id", (run_id,))
        return [_row(r) for r in rows]

    async def active(self) -> list[Checkpoint]:
        """Every checkpoint whose images may still be restored, oldest first."""
        rows = await self._ops._all(f"SELECT {', '.join(_COLUMNS)} FROM checkpoints WHERE status = 'active' "
                                    "ORDER BY created_at, id")
        return [_row(r) for r in rows]

    async def pending(self) -> list[Checkpoint]:
        """Dumps that were under way when a daemon died: the next daemon finishes or undoes each."""
        rows = await self._ops._all(f"SELECT {', '.join(_COLUMNS)} FROM checkpoints WHERE status = 'pending' "
                                    "ORDER BY created_at, id")
        return [_row(r) for r in rows]

    async def totals(self) -> tuple[int, int]:
        """(count, bytes) of the active checkpoints: what is on disk now."""
        row = await self._ops._one("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM checkpoints "
                                   "WHERE status = 'active'")
        return (int(row[0]), int(row[1])) if row else (0, 0)
