"""Keypress → redraw latency of the dashboard while the daemon runs a steady load.

Starts a daemon on a free port with a tiny project, triggers `hello` runs at `--rate` runs/s
in batches from a separate process (as a real load would be: not sharing the dashboard's
interpreter), and drives the dashboard in this process. Each sample hands a key to the app
the way the terminal driver's input thread does, and times until the app has produced the
first frame showing the cursor on its new row; each frame is encoded to terminal bytes as
the real driver would, so the headless run pays the same rendering cost as a terminal.
(Textual's `pilot.press` is not a latency measurement: it waits until the *process* is idle,
up to a second, three times per key.)

    python scripts/bench_tui.py --rate 200 --seconds 15
    python scripts/bench_tui.py --runs 100000        # paging through 100,000 runs, no load

Also writes the docs screenshots with `--screenshots DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from e2e.conftest import DaemonProcess, write_project  # noqa: E402
from textual import events  # noqa: E402

from trigger_local.sdk.client import ApiClient, SyncApiClient  # noqa: E402
from tui.app import Dashboard  # noqa: E402

TICK_S = os.sysconf("SC_CLK_TCK")
#: the samples walk the cursor down this many rows and back up to the top (where the table
#: shows new runs as they come), and again
ROWS_WALKED = 30
MISS_S = 5.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load(url: str, key: str, rate: int, stop: Any, sent: Any) -> None:
    """The load generator (its own process): `rate` runs/s, in batches of a tenth of that."""
    api = SyncApiClient(url, key)
    batch = max(1, rate // 10)
    next_at = time.monotonic()
    while not stop.is_set():
        api.batch_trigger([{"task": "hello", "payload": "{}"} for _ in range(batch)])
        sent.value += batch
        next_at += batch / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)  # pacing the load generator, not synchronising a test


def key_at(table: Any, row: int) -> str | None:
    try:
        return str(table.coordinate_to_cell_key((row, 0)).row_key.value)
    except Exception:  # noqa: BLE001 - no such row (the table is being reloaded)
        return None


class FrameClock:
    """Wraps the app's `_display`: notes when each frame was produced and where the cursor
    was, after encoding the frame as the terminal driver would (headless skips that)."""

    def __init__(self, app: Dashboard, cursor: Callable[[], Any]) -> None:
        self.frames: list[tuple[float, Any]] = []
        display = app._display

        def timed(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            self.frames.append((time.perf_counter(), cursor()))

        app._display = timed  # type: ignore[method-assign]

    async def first(self, since: float, shows: Callable[[Any], bool],
                    timeout: float = 30.0) -> float:
        """Seconds from `since` to the first frame after it where the cursor `shows(...)`."""
        deadline = time.monotonic() + timeout
        seen = len(self.frames)
        while time.monotonic() < deadline:
            for at, where in self.frames[seen:]:
                if at >= since and shows(where):
                    return at - since
            seen = len(self.frames)
            await asyncio.sleep(0.002)
        raise TimeoutError(f"no frame showing the key's effect within {timeout}s")


async def press(app: Dashboard, clock: FrameClock, key: str, shows: Callable[[Any], bool]) -> float:
    """Latency in ms of one key, from its arrival to the frame that shows its effect; NaN
    when no frame showed it within 5 s (the rows were replaced under the cursor: counted)."""
    start = time.perf_counter()
    app._driver.send_message(events.Key(key, None))  # type: ignore[union-attr]
    try:
        return await clock.first(start, shows, timeout=MISS_S) * 1000
    except TimeoutError:
        return math.nan


async def measure(url: str, key: str, seconds: float, shots: Path | None) -> list[float]:
    app = Dashboard(ApiClient(url, key))
    samples: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        table: Any = app.query_one("#runs-table")
        # rows move as new runs arrive: a key's effect is the cursor on the *run* it should reach
        clock = FrameClock(app, lambda: (table.cursor_row, key_at(table, table.cursor_row)))
        deadline = time.monotonic() + seconds
        while table.row_count <= ROWS_WALKED and time.monotonic() < deadline:
            await pilot.pause(0.1)  # the first runs of the load, shown through the stream
        step = 1
        while time.monotonic() < deadline:
            before = table.cursor_row
            if before + step not in range(0, ROWS_WALKED + 1):
                step = -step
            target = key_at(table, before + step)
            samples.append(await press(app, clock, "down" if step > 0 else "up",
                                       lambda at, run=target: at[1] == run))
            await asyncio.sleep(0.1)  # a person's pace, not a stress test of the key queue
        if shots is not None:
            app.save_screenshot(str(shots / "dashboard-runs.svg"))
    return samples


async def page_through(url: str, key: str) -> tuple[list[float], list[float], list[float],
                                                    list[float], float]:
    """Page-down latencies from the newest run to the oldest, the waits at the last (or first)
    loaded row for the next page, then page-up latencies all the way back (the table holds a
    window of rows: going back reads the newer pages again), and the seconds to the oldest."""
    app = Dashboard(ApiClient(url, key))
    downs: list[float] = []
    fetches: list[float] = []
    ups: list[float] = []
    fetches_up: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        view: Any = app.query_one("#runs-view")
        table: Any = view.table
        clock = FrameClock(app, lambda: (table.cursor_row, key_at(table, table.cursor_row)))
        while table.row_count == 0:
            await pilot.pause(0.05)
        started = time.perf_counter()
        while not (view.next_page is None and table.cursor_row >= table.row_count - 1):
            here = key_at(table, table.cursor_row)
            # at the last loaded row: the next page is on its way
            if table.cursor_row >= table.row_count - 1:
                t = time.perf_counter()
                while key_at(table, table.row_count - 1) == here and view.next_page is not None:
                    if time.perf_counter() - t > 30:
                        raise TimeoutError(f"stuck at {here}: no next page within 30 s")
                    await asyncio.sleep(0.002)
                fetches.append((time.perf_counter() - t) * 1000)
                continue
            downs.append(await press(app, clock, "pagedown", lambda at, run=here: at[1] != run))
        elapsed = time.perf_counter() - started
        while not (view.prev_page is None and table.cursor_row == 0):
            here = key_at(table, table.cursor_row)
            if table.cursor_row == 0:  # at the first loaded row: the newer page is on its way
                t = time.perf_counter()
                while key_at(table, 0) == here and view.prev_page is not None:
                    if time.perf_counter() - t > 30:
                        raise TimeoutError(f"stuck at {here}: no newer page within 30 s")
                    await asyncio.sleep(0.002)
                fetches_up.append((time.perf_counter() - t) * 1000)
                continue
            ups.append(await press(app, clock, "pageup", lambda at, run=here: at[1] != run))
    return downs, fetches, ups, fetches_up, elapsed


def summary(name: str, samples: list[float]) -> str:
    missed = sum(1 for s in samples if math.isnan(s))
    samples = sorted(s for s in samples if not math.isnan(s))
    if not samples:
        return f"{name}: no samples"
    return (f"{name} over {len(samples)}: median {statistics.median(samples):.1f} ms, "
            f"p95 {samples[max(0, int(len(samples) * 0.95) - 1)]:.1f} ms, max {samples[-1]:.1f} ms"
            + (f"; {missed} not shown within {MISS_S:.0f} s" if missed else ""))


def fill(d: DaemonProcess, total: int) -> float:
    """`total` runs that stay QUEUED (their queue is paused), by batch trigger; seconds taken."""
    d.wait_status(d.trigger("hello", {}))  # the queue exists once a run used it
    d.api("POST", "/api/v1/queues/hello/pause",
          json={"type": "task", "action": "pause"}).raise_for_status()
    api = SyncApiClient(d.url, d.key)
    started = time.monotonic()
    for first in range(0, total, 500):
        api.batch_trigger([{"task": "hello", "payload": "{}"}
                           for _ in range(min(500, total - first))])
    return time.monotonic() - started


def run_load(d: DaemonProcess, args: argparse.Namespace) -> None:
    spawn = multiprocessing.get_context("spawn")
    stop, sent = spawn.Event(), spawn.Value("i", 0)
    loader = spawn.Process(target=load, args=(d.url, d.key, args.rate, stop, sent), daemon=True)
    me, daemon_pid = os.getpid(), d.proc.pid  # type: ignore[union-attr]
    cpu0 = cpu_s(me), cpu_s(daemon_pid)
    loader.start()
    started = time.monotonic()
    if args.no_dashboard:  # the same load alone: what the daemon manages without a dashboard
        time.sleep(args.seconds)  # the load runs meanwhile; nothing to synchronise with
        samples = []
    else:
        samples = asyncio.run(measure(d.url, d.key, args.seconds, args.screenshots))
    stop.set()
    loader.join(10)
    elapsed = time.monotonic() - started
    cpu1 = cpu_s(me), cpu_s(daemon_pid)
    done = d.api("GET", "/api/v1/local/status").json().get("runs", {}).get("COMPLETED", 0)
    print(f"load: {sent.value} runs triggered in {elapsed:.1f}s ({sent.value / elapsed:.0f}/s), "
          f"{done} completed ({done / elapsed:.0f}/s)")
    print(f"CPU over the run: dashboard {cpu1[0] - cpu0[0]:.1f}s, daemon {cpu1[1] - cpu0[1]:.1f}s "
          f"(of {elapsed:.1f}s wall); load average {os.getloadavg()[0]:.2f}")
    if samples:
        print(summary("keypress→redraw", samples))
        slowest = sorted(range(len(samples)), key=lambda i: -samples[i])[:5]
        print("slowest: " + ", ".join(f"#{i} {samples[i]:.0f} ms" for i in slowest))


def run_paging(d: DaemonProcess, args: argparse.Namespace) -> None:
    fill_s = fill(d, args.runs)
    print(f"{args.runs} runs created by batch trigger in {fill_s:.1f}s (queue paused: they stay "
          "QUEUED)")
    downs, fetches, ups, fetches_up, elapsed = asyncio.run(page_through(d.url, d.key))
    print(f"page-down from the newest to the oldest of {args.runs + 1} runs: {elapsed:.1f}s, "
          f"{len(fetches)} waits at the last loaded row")
    print(summary("page-down→redraw", downs))
    print(summary("waiting at the last loaded row for the next page", fetches))
    print(summary("page-up→redraw (back to the newest, pages read again)", ups))
    print(summary("waiting at the first loaded row for the newer page", fetches_up))
    print(f"dashboard RSS at the end: {rss_mib(os.getpid()):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, help="page through this many runs instead (no load)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="the load alone, for comparison")
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
        try:
            d.register(write_project(Path(tmp) / "project"))
            if args.runs:
                run_paging(d, args)
            else:
                run_load(d, args)
        finally:
            d.close()


if __name__ == "__main__":
    main()
