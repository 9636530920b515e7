"""Building a run history through the public API for scripts/bench_history.py.

The mix is the one issue #17 measured at 1.02M runs: ~24 % COMPLETED no-ops, ~73 % EXPIRED
(triggered with a 1 s ttl into paused queues), ~2 % QUEUED in a paused queue, ~1 % DELAYED
30 days ahead. Every run goes through `POST /api/v1/tasks/batch`, 500 items a call."""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_history_daemon import Daemon, load_average, machine, wait_for

TASKS = '''
import time
from trigger_local import Queue, schedules, task

exports = Queue("exports", concurrency_limit=10)


async def _none(payload, ctx):
    return None

noop = task(id="noop")(_none)
export = task(id="export", queue=exports)(_none)
legacy_import = task(id="legacy-import")(_none)
sync = task(id="sync")(_none)
report = task(id="report")(_none)
held = task(id="held")(_none)
held_b = task(id="held-b")(_none)
later = task(id="later")(_none)


@task(id="stamp")
async def stamp(payload, ctx):
    return {"started": time.time()}


@schedules.task(id="tick")
async def tick(payload, ctx):
    return None
'''
MIX = (("COMPLETED", 0.238), ("EXPIRED", 0.734), ("QUEUED", 0.019), ("DELAYED", 0.009))
PAUSED = ("sync", "report", "held", "held-b")
OLD_TASK, OLD_TAG = "legacy-import", "migration-2025"
BATCH = 500
TOKENS_PER_BATCH = 5  # one waitpoint token per 100 runs
MARKS = {"first": 0.0, "p10": 0.1, "p40": 0.4, "p42": 0.42, "p50": 0.5, "p60": 0.6}
#: rate used to tell how long a build takes before one has run on this machine
EXPECTED_RUNS_PER_S = 900


@dataclass
class Manifest:
    """What a build made, kept next to the daemon's home so later runs can only measure."""

    runs: int
    built: int = 0
    build_s: float = 0.0
    settle_s: float = 0.0
    versions: list[str] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)  # run ids at fractions of the build
    token_marks: dict[str, str] = field(default_factory=dict)
    batches: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency keys: old run's, old token's
    schedules: list[str] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)  # status → runs the mix put there
    built_on: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))


def write_project(project: Path) -> None:
    (project / "trigger").mkdir(parents=True, exist_ok=True)
    (project / "trigger.toml").write_text('project = "proj_history"\n')
    (project / "trigger" / "history.py").write_text(TASKS)


