"""Keypress → redraw latency of the dashboard while the daemon runs a steady load.

Starts a daemon on a free port with a tiny project, triggers `hello` runs at `--rate` runs/s
in batches from a thread, and drives the dashboard with its pilot: each sample presses
`down` in the runs table and waits until the cursor moved and the screen was repainted.
Also writes the docs screenshots with `--screenshots DIR`.

    python scripts/bench_tui.py --rate 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from e2e.conftest import DaemonProcess, write_project  # noqa: E402

from trigger_local.sdk.client import ApiClient, SyncApiClient  # noqa: E402
from tui.app import Dashboard  # noqa: E402


def load(d: DaemonProcess, rate: int, stop: threading.Event, sent: list[int]) -> None:
    api = SyncApiClient(d.url, d.key)
    batch = max(1, rate // 10)
    next_at = time.monotonic()
    while not stop.is_set():
        api.batch_trigger([{"task": "hello", "payload": "{}"} for _ in range(batch)])
        sent[0] += batch
        next_at += batch / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)  # pacing the load generator, not synchronising a test


async def measure(d: DaemonProcess, seconds: float, shots: Path | None) -> list[float]:
    app = Dashboard(ApiClient(d.url, d.key))
    samples: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one("#runs-table")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            before = table.cursor_row  # type: ignore[attr-defined]
            start = time.perf_counter()
            await pilot.press("down" if before < 50 else "home")
            await pilot.pause()  # until the app has processed the key and its repaint
            samples.append((time.perf_counter() - start) * 1000)
            await pilot.pause(0.05)
        if shots is not None:
            app.save_screenshot(str(shots / "dashboard-runs.svg"))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
        try:
            d.register(write_project(Path(tmp) / "project"))
            stop, sent = threading.Event(), [0]
            loader = threading.Thread(target=load, args=(d, args.rate, stop, sent), daemon=True)
            started = time.monotonic()
            loader.start()
            samples = asyncio.run(measure(d, args.seconds, args.screenshots))
            stop.set()
            loader.join(10)
            elapsed = time.monotonic() - started
            done = d.api("GET", "/api/v1/local/status").json().get("runs", {}).get("COMPLETED", 0)
        finally:
            d.close()
    samples.sort()
    print(f"load: {sent[0]} runs triggered in {elapsed:.1f}s ({sent[0] / elapsed:.0f}/s), {done} completed")
    print(f"keypress→redraw over {len(samples)} presses: median {statistics.median(samples):.1f} ms, "
          f"p95 {samples[int(len(samples) * 0.95) - 1]:.1f} ms, max {samples[-1]:.1f} ms")


if __name__ == "__main__":
    main()
