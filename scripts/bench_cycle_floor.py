"""The floor of a durable run's cycle on this machine (issue #13): how fast one process could
start and finish no-op runs while keeping the daemon's durability model, with as little Python
as the model allows.

The model kept: every run is a row of the daemon's `runs` table, in a SQLite file migrated by
the project's own store (`SqliteStore`: its schema, its PRAGMAs — WAL, `synchronous=NORMAL`,
`temp_store=MEMORY`); a run moves QUEUED → EXECUTING → COMPLETED, each move an UPDATE with the
compare-and-set on its snapshot id, with an `attempts` row (inserted at the start, updated at
the finish), one history row (`events`) per move and the run counters (`run_counts`,
`queue_counts`) — and a run's start and its finish are committed before the task process is
told of it, or its completion taken as done.

A "lean daemon" (this process: asyncio on uvloop, as the daemon) and one task process (a real
subprocess, scripts/bench_cycle_floor_task.py) hold one persistent connection: a WebSocket of
the `websockets` library (`ws`), or a plain asyncio stream of newline-separated JSON (`stream`).
The lean daemon sends its assignments as JSON; the task process runs each in a task of its own
that awaits a no-op coroutine, and sends the completions that are ready together in one
message. For each message
the lean daemon commits the finishes with the next starts in ONE transaction of raw statements
(`executemany` per statement: the runs' UPDATEs with the compare-and-set, the attempts'
INSERT/UPDATE, the events' INSERT, the counters' upserts, and the dequeue's page read through
the daemon's `runs_ready` index), then sends the next assignments. Concurrency C (`-c`, 4) runs
are out at a time.

Variants (`--only`, a comma list; default all) drop parts so the table says what each costs:

    full        everything above
    wide-page   full, the page read as the daemon's QUEUED_PAGE reads it: every column of the
                run, into sqlite3.Row objects
    per-run     full, each statement once per run (`execute`, not `executemany`) and each run's
                move in a savepoint, as the daemon's units of work write them
    no-events   no history rows
    no-attempts no attempts rows
    no-counts   no counter upserts
    rows-only   the runs' UPDATEs and the page read only (no events, attempts, counters)
    no-sql      no database at all: the messages alone (the floor of the two processes)

    python scripts/bench_cycle_floor.py                          # 5,000 runs a case, ~1 min
    python scripts/bench_cycle_floor.py --runs 2000 --only full,no-sql --transport ws

Each case is a fresh database of `--runs` QUEUED runs (inserted by the store's `insert_many`);
the first tenth warms up, the rest is timed. It prints runs/s, the lean daemon's CPU per run
(`time.process_time`; "of it tx": in its transactions, "COMMIT": in their COMMITs), the task
process's (/proc, user + system, in 10 ms ticks: take ≥ 2,000 runs), and the mean group a
commit holds. With `--huey-python` (default the peers' venv; skipped without huey there) it
also prints SqliteHuey's enqueue-and-run rate from scripts/bench_floor_huey.py (one consumer,
4 threads: comparable with the peers harness's figures, not with C; bench_floor.py's
`bench_huey`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_cycle_floor_task import new_loop
from bench_floor import HUEY_PY, bench_huey, cpu_s

from trigger_local.store.sqlite.counts import _QUEUE_SQL, _STATUS_SQL
from trigger_local.store.sqlite.records import _INSERT_EVENT

HERE = Path(__file__).resolve().parent
VARIANTS = ("full", "wide-page", "per-run", "no-events", "no-attempts", "no-counts", "rows-only",
            "no-sql")
WITH_ALL = ("full", "wide-page", "per-run")  # every part written
TRANSPORTS = ("ws", "stream")
PROJECT, QUEUE, TASK = "proj_local", "task/noop", "noop"
WORKER = "worker_bench_cycle_floor"

PAGE = ("SELECT id, snapshot_id, attempt_count, payload, payload_type FROM runs "
        "INDEXED BY runs_ready WHERE status = 'QUEUED' AND project = ? AND queue = ? "
        "ORDER BY queued_at, id LIMIT ?")
START = ("UPDATE runs SET status = 'EXECUTING', snapshot_id = ?, snapshot_kind = 'execution', "
         "updated_at = ?, attempt_count = ?, worker_id = ?, started_at = ?, deadline_at = NULL, "
         "expires_at = NULL WHERE id = ? AND snapshot_id = ?")
FINISH = ("UPDATE runs SET status = 'COMPLETED', snapshot_id = ?, snapshot_kind = 'finished', "
          "updated_at = ?, output = ?, output_type = 'application/json', completed_at = ?, "
          "deadline_at = NULL, worker_id = NULL WHERE id = ? AND snapshot_id = ?")
ATTEMPT_START = ("INSERT INTO attempts (run_seq, number, status, started_at, worker_id, pid, "
                 "executor) SELECT seq, ?, 'EXECUTING', ?, ?, ?, 'process' FROM runs WHERE id = ?")
ATTEMPT_FINISH = ("UPDATE attempts SET status = 'COMPLETED', finished_at = ? "
                  "WHERE run_seq = (SELECT seq FROM runs WHERE id = ?) AND number = ?")
# the daemon's own statements for the events and the counters
EVENT, STATUS_COUNT, QUEUE_COUNT = _INSERT_EVENT, _STATUS_SQL, _QUEUE_SQL


class Lean:
    """The lean daemon's store: one transaction per message, raw statements."""

    def __init__(self, conn: sqlite3.Connection | None, variant: str, pid: int) -> None:
        self.conn, self.pid = conn, pid
        self.events = variant in (*WITH_ALL, "no-attempts", "no-counts")
        self.attempts = variant in (*WITH_ALL, "no-events", "no-counts")
        self.counts = variant in (*WITH_ALL, "no-events", "no-attempts")
        self.wide, self.per_run = variant == "wide-page", variant == "per-run"
        self.snapshots: dict[str, str] = {}  # a run out: the snapshot id its start set
        self.snap = (f"snapshot_{i:021d}" for i in itertools.count(1)).__next__  # new ids
        self.queued: list[str] = []  # no-sql: the runs not yet handed out
        self.tx_s = self.commit_s = 0.0  # CPU in the transactions, and in their COMMITs

    def cycle(self, done: list[dict[str, Any]], free: int) -> list[dict[str, Any]]:
        """Commit the finishes of `done` and up to `free` starts; the starts' assignments."""
        if self.conn is None:
            for c in done:
                del self.snapshots[c["id"]]
            ids = self.queued[:free]
            del self.queued[:free]
            self.snapshots.update(dict.fromkeys(ids, ""))
            return [{"id": i, "attempt": 1, "payload": "null"} for i in ids]
        conn, now, snaps = self.conn, time.time(), self.snapshots
        began = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = self._write(conn, now, snaps, done, free)
            committing = time.process_time()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        ended = time.process_time()
        self.tx_s += ended - began
        self.commit_s += ended - committing
        return out

    def many(self, sql: str, rows: list[tuple[Any, ...]], move: bool = False) -> int:
        """`executemany`; per run (`per-run`): one `execute` a row, and a run's move (its
        UPDATE of `runs`) in a savepoint, as the daemon's units of work write them."""
        conn = self.conn
        assert conn is not None
        if not self.per_run:
            return conn.executemany(sql, rows).rowcount
        changed = 0
        for row in rows:
            if move:
                conn.execute("SAVEPOINT run")
            changed += conn.execute(sql, row).rowcount
            if move:
                conn.execute("RELEASE run")
        return changed

    def page(self, conn: sqlite3.Connection, free: int) -> list[tuple[Any, ...]]:
        """The dequeue's page: the five columns a start needs, or (`wide-page`) every column
        of the run as the daemon's QUEUED_PAGE reads them, into sqlite3.Row objects."""
        if not self.wide:
            return conn.execute(PAGE, (PROJECT, QUEUE, free)).fetchall()
        from trigger_local.store.sqlite.runs import QUEUED_PAGE
        cur = conn.execute(QUEUED_PAGE, (PROJECT, QUEUE, free))
        cur.row_factory = sqlite3.Row
        return [(r["id"], r["snapshot_id"], r["attempt_count"], r["payload"], r["payload_type"])
                for r in cur.fetchall()]

    def _write(self, conn: sqlite3.Connection, now: float, snaps: dict[str, str],
               done: list[dict[str, Any]], free: int) -> list[dict[str, Any]]:
        if done:
            finish = [(self.snap(), now, c["output"], now, c["id"], snaps.pop(c["id"]))
                      for c in done]
            if self.many(FINISH, finish, move=True) != len(finish):
                raise RuntimeError("a finish's compare-and-set found its run changed")
            if self.attempts:
                self.many(ATTEMPT_FINISH, [(now, c["id"], c["attempt"]) for c in done])
            if self.events:
                self.many(EVENT, [(
                    row[4], "run.completed", now, json.dumps({
                        "run_id": row[4], "task_id": TASK, "status": "COMPLETED",
                        "from": "EXECUTING", "kind": "finished", "project": PROJECT,
                        "snapshot_id": row[0]})) for row in finish])
        page = self.page(conn, free) if free else []
        out: list[dict[str, Any]] = []
        if page:
            start = [(self.snap(), now, r[2] + 1, WORKER, now, r[0], r[1]) for r in page]
            if self.many(START, start, move=True) != len(start):
                raise RuntimeError("a start's compare-and-set found its run changed")
            if self.attempts:
                self.many(ATTEMPT_START, [(s[2], now, WORKER, self.pid, s[5])
                                                 for s in start])
            if self.events:
                self.many(EVENT, [(
                    s[5], "run.executing", now, json.dumps({
                        "run_id": s[5], "task_id": TASK, "status": "EXECUTING", "from": "QUEUED",
                        "kind": "execution", "project": PROJECT, "attempt": s[2],
                        "worker_id": WORKER, "snapshot_id": s[0]})) for s in start])
            for s, r in zip(start, page, strict=True):
                snaps[s[5]] = s[0]
                out.append({"id": s[5], "attempt": s[2], "payload": r[3],
                            "payloadType": r[4]})
        if self.counts:
            k, m = len(out), len(done)
            conn.executemany(STATUS_COUNT, [(s, d) for s, d in (
                ("COMPLETED", m), ("EXECUTING", k - m), ("QUEUED", -k)) if d])
            conn.executemany(QUEUE_COUNT, [(PROJECT, QUEUE, s, d) for s, d in (
                ("EXECUTING", k - m), ("QUEUED", -k)) if d])
        return out


