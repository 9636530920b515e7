"""SqliteHuey's enqueue-and-run rate for scripts/bench_floor.py, run in a Python that has huey
(the peers' venv): `python scripts/bench_floor_huey.py N` prints one JSON object — one consumer
(4 threads), N no-ops enqueued one by one from this process, until every result is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench_floor import cpu_s

HUEY_TASKS = '''
from huey import SqliteHuey
huey = SqliteHuey(filename={db!r})

@huey.task()
def noop():
    return 1
'''


def huey_rate(n: int) -> dict[str, Any]:
    """Run in a Python with huey: one consumer (4 threads), `n` no-ops enqueued one by one from
    here, until every result is stored."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-huey-") as tmp:
        Path(tmp, "floortasks.py").write_text(textwrap.dedent(HUEY_TASKS.format(
            db=str(Path(tmp) / "q.db"))))
        sys.path.insert(0, tmp)
        import floortasks  # type: ignore[import-not-found]

        consumer = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "floortasks.huey", "-w", "4", "-k",
             "thread", "-d", "0.01", "-m", "0.05", "-q"], cwd=tmp,
            env={**os.environ, "PYTHONPATH": tmp}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            first = floortasks.noop()
            deadline = time.monotonic() + 30
            while first.get() is None:
                if time.monotonic() > deadline or consumer.poll() is not None:
                    raise SystemExit("huey's consumer did not run a task")
                time.sleep(0.01)
            huey = floortasks.huey
            before, cpu = cpu_s(consumer.pid), time.process_time()
            start = time.perf_counter()
            for _ in range(n):
                floortasks.noop()
            sent = time.perf_counter() - start
            sent_cpu = time.process_time() - cpu
            while huey.result_count() < n:
                if time.perf_counter() - start > 600:
                    raise SystemExit("huey did not finish")
                time.sleep(0.005)
            took = time.perf_counter() - start
            return {"requests": n, "per_s": round(n / took, 1),
                    "enqueues_per_s": round(n / sent, 1),
                    "client_cpu_us": round(sent_cpu * 1e6 / n),
                    "server_cpu_us": round((cpu_s(consumer.pid) - before) * 1e6 / n)}
        finally:
            consumer.terminate()
            try:
                consumer.wait(10)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.wait()


if __name__ == "__main__":
    print(json.dumps(huey_rate(int(sys.argv[1]))))
