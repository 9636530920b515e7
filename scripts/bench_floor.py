"""The floor of one HTTP trigger per run on this machine (issue #13), in seconds.

The peers harness (../shared/peers, `trigger-single`) triggers each run with its own request:
one `httpx.Client`, keep-alive, one POST with a small JSON body after another. This script
sends that same sequence of requests to four servers, each in its own process, and says how
many answers a second each gives and what every request costs in CPU on each side:

    (a) bare     a bare asyncio HTTP/1.1 server answering a fixed 200 (no framework; the event
                 loop the daemon uses: uvloop when it is installed)
    (a') commit  the bare server, each request's row INSERTed into a SQLite file (WAL,
                 synchronous=NORMAL, as the daemon's store; one small table, one index) and
                 committed before its answer: the least any durable acknowledgement costs
    (b) stack    the daemon's own HTTP server stack (http_server.py: uvicorn, the one-write
                 protocol, the drain, HEAD as GET) around an app that answers a fixed 200
    (c) trigger  a real daemon's trigger route, on a paused queue: the run is created and
                 committed, nothing runs
    (d) run      a real daemon's trigger route, each run started and completed (the runs/s
                 counts until the last run completed; its CPU counts the task processes too)
    huey         SqliteHuey's enqueue-and-run rate (one consumer, 4 worker threads), when a
                 Python with huey is there (--huey-python; default the peers' venv; run there
                 as scripts/bench_floor_huey.py)

    python scripts/bench_floor.py                        # 2,000 requests each, ~30 s
    python scripts/bench_floor.py --requests 500 --only bare,stack
    python scripts/bench_floor.py --json /tmp/floor.json

(c) − (b) is what the trigger route and its unit of work cost; (d) − (c) what starting and
finishing the run costs; (a) is what this client and this kernel allow at all. The client's CPU
is this process's (`time.process_time`), the server's from /proc (user + system, and how often
the kernel took the CPU from it while it could still run: nonvoluntary context switches).
`--apart` pins the server's processes to one core and the client to the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HUEY_PY = "/tmp/perf/venv/bin/python"
BODY = {"payload": "null", "options": {"payloadType": "application/json"}}
ANSWER = b'{"id":"run_00000000000000000000000000","isCached":false}'
CASES = ("bare", "commit", "stack", "trigger", "run", "huey")


def cpu_s(pid: int, system_only: bool = False) -> float:
    """A process's CPU time so far (user + system, or system only), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[12]) + (0 if system_only else int(fields[11]))
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- the servers of (a), (a') and (b), each a process of its own: `--serve bare|commit|stack` -

class BareHttp(asyncio.Protocol):
    """HTTP/1.1 keep-alive, just enough for this client: a request's head, then Content-Length
    bytes of body, answered with a fixed 200 in one write."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                       b"content-length: " + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.answer_one()

    def answer_one(self) -> None:
        assert self.transport is not None
        self.transport.write(self.answer)


class CommittingHttp(BareHttp):
    """(a'): each request's row committed before its answer is written."""

    db: sqlite3.Connection | None = None

    def answer_one(self) -> None:
        assert self.db is not None
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO runs (id, payload, created_at) VALUES (?, ?, ?)",
                        (os.urandom(12).hex(), "null", time.time()))
        self.db.execute("COMMIT")
        super().answer_one()


async def fixed_app(scope: dict[str, Any], receive: Callable[..., Any],
                    send: Callable[..., Any]) -> None:
    """An ASGI app that reads the body and answers a fixed 200: the route that does nothing."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


async def serve(kind: str) -> None:
    """Serve on a free port of 127.0.0.1, print the port, run until stdin closes."""
    loop = asyncio.get_running_loop()
    if kind in ("bare", "commit"):
        if kind == "commit":
            folder = tempfile.mkdtemp(prefix="bench-floor-commit-")
            db = sqlite3.connect(os.path.join(folder, "floor.db"), isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
                db.execute(f"PRAGMA {pragma}")
            db.execute("CREATE TABLE runs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                       "payload TEXT, created_at REAL NOT NULL)")
            CommittingHttp.db = db
        server = await loop.create_server(CommittingHttp if kind == "commit" else BareHttp,
                                          "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    else:
        from trigger_local.http_server import HttpServer, bind

        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        http = HttpServer(fixed_app, sock)
        await http.start()
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


def run_loop(main: Any) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:  # as the daemon: uvloop when installed, else asyncio's own loop
        asyncio.run(main)


# --- the client: the harness's kind --------------------------------------------------------

def send_sequence(url: str, path: str, n: int, headers: dict[str, str],
                  body: dict[str, Any]) -> tuple[float, list[float], float]:
    """`n` POSTs one after another on one keep-alive httpx.Client: (seconds, each answer's
    time in ms, this process's CPU seconds)."""
    import httpx

    answers: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(min(100, n)):  # warm-up: the connection, the server's caches
            http.post(path, json=body).raise_for_status()
        cpu = time.process_time()
        start = time.perf_counter()
        for _ in range(n):
            sent = time.perf_counter()
            http.post(path, json=body).raise_for_status()
            answers.append((time.perf_counter() - sent) * 1000)
        took = time.perf_counter() - start
        return took, answers, time.process_time() - cpu


def preempted(pid: int) -> int:
    """How many times the kernel took the CPU from the process while it could still run."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_pair(pid: int) -> tuple[float, float, int]:
    return cpu_s(pid), cpu_s(pid, system_only=True), preempted(pid)


def figures(n: int, took: float, answers: list[float], client_cpu: float, pid: int,
            before: tuple[float, float, int], **more: Any) -> dict[str, Any]:
    """The figures of `n` requests; the server's CPU since `before` (`cpu_pair(pid)`)."""
    total, system, switches = cpu_pair(pid)
    return {"requests": n, "per_s": round(n / took, 1),
            "answer_p50_ms": round(pct(answers, 50), 3),
            "answer_p99_ms": round(pct(answers, 99), 3),
            "client_cpu_us": round(client_cpu * 1e6 / n),
            "server_cpu_us": round((total - before[0]) * 1e6 / n),
            "server_sys_us": round((system - before[1]) * 1e6 / n),
            "server_preempted": round((switches - before[2]) / n, 2), **more}


#: `--apart`: the server's processes on the first core, this client on the second
APART: dict[str, set[int]] = {}


def place(pid: int, role: str) -> None:
    if role in APART:
        os.sched_setaffinity(pid, APART[role])


def bench_server(kind: str, n: int) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    place(proc.pid, "server")
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        before = cpu_pair(proc.pid)
        took, answers, client = send_sequence(f"http://127.0.0.1:{port}", "/api/v1/tasks/noop"
                                              "/trigger", n, {"Authorization": "Bearer x"}, BODY)
        return figures(n, took, answers, client, proc.pid, before)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_daemon(n: int, cases: set[str]) -> dict[str, dict[str, Any]]:
    """(d) then (c) on one daemon: (c)'s runs stay queued on their paused queue."""
    sys.path.insert(0, str(HERE))
    from bench_daemon import Bench, worker_pids

    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        b = Bench(Path(tmp), concurrency=4)
        try:
            auth = {"Authorization": str(b.http.headers["Authorization"])}
            b.wait_done(b.trigger("noop"))  # a warm task process
            for pid in [b.proc.pid, *worker_pids(b.home)]:  # later ones inherit it
                place(pid, "server")
            if "run" in cases:
                workers = worker_pids(b.home)
                daemon, tasks = cpu_pair(b.proc.pid), sum(cpu_s(p) for p in workers)
                start = time.perf_counter()
                took, answers, client = send_sequence(b.url, "/api/v1/tasks/noop/trigger", n,
                                                      auth, BODY)
                b.wait_idle(600)
                done = time.perf_counter() - start
                workers = sorted(set(workers) | set(worker_pids(b.home)))
                task_cpu = sum(cpu_s(p) for p in workers) - tasks
                out["run"] = figures(n, took, answers, client, b.proc.pid, daemon,
                                     triggers_per_s=round(n / took, 1),
                                     per_s_until_done=round((n + min(100, n)) / done, 1),
                                     task_cpu_us=round(task_cpu * 1e6 / n))
            if "trigger" in cases:
                b.http.post("/api/v1/queues/stamp/pause",
                            json={"type": "task", "action": "pause"}).raise_for_status()
                daemon = cpu_pair(b.proc.pid)
                took, answers, client = send_sequence(b.url, "/api/v1/tasks/stamp/trigger", n,
                                                      auth, BODY)
                out["trigger"] = figures(n, took, answers, client, b.proc.pid, daemon)
        finally:
            b.close()
    return out


def bench_huey(n: int, python: str) -> dict[str, Any] | None:
    if not Path(python).exists():
        print(f"huey: skipped ({python} does not exist; pass --huey-python)", file=sys.stderr)
        return None
    done = subprocess.run([python, str(HERE / "bench_floor_huey.py"), str(n)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        print(f"huey: skipped ({done.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return dict(json.loads(done.stdout))


def table(results: dict[str, dict[str, Any]]) -> str:
    names = {"bare": "(a) bare asyncio, fixed 200",
             "commit": "(a') bare asyncio, a row committed per request",
             "stack": "(b) daemon's HTTP stack, no-op",
             "trigger": "(c) trigger route, paused queue", "run": "(d) trigger and run",
             "huey": "SqliteHuey enqueue and run"}
    rows = ["| | per s | answer p50 / p99 ms | client CPU µs/req | server CPU µs/req "
            "(of it system) | server preempted /req |", "|---|---|---|---|---|---|"]
    for key in CASES:
        r = results.get(key)
        if r is None:
            continue
        answer = (f"{r['answer_p50_ms']} / {r['answer_p99_ms']}" if "answer_p50_ms" in r
                  else f"(enqueues {r['enqueues_per_s']}/s)")
        server = f"{r['server_cpu_us']} ({r.get('server_sys_us', '?')})"
        if "task_cpu_us" in r:
            server += f" + tasks {r['task_cpu_us']}"
        rate = r["per_s"] if key != "run" else f"{r['per_s_until_done']} (answers {r['per_s']})"
        rows.append(f"| {names[key]} | {rate} | {answer} | {r['client_cpu_us']} | {server} "
                    f"| {r.get('server_preempted', '')} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", default=",".join(CASES),
                        help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--huey-python", default=HUEY_PY)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--apart", action="store_true",
                        help="pin the server's processes to the first core and this client to "
                             "the second (without it the kernel places them)")
    parser.add_argument("--serve", choices=["bare", "commit", "stack"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_loop(serve(args.serve))
        return
    cases = set(args.only.split(","))
    unknown = cases - set(CASES)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))} (choose from "
                     f"{', '.join(CASES)})")
    if args.apart:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            parser.error("--apart needs two cores")
        APART.update(server={cores[0]}, client={cores[1]})
        place(0, "client")
    load = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[str, Any] = {}
    for kind in ("bare", "commit", "stack"):
        if kind in cases:
            results[kind] = bench_server(kind, args.requests)
    if cases & {"trigger", "run"}:
        results.update(bench_daemon(args.requests, cases))
    if "huey" in cases:
        huey = bench_huey(args.requests, args.huey_python)
        if huey is not None:
            results["huey"] = huey
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {' '.join(load)} -> {' '.join(load_after)}, {socket.gethostname()}"
          + (", server and client pinned apart" if args.apart else ""))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"load": [load, load_after], **results}, indent=2))


if __name__ == "__main__":
    main()
