"""The docs' dashboard screenshots: runs and a trace at 80×24, the same trace at 200×50.

Starts a daemon in a temporary home with the test project, makes a handful of runs (a parent
with a child and a wait, a run waiting on a token, tagged hellos, a failure), then either
writes the SVGs with the pilot, or with `--tmux` opens `trigger-local dashboard` in detached
tmux sessions (80×24 and 200×50, on a tmux server of its own) and prints what a person would
see on each tab and screen (`tmux capture-pane`).

    python scripts/tui_screenshots.py docs/
    python scripts/tui_screenshots.py --tmux
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from e2e.conftest import TASKS, DaemonProcess, write_project  # noqa: E402

from trigger_local.sdk.client import ApiClient  # noqa: E402
from tui.app import Dashboard  # noqa: E402
from tui.detail import RunDetail  # noqa: E402

#: a run with a bit of everything for the trace: logs, a span, a child it waits for, and a
#: token wait (checkpointed where CRIU works, then restored)
ORDER = '''
@task(id="order")
async def order(payload, ctx):
    logger.info("order received", order=payload["id"])
    with logger.trace("price", items=3):
        logger.info("priced", total=42)
    shipped = await child.trigger_and_wait({"n": 21})
    logger.info("child done", result=shipped.unwrap())
    token = await wait.create_token(timeout="10m")
    metadata.set("token", token.id)
    approval = await wait.for_token(token)
    logger.info("approved", by=approval.output["by"])
    return {"ok": True}
'''


def make_runs(d: DaemonProcess) -> str:
    """Some runs of every kind; returns the id of the run whose trace is the second shot."""
    for name in ("ada", "grace"):
        d.wait_status(d.trigger("hello", {"name": name}, tags=["demo"]))
    d.wait_status(d.trigger("flaky", {}))
    d.wait_status(d.trigger("exiter", {}))
    order = d.trigger("order", {"id": "A-17"}, tags=["shop"])
    deadline = time.monotonic() + 30
    while not (d.run(order).get("metadata") or {}).get("token"):
        assert time.monotonic() < deadline, "the order run never made its token"
        time.sleep(0.1)  # polling a demo's progress, not synchronising a test
    token = d.run(order)["metadata"]["token"]
    trace = f"/api/v1/runs/{order}/trace"
    while not d.api("GET", trace).json()["checkpoints"] and time.monotonic() < deadline:
        time.sleep(0.1)  # until CRIU froze it (or give up where it cannot)
    d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {"by": "grace"}})
    d.wait_status(order)
    d.wait_status(d.trigger("token-waiter", {}), "WAITING")
    return order


#: the committed screenshots: (file in docs/, columns, rows, whether it shows the order's trace)
SHOTS = (("dashboard-runs-80x24.svg", 80, 24, False), ("dashboard-trace-80x24.svg", 80, 24, True),
         ("dashboard-trace-200x50.svg", 200, 50, True))


async def svgs(d: DaemonProcess, parent: str, out: Path) -> None:
    for name, width, height, trace in SHOTS:
        app = Dashboard(ApiClient(d.url, d.key))
        async with app.run_test(size=(width, height)) as pilot:
            if trace:
                app.push_screen(RunDetail(app.api, parent))
            await pilot.pause(2.0)  # the header's status, the first page or the trace
            app.save_screenshot(str(out / name))


#: what `--tmux` shows: (columns, rows, keys typed after the dashboard opens, what it is)
VIEWS = (
    (80, 24, [], "runs"),
    (80, 24, ["2"], "waitpoints"),
    (80, 24, ["3"], "queues"),
    (80, 24, ["Down", "Down", "Enter"], "the order run's trace"),
    (80, 24, ["Enter"], "a waiting run's trace"),
    (80, 24, ["c"], "cancel asks first"),
    (200, 50, ["Down", "Down", "Enter"], "the order run's trace"),
)


def tmux(d: DaemonProcess) -> None:
    env = {**os.environ, "TRIGGER_API_URL": d.url, "TRIGGER_SECRET_KEY": d.key}
    # a tmux server of our own: sessions of other people on this machine are left alone
    server = ["tmux", "-L", f"tui-screenshots-{os.getpid()}"]
    for n, (width, height, keys, what) in enumerate(VIEWS):
        name = f"tui-{n}"
        subprocess.run([*server, "new-session", "-d", "-s", name, "-x", str(width), "-y",
                        str(height),
                        f"{sys.executable} -m trigger_local dashboard; sleep 30"], env=env,
                       check=True)
        try:
            time.sleep(3)  # a person waiting for the screen, not a test synchronising
            for key in keys:
                subprocess.run([*server, "send-keys", "-t", name, key], check=True)
                time.sleep(2)
            shot = subprocess.run([*server, "capture-pane", "-p", "-t", name], capture_output=True,
                                  text=True)
            print(f"--- {width}x{height}: {what} ---\n{shot.stdout}")
        finally:
            subprocess.run([*server, "kill-session", "-t", name], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--tmux", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
        try:
            d.register(write_project(Path(tmp) / "project", TASKS + ORDER))
            parent = make_runs(d)
            if args.tmux:
                tmux(d)
            if args.out is not None:
                asyncio.run(svgs(d, parent, args.out))
        finally:
            d.close()


if __name__ == "__main__":
    main()