async def make_db(path: str, n: int) -> tuple[Any, sqlite3.Connection]:
    """A store file with `n` QUEUED no-op runs: the store and its own writer connection (the
    daemon's PRAGMAs, as it writes)."""
    from trigger_local.ids import new_id
    from trigger_local.store import SqliteStore
    from trigger_local.store.models import QUEUED, Run

    store = SqliteStore(path)
    await store.open()
    at = time.time()
    runs = [Run(id=new_id("run"), task_id=TASK, status=QUEUED, snapshot_id=new_id("snapshot"),
                snapshot_kind="queued", queue=QUEUE, project=PROJECT, created_at=at + i * 1e-6,
                updated_at=at, queued_at=at + i * 1e-6, payload="null",
                payload_type="application/json") for i in range(n)]
    for i in range(0, n, 500):  # as batch triggers write them
        async with store.tx() as tx:
            await tx.runs.insert_many(runs[i:i + 500])
    conn = store._writer
    assert conn is not None
    conn.row_factory = None  # plain tuples
    return store, conn


async def serve(transport: str, lean: Lean, n: int, concurrency: int,
                warm: int) -> dict[str, Any]:
    """Run `n` runs through a task process on `transport`; the timed part's figures."""
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def drive(send: Callable[[str], Awaitable[None]],
                    recv: Callable[[], Awaitable[str | bytes]], child: int) -> None:
        try:
            got.set_result(await cycles(send, recv, child))
        except BaseException as e:  # a compare-and-set that failed, a connection lost
            if not got.done():
                got.set_exception(e)
            raise

    async def cycles(send: Callable[[str], Awaitable[None]],
                     recv: Callable[[], Awaitable[str | bytes]], child: int) -> dict[str, Any]:
        finished = groups = counted = 0
        t0 = c0 = k0 = 0.0
        await send(json.dumps({"assignments": lean.cycle([], concurrency)}))
        while finished < n:
            done = json.loads(await recv())["completions"]
            finished += len(done)
            groups += 1
            if finished >= warm and not t0:
                t0, c0, k0, groups, counted = (time.perf_counter(), time.process_time(),
                                               cpu_s(child), 0, finished)
                lean.tx_s = lean.commit_s = 0.0
            free = concurrency - len(lean.snapshots) + len(done)
            assignments = lean.cycle(done, free)
            if assignments or finished < n:
                await send(json.dumps({"assignments": assignments}))
        took, cpu, kid = (time.perf_counter() - t0, time.process_time() - c0,
                          cpu_s(child) - k0)
        timed = finished - counted
        await send(json.dumps({"stop": True}))
        per_run = {"daemon_cpu_us": cpu, "task_cpu_us": kid, "tx_cpu_us": lean.tx_s,
                   "commit_cpu_us": lean.commit_s}
        return {"runs": timed, "runs_per_s": round(timed / took),
                **{k: round(v * 1e6 / timed) for k, v in per_run.items()},
                "group": round(timed / max(groups, 1), 2)}

    children: list[asyncio.subprocess.Process] = []
    if transport == "ws":
        from websockets.asyncio.server import ServerConnection
        from websockets.asyncio.server import serve as ws_serve

        async def on_ws(ws: ServerConnection) -> None:
            await drive(ws.send, ws.recv, children[0].pid)

        server: Any = await ws_serve(on_ws, "127.0.0.1", 0, compression=None)
    else:
        async def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def send(text: str) -> None:
                writer.write(text.encode() + b"\n")

            await drive(send, reader.readline, children[0].pid)
            writer.close()

        server = await asyncio.start_server(on_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    children.append(await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "bench_cycle_floor_task.py"), transport, str(port)))
    exited = asyncio.ensure_future(children[0].wait())
    try:
        either: set[asyncio.Future[Any]] = {got, exited}
        await asyncio.wait(either, timeout=600, return_when=asyncio.FIRST_COMPLETED)
        if not got.done():
            raise SystemExit(f"the task process ended ({exited.result()}) before the last run"
                             if exited.done() else "the runs did not finish in 600 s")
        return got.result()
    finally:
        server.close()
        await server.wait_closed()
        try:
            await asyncio.wait_for(asyncio.shield(exited), 10)
        except TimeoutError:
            children[0].kill()
            await exited


