#!/usr/bin/env python3
"""trigger-local with a long history and a deep backlog (issue #17).

    python scripts/bench_history.py --runs 100000                  # build, measure, delete
    python scripts/bench_history.py --runs 1000000 --home /tmp/h1m --keep   # build once, keep
    python scripts/bench_history.py --runs 1000000 --home /tmp/h1m --keep   # later: measure only
    python scripts/bench_history.py --backlog                      # dispatcher vs waiting runs

History mode starts a real daemon and builds `--runs` runs through the public batch route
(500 items a call) in the mix issue #17 measured: ~24 % COMPLETED no-ops, ~73 % EXPIRED
(1 s ttl in paused queues), ~2 % QUEUED in a paused queue, ~1 % DELAYED 30 days ahead, over
several tasks (one rare and old), tags (one rare and old), idempotency keys, two versions, two
schedules and one waitpoint token per 100 runs. How long a build takes: 100k runs ≈ 1.5 min
on the 2-CPU dev VM (~1,100 runs/s); the rate falls as the history grows, because the
mix's no-op runs must also run and, before issue #17, every dispatch round gets slower with
the QUEUED and DELAYED runs the history holds: a 1M build on that code had made 426k runs
after 12 min (780 runs/s falling to 400), so count on about an hour for 1M. With
`--home DIR --keep` a build is paid once and later runs with the same `--home` and `--runs`
only measure (also with newer code: the daemon migrates the database). Then it measures every
runs-list filter and the token list (first page and a cursor page ~90 % down the list), the status
route, trigger→start, no-op throughput, stop and start times, disk per run and RSS.

Backlog mode measures trigger→start and throughput on an empty daemon, then with 25k and 50k
QUEUED runs in paused queues, then 50k QUEUED plus 10k DELAYED.

Prints Markdown; `--write-docs` appends it, dated, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_history_build import (
    EXPECTED_RUNS_PER_S,
    Manifest,
    add_backlog,
    build_history,
    settle,
    write_project,
)
from bench_history_daemon import Daemon, load_average, machine, wait_for
from bench_history_figures import (
    db_bytes,
    idempotent_retrigger,
    queues_latency,
    restarts,
    status_latency,
    table_sizes,
    throughput,
    trigger_to_start,
    wait_compacted,
)
from bench_history_lists import list_table, measure_lists
from bench_history_report import (
    append_docs,
    backlog_table,
    figures_table,
    history_line,
    machine_line,
    phases_line,
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Phases(dict[str, float]):
    """How long each phase took, in the order they ran."""

    def run(self, name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        log(f"[{time.strftime('%H:%M:%S')}] {name} (load {load_average()})")
        started = time.perf_counter()
        result = call(*args, **kwargs)
        self[name] = time.perf_counter() - started
        return result


def prepare(root: Path, runs: int) -> tuple[Manifest, bool]:
    """The manifest of the history in `root`, and whether it still has to be built."""
    path = root / "manifest.json"
    m = Manifest.load(path)
    if m is None:
        write_project(root / "project")
        return Manifest(runs=runs), True
    if not m.complete:
        raise SystemExit(f"{root} holds an unfinished build (interrupted?): delete it or use "
                         "another --home")
    if m.runs != runs:
        raise SystemExit(f"{root} holds a history of {m.runs:,} runs, not {runs:,}: pass "
                         f"--runs {m.runs} "
                         "or another --home")
    return m, False


def measure(d: Daemon, m: Manifest, args: argparse.Namespace, phases: Phases) -> dict[str, Any]:
    f: dict[str, Any] = {"rss_idle": d.rss_mib(), "latency_samples": args.latency_samples,
                         "throughput_runs": args.throughput_runs, "history_counts": d.counts()}
    f["lists"] = phases.run("list requests", measure_lists, d, m, args.samples, log)
    f["status"] = phases.run("status", status_latency, d, args.samples)
    f["queues"] = queues_latency(d, args.samples)
    f["retrigger"] = idempotent_retrigger(d, m.keys["old_run_task"], m.keys["old_run"],
                                          args.samples)
    f["trigger_to_start"] = phases.run("trigger→start", trigger_to_start, d, args.latency_samples)
    f["throughput"] = phases.run("throughput", throughput, d, args.throughput_runs)
    f["compaction"] = phases.run("compaction", wait_compacted, d, args.compaction_wait_s)
    f["compact_after_s"] = args.compact_after_s
    f["rss_end"] = d.rss_mib()
    f["counts"] = d.counts()
    f["runs"] = sum(f["counts"].values())
    f["db"] = db_bytes(d.home)
    f["db_total"] = sum(f["db"].values())
    f["restarts"] = phases.run("restarts", restarts, d, args.restarts)
    d.stop()
    f["tables"] = phases.run("table sizes", table_sizes, d.home)
    return f


def history(args: argparse.Namespace) -> str:
    root = Path(args.home or tempfile.mkdtemp(prefix="trigger-local-history-")).resolve()
    created = not root.exists() or args.home is None
    root.mkdir(parents=True, exist_ok=True)
    phases, info, load_start = Phases(), machine(), load_average()
    d = Daemon(root / "home", root / "daemon.log", compact_after_s=args.compact_after_s)
    try:
        m, build = prepare(root, args.runs)
        phases.run("daemon start", d.start)
        if build:
            log(f"building {args.runs:,} runs in {root} (about "
                f"{args.runs / EXPECTED_RUNS_PER_S / 60:.0f} min)")
            m.save(root / "manifest.json")  # unfinished until settled: a later run refuses it
            phases.run("build", build_history, d, m, root / "project")
            phases.run("settle", settle, d, m)
            m.save(root / "manifest.json")
        f = measure(d, m, args, phases)
    finally:
        d.stop()
        if created and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"history kept in {root}")
    cmd = f"python scripts/bench_history.py --runs {args.runs}" + (" --home DIR --keep" if args.keep
                                                                   else "")
    return "\n\n".join([
        f"## A history of {args.runs:,} runs (issue #17), {info['date'][:10]}",
        f"Command: `{cmd}`. " + machine_line(info, load_start, load_average()),
        history_line(m, f["history_counts"]), list_table(f["lists"], args.samples),
        figures_table(f), phases_line(phases)])


def backlog_stage(d: Daemon, label: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"label": label, "trigger_to_start": trigger_to_start(d, args.latency_samples),
            "throughput": throughput(d, args.throughput_runs), "rss": d.rss_mib()}


def backlog(args: argparse.Namespace) -> str:
    phases, info, load_start = Phases(), machine(), load_average()
    with tempfile.TemporaryDirectory(prefix="trigger-local-backlog-") as tmp:
        root = Path(tmp)
        write_project(root / "project")
        d = Daemon(root / "home", root / "daemon.log")
        try:
            phases.run("daemon start", d.start)
            d.register(root / "project")
            for task in ("held", "held-b"):
                d.pause(task)
            stages = [phases.run("empty", backlog_stage, d, "empty daemon", args)]
            queued = 0
            for target in args.queued:
                phases.run(f"add {target - queued:,} QUEUED", _add_queued, d, target - queued,
                           target)
                queued = target
                stages.append(phases.run(f"{target:,} QUEUED", backlog_stage, d,
                                         f"{target:,} QUEUED", args))
            phases.run(f"add {args.delayed:,} DELAYED", add_backlog, d, "later", args.delayed,
                       delay="30d")
            label = f"{queued:,} QUEUED + {args.delayed:,} DELAYED"
            stages.append(phases.run(label, backlog_stage, d, label, args))
        finally:
            d.stop()
    return "\n\n".join([
        f"## Dispatch with a backlog of waiting runs (issue #17), {info['date'][:10]}",
        "Command: `python scripts/bench_history.py --backlog` (QUEUED runs in two paused "
        "queues, DELAYED "
        "30 days ahead, all through the batch route). "
        + machine_line(info, load_start, load_average()),
        backlog_table(stages) + f"\n\ntrigger→start: {args.latency_samples} sequential runs; "
                                "throughput: "
        f"{args.throughput_runs:,} no-op runs batch-triggered 500 a call, after a warm-up 500.",
        phases_line(phases)])


def _add_queued(d: Daemon, count: int, total: int) -> None:
    add_backlog(d, "held", count // 2)
    add_backlog(d, "held-b", count - count // 2)
    wait_for(lambda: d.counts().get("QUEUED", 0) >= total, 120, f"{total:,} QUEUED runs")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100_000, help="history size (default 100,000)")
    p.add_argument("--home",
                   help="the bench's directory (daemon home, project, manifest, log); a finished "
                                  "build of the same --runs there is measured without "
                                  "building again")
    p.add_argument("--keep", action="store_true",
                   help="keep the directory (default: delete what this run made)")
    p.add_argument("--samples", type=int, default=30,
                   help="samples per list request and status (≥ 30)")
    p.add_argument("--latency-samples", type=int, default=100,
                   help="sequential runs for trigger→start")
    p.add_argument("--throughput-runs", type=int, default=2000)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--compact-after-s", type=float, default=30.0,
                   help="the daemon's compact_after_s (default 30: the disk figure is taken "
                        "once every finished run is compacted, as it is an hour later by "
                        "default)")
    p.add_argument("--compaction-wait-s", type=float, default=900.0,
                   help="how long to wait for compaction to catch up before the disk figure "
                        "(default 900; the figure says how much was compacted)")
    p.add_argument("--backlog", action="store_true",
                   help="measure dispatch against a backlog instead")
    p.add_argument("--queued", type=lambda s: [int(v) for v in s.split(",")],
                   default=[25_000, 50_000],
                   help="backlog mode: QUEUED runs in paused queues, one stage each (default "
                        "25000,50000)")
    p.add_argument("--delayed", type=int, default=10_000,
                   help="backlog mode: DELAYED runs in the last stage")
    p.add_argument("--write-docs", action="store_true",
                   help="append the section to docs/benchmarks.md")
    args = p.parse_args()
    if args.samples < 30 or args.latency_samples < 30:
        p.error("--samples and --latency-samples must be at least 30 (a p99 needs them)")
    if args.runs < 10_000 and not args.backlog:
        p.error("--runs must be at least 10,000 (the rare, old values live in the first 1 %)")
    return args


def main() -> None:
    args = parse_args()
    section = backlog(args) if args.backlog else history(args)
    print(section)
    if args.write_docs:
        append_docs(section)
        log("appended to docs/benchmarks.md")


if __name__ == "__main__":
    main()