def history_item(i: int, n: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The `i`-th of `n` runs: its planned status and its batch item."""
    roll, status = rng.random(), "DELAYED"
    for name, share in MIX:
        if roll < share:
            status = name
            break
        roll -= share
    early = i < n // 100  # the first 1 % of the history: where the rare, old task and tag live
    if early and i % 20 == 0:
        status = "COMPLETED"  # the old task's runs: 1 in 2,000 of the history
    tags = [t for t, p in (("prod", 0.5), ("nightly", 0.1)) if rng.random() < p]
    if early and i % 10 == 0:
        tags.append(OLD_TAG)
    options: dict[str, Any] = {"payloadType": "application/json", "tags": tags}
    if status == "COMPLETED":
        task = OLD_TASK if early and i % 20 == 0 else ("export" if rng.random() < 0.2 else "noop")
        if i % 50 == 7:
            options["idempotencyKey"] = f"order-{i}"
    elif status == "EXPIRED":
        task, options["ttl"] = ("sync" if rng.random() < 0.6 else "report"), "1s"
    elif status == "QUEUED":
        task = "held"
    else:
        task, options["delay"] = "later", "30d"
    return status, {"task": task, "payload": json.dumps({"n": i}), "options": options}


def _token(d: Daemon, j: int, early: bool) -> str:
    """Token `j`: a third completed, a third timing out after 1 s, a third left WAITING."""
    body: dict[str, Any] = {"tags": ["prod"] if j % 2 == 0 else []}
    if early:
        body["tags"].append(OLD_TAG)
    if j % 10 == 3:
        body["idempotencyKey"] = f"tok-{j}"
    if j % 3 == 1:
        body["timeout"] = "1s"
    r = d.http.post("/api/v1/waitpoints/tokens", json=body)
    r.raise_for_status()
    token_id = str(r.json()["id"])
    if j % 3 == 0:
        d.http.post(f"/api/v1/waitpoints/tokens/{token_id}/complete",
                    json={"data": {"j": j}}).raise_for_status()
    return token_id


class Progress:
    """A line on stderr every few seconds: runs, rate, ETA."""

    def __init__(self, total: int, every_s: float = 5.0) -> None:
        self.total, self.every_s = total, every_s
        self.started = self.last = time.monotonic()
        self.shown = 0

    def show(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if done == self.shown or (not force and now - self.last < self.every_s):
            return
        self.last, self.shown = now, done
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate else float("inf")
        print(f"  built {done:,}/{self.total:,} runs ({100 * done / self.total:.1f} %), "
              f"{rate:,.0f} runs/s, "
              f"ETA {eta / 60:.1f} min, load {load_average()} {extra}", file=sys.stderr, flush=True)


def _throttle(d: Daemon, limit: int = 2000) -> None:
    """Keep the no-op runs waiting for a slot under `limit`, so the build writes into a daemon
    that keeps up rather than piling up a backlog (which would itself slow every dispatch round)."""
    def backlog() -> int:
        return sum(int(d.http.get(f"/api/v1/queues/{name}", params={"type": kind}).json()["queued"])
                   for name, kind in (("noop", "task"), ("exports", "custom")))
    if backlog() > limit:
        wait_for(lambda: backlog() < limit // 4, 3600, "the no-op backlog to drain", every=0.2)


def _milestones(d: Daemon, m: Manifest, i: int, project: Path) -> None:
    """Things that happen at points of the build: schedules after the first batch, a second
    version half-way (so filter[version] has an old and a new one)."""
    if i == BATCH:
        for cron in ("* * * * * */2", "* * * * * */15"):
            r = d.http.post("/api/v1/schedules", json={"task": "tick", "cron": cron,
                                                       "deduplicationKey": cron})
            r.raise_for_status()
            m.schedules.append(str(r.json()["id"]))
    if i <= m.runs // 2 < i + BATCH:
        m.versions.append(d.register(project))


def build_history(d: Daemon, m: Manifest, project: Path) -> None:
    """Trigger `m.runs` runs in batches of 500, with tokens and schedules alongside."""
    rng = random.Random(17)
    m.versions.append(d.register(project))
    for task in PAUSED:
        d.pause(task)
    progress, started = Progress(m.runs), time.perf_counter()
    marks = {int(frac * m.runs): name for name, frac in MARKS.items()}
    for i in range(0, m.runs, BATCH):
        _milestones(d, m, i, project)
        planned = [history_item(k, m.runs, rng) for k in range(i, min(i + BATCH, m.runs))]
        answer = d.batch([item for _, item in planned])
        for k, (status, item) in enumerate(planned, start=i):
            m.planned[status] = m.planned.get(status, 0) + 1
            if k in marks:
                m.marks[marks[k]] = answer["runs"][k - i]["id"]
            key = item["options"].get("idempotencyKey")
            if key and "old_run" not in m.keys:
                m.keys["old_run"], m.keys["old_run_task"] = key, item["task"]
        m.batches.setdefault("old", answer["id"])
        m.batches["recent"] = answer["id"]
        m.marks["last"] = answer["runs"][-1]["id"]
        _build_tokens(d, m, i)
        m.built = i + len(planned)
        if (i // BATCH) % 4 == 3:
            _throttle(d)
        progress.show(m.built)
    progress.show(m.built, force=True)
    m.build_s = time.perf_counter() - started


def _build_tokens(d: Daemon, m: Manifest, i: int) -> None:
    first = i // BATCH * TOKENS_PER_BATCH
    for j in range(first, first + TOKENS_PER_BATCH):
        token_id = _token(d, j, early=i < m.runs // 100)
        for name, frac in MARKS.items():
            if name not in m.token_marks and i >= frac * m.runs:
                m.token_marks[name] = token_id
        if j % 10 == 3 and "old_token" not in m.keys:
            m.keys["old_token"] = f"tok-{j}"
        m.token_marks["last"] = token_id
        if j % 3 == 1:
            m.token_marks["last_timeout"] = token_id


def settle(d: Daemon, m: Manifest) -> None:
    """Wait until every run is where the mix put it, then stop the schedules."""
    started = time.perf_counter()
    for schedule_id in m.schedules:
        d.http.post(f"/api/v1/schedules/{schedule_id}/deactivate").raise_for_status()

    def settled() -> bool:
        counts = d.counts()
        return (counts.get("QUEUED", 0) == m.planned.get("QUEUED", 0)
                and counts.get("DELAYED", 0) == m.planned.get("DELAYED", 0)
                and not any(counts.get(s) for s in ("PENDING_VERSION", "DEQUEUED", "EXECUTING",
                                                    "WAITING")))
    wait_for(settled, 3600, "the history to settle", every=1.0)
    last = m.token_marks["last_timeout"]
    url = f"/api/v1/waitpoints/tokens/{last}"
    wait_for(lambda: d.http.get(url).json()["status"] == "TIMED_OUT",
             600, "the last token with a timeout to time out")
    m.settle_s = time.perf_counter() - started
    m.built_on = {**machine(), "load_after": load_average()}
    m.complete = True


def add_backlog(d: Daemon, task: str, count: int, **options: Any) -> None:
    """`count` runs of `task` (a paused queue's, or delayed) through the batch route."""
    for i in range(0, count, BATCH):
        items = [{"task": task, "payload": "null", "options": {"payloadType": "application/json",
                                                               **options}}
                 for _ in range(min(BATCH, count - i))]
        d.batch(items)