def one_case(variant: str, transport: str, n: int, concurrency: int) -> dict[str, Any]:
    loop = new_loop()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cycle-floor-") as tmp:
            store, conn, path = None, None, os.path.join(tmp, "store.db")
            if variant != "no-sql":
                store, conn = loop.run_until_complete(make_db(path, n))
            lean = Lean(conn, variant, os.getpid())
            if conn is None:
                lean.queued = [f"run_{i:026d}" for i in range(n)]
            try:
                row = loop.run_until_complete(serve(transport, lean, n, concurrency,
                                                    warm=max(n // 10, concurrency)))
            finally:
                if store is not None:
                    loop.run_until_complete(store.close())
            if store is not None:  # read again, on a connection of its own
                row["check"] = check(path, n, lean)
    finally:
        loop.close()
    return {"variant": variant, "transport": transport, **row}


def check(path: str, n: int, lean: Lean) -> str:
    """Every run COMPLETED, with the rows of its moves: the file holds what was committed."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        have = tuple(conn.execute(
            "SELECT (SELECT COUNT(*) FROM runs WHERE status = 'COMPLETED'), (SELECT COUNT(*) "
            "FROM events WHERE type IN ('run.executing', 'run.completed')), (SELECT COUNT(*) "
            "FROM attempts WHERE status = 'COMPLETED'), (SELECT n FROM run_counts WHERE "
            "status = 'COMPLETED')").fetchone())
    want = (n, 2 * n if lean.events else 0, n if lean.attempts else 0, n if lean.counts else None)
    if have != want:
        raise SystemExit(f"the store does not hold what was committed: {have} != {want}")
    return "ok"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("-c", "--concurrency", type=int, default=4)
    ap.add_argument("--only", default=",".join(VARIANTS))
    ap.add_argument("--transport", default=",".join(TRANSPORTS))
    ap.add_argument("--huey-python", default=HUEY_PY)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    variants, transports = args.only.split(","), args.transport.split(",")
    wrong = [v for v in variants if v not in VARIANTS] + \
        [t for t in transports if t not in TRANSPORTS]
    if wrong or args.concurrency < 1 or args.runs < 10 * args.concurrency:
        ap.error(f"unknown {', '.join(wrong)}" if wrong
                 else "--runs must be at least 10 × --concurrency (≥ 1)")
    print(f"{args.runs} no-op runs a case, concurrency {args.concurrency}, load "
          f"{os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}")
    print(f"{'variant':<12} {'transport':<9} {'runs/s':>7} {'daemon µs/run':>14} "
          f"{'of it tx':>9} {'COMMIT':>7} {'task µs/run':>12} {'group':>6}")
    rows = []
    for variant in variants:
        for transport in transports:
            row = one_case(variant, transport, args.runs, args.concurrency)
            rows.append(row)
            print(f"{variant:<12} {transport:<9} {row['runs_per_s']:>7} "
                  f"{row['daemon_cpu_us']:>14} {row['tx_cpu_us']:>9} {row['commit_cpu_us']:>7} "
                  f"{row['task_cpu_us']:>12} {row['group']:>6}", flush=True)
    found = bench_huey(args.runs, args.huey_python)
    if found:
        rows.append({"variant": "SqliteHuey", **found})
        print(f"SqliteHuey (one consumer, 4 threads): {found['per_s']} runs/s, consumer "
              f"{found['server_cpu_us']} µs/run, enqueuer {found['client_cpu_us']} µs/run")
    else:
        print(f"SqliteHuey: no huey in {args.huey_python}; compare with the peers' figures")
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
