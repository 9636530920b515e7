"""The store contract, continued: every list path over thousands of rows (issue #17).

Results are asserted against a plain Python model of the same rows on every backend: first
page, a cursor page deep in the list, and the page before it. On SQLite each path's statements
are also EXPLAINed (tests/sqlite_plans.py): an index in the list's order, no sort of every match,
no full scan. Same `store` fixture as tests/test_store_contract.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from typing import Any

import pytest
from legacy_rows import insert_snapshot
from sqlite_plans import assert_run_page_plans, assert_token_page_plans
from store_support import T0, make_run, make_wp

from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import (
    COMPLETED,
    DELAYED,
    EXECUTING,
    QUEUED,
    WP_COMPLETED,
    WP_TIMED_OUT,
    WP_WAITING,
    LogUsage,
    Queue,
    Run,
    Waitpoint,
)
from trigger_local.store.sqlite.store import RECLAIM_PAGES

N = 2000
EXPIRED = "EXPIRED"
PAGE = 25


def _status(i: int) -> str:
    return (COMPLETED, EXPIRED, EXPIRED, EXPIRED, COMPLETED, EXPIRED, QUEUED, DELAYED)[i % 8]


def history() -> list[Run]:
    """N runs in the shape of bench_history's mix: rare values in the oldest 1 % only; every
    fifth run shares its created_at with the next (ties are ordered by id on PostgreSQL, by
    insertion on SQLite: the same order here, as ids grow with insertion)."""
    runs = []
    for i in range(N):
        rare = i < N // 100
        runs.append(make_run(
            f"run_{i:05d}", status=_status(i), at=T0 + (i - i % 2 * (i % 5 == 1)),
            task_id="legacy" if rare else ("sync", "noop", "exports")[i % 3],
            queue="exports" if i % 3 == 2 else f"task/{('sync', 'noop', 'exports')[i % 3]}",
            tags=(["prod", "old-tag"] if rare else ["prod"] if i % 2 else ["nightly"]
                  if i % 10 == 0 else []),
            version_id="version_1" if i < N // 2 else "version_2",
            batch_id=f"batch_{i // 500}", schedule_id="sched_1" if i % 7 == 0 else None,
            parent_run_id="run_00000" if i % 11 == 0 and i else None,
            idempotency_key=f"key-{i % 600}", project="proj_a" if i % 4 else "proj_b"))
    return runs


@pytest.fixture
async def listed(store: Store) -> tuple[Store, list[Run]]:  # noqa: F811
    runs = history()
    async with store.tx() as ops:
        await ops.runs.insert_many(runs)
    return store, runs


def _model(runs: list[Run], keep: Callable[[Run], bool]) -> list[str]:
    return [r.id for r in sorted((r for r in runs if keep(r)),
                                 key=lambda r: (r.created_at, r.id), reverse=True)]


CASES: list[tuple[str, dict[str, Any], Callable[[Run], bool]]] = [
    ("none", {}, lambda r: True),
    ("status", {"statuses": [COMPLETED]}, lambda r: r.status == COMPLETED),
    ("status rare", {"statuses": [DELAYED]}, lambda r: r.status == DELAYED),
    ("statuses", {"statuses": [QUEUED, DELAYED]}, lambda r: r.status in (QUEUED, DELAYED)),
    ("task", {"task_ids": ["sync"]}, lambda r: r.task_id == "sync"),
    ("task rare", {"task_ids": ["legacy"]}, lambda r: r.task_id == "legacy"),
    ("tasks", {"task_ids": ["legacy", "noop"]}, lambda r: r.task_id in ("legacy", "noop")),
    ("tag", {"tags": ["prod"]}, lambda r: "prod" in r.tags),
    ("tag rare", {"tags": ["old-tag"]}, lambda r: "old-tag" in r.tags),
    ("tags", {"tags": ["old-tag", "nightly"]},
     lambda r: "old-tag" in r.tags or "nightly" in r.tags),
    ("queue", {"queue": "exports"}, lambda r: r.queue == "exports"),
    ("version old", {"version_id": "version_1"}, lambda r: r.version_id == "version_1"),
    ("created window", {"created_from": T0 + 1000, "created_to": T0 + 2000},
     lambda r: T0 + 1000 <= r.created_at <= T0 + 2000),
    ("schedule", {"schedule_ids": ["sched_1"]}, lambda r: r.schedule_id == "sched_1"),
    ("batch", {"batch_id": "batch_0"}, lambda r: r.batch_id == "batch_0"),
    ("parent", {"parent_run_id": "run_00000"}, lambda r: r.parent_run_id == "run_00000"),
    ("idempotency key", {"idempotency_key": "key-7"}, lambda r: r.idempotency_key == "key-7"),
    ("project", {"projects": ["proj_b"]}, lambda r: r.project == "proj_b"),
    ("status and tag", {"statuses": [COMPLETED], "tags": ["prod"]},
     lambda r: r.status == COMPLETED and "prod" in r.tags),
    ("task and project", {"task_ids": ["noop"], "projects": ["proj_a"]},
     lambda r: r.task_id == "noop" and r.project == "proj_a"),
]


@pytest.mark.parametrize("filters, keep", [(f, k) for _, f, k in CASES],
                         ids=[c[0] for c in CASES])
async def test_each_runs_list_path_pages_through_its_matches(
        listed: tuple[Store, list[Run]], filters: dict[str, Any],
        keep: Callable[[Run], bool]) -> None:
    opened, runs = listed
    expected = _model(runs, keep)
    assert expected, "the case must match runs"
    read = opened.read().runs
    first = [r.id for r in await read.page(**filters, limit=PAGE)]
    assert first == expected[:PAGE]
    deep = int(len(expected) * 0.9)
    after = expected[deep]
    page = [r.id for r in await read.page(**filters, after=after, limit=PAGE)]
    assert page == expected[deep + 1:deep + 1 + PAGE]
    newer = [r.id for r in await read.page(**filters, before=after, limit=PAGE)]
    assert newer == expected[max(0, deep - PAGE):deep]
    if isinstance(opened, SqliteStore):
        # (created_at, seq): what the plan is asked for, not which row (runs are seq 1…N)
        cursor = next((r.created_at, i + 1) for i, r in enumerate(runs) if r.id == after)
        assert_run_page_plans(opened.path, **filters)
        assert_run_page_plans(opened.path, cursor=cursor, **filters)


async def test_a_pruned_cursor_gives_an_empty_page(listed: tuple[Store, list[Run]]) -> None:
    opened, _ = listed
    assert await opened.read().runs.page(after="run_gone", limit=PAGE) == []


async def test_tags_follow_a_runs_tags(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert(make_run("run_a", tags=["x", "y"]))
        await ops.runs.update("run_a", None, tags=["y", "z"])
    read = store.read().runs
    assert [r.id for r in await read.page(tags=["x"])] == []
    assert [r.id for r in await read.page(tags=["z"])] == ["run_a"]
    assert [r.id for r in await read.page(tags=["y", "z"])] == ["run_a"]


async def test_counts_by_status_follow_every_write(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert_many([make_run(f"run_{i}", status=QUEUED) for i in range(5)])
        await ops.runs.insert(make_run("run_d", status=DELAYED))
        await ops.runs.update("run_0", "snapshot_run_0", status=COMPLETED, snapshot_id="s2")
        await ops.runs.update("run_1", "snapshot_other", status=COMPLETED)  # no match
        await ops.runs.update("run_2", None, tags=["t"])  # not a status change
    assert await store.read().runs.count_by_status() == {QUEUED: 4, COMPLETED: 1, DELAYED: 1}
    with pytest.raises(RuntimeError):
        async with store.tx() as ops:
            await ops.runs.update("run_3", None, status=COMPLETED)
            raise RuntimeError("rolled back: so are the counts")
    assert await store.read().runs.count_by_status() == {QUEUED: 4, COMPLETED: 1, DELAYED: 1}


@pytest.mark.parametrize("statuses, tags", [([], None), ([WP_WAITING], None),
                                            ([WP_COMPLETED, WP_TIMED_OUT], None),
                                            ([], ["old-tag"]), ([WP_WAITING], ["prod"])])
async def test_the_token_list_pages_through_its_matches(
        store: Store, statuses: list[str], tags: list[str] | None) -> None:  # noqa: F811
    wps = [replace(w, created_at=T0 + i) for i, w in enumerate(_tokens())]
    async with store.tx() as ops:
        for w in wps:
            await ops.waitpoints.insert(w)
    expected = [w.id for w in sorted(
        (w for w in wps if (not statuses or w.status in statuses)
         and (not tags or set(tags) & set(w.tags))),
        key=lambda w: (w.created_at, w.id), reverse=True)]
    read = store.read().waitpoints
    first = await read.page(type_="MANUAL", statuses=statuses, tags=tags, limit=PAGE)
    assert [w.id for w in first] == expected[:PAGE]
    deep = int(len(expected) * 0.9)
    page = await read.page(type_="MANUAL", statuses=statuses, tags=tags, after=expected[deep],
                           limit=PAGE)
    assert [w.id for w in page] == expected[deep + 1:deep + 1 + PAGE]
    if isinstance(store, SqliteStore):
        assert_token_page_plans(store.path, statuses, tags)
        assert_token_page_plans(store.path, statuses, tags, cursor=(T0 + 100, expected[deep]))


def _tokens() -> list[Waitpoint]:
    return [make_wp(f"waitpoint_{i:05d}", status=(WP_COMPLETED, WP_WAITING, WP_TIMED_OUT)[i % 3],
                    tags=["old-tag"] if i < 30 else ["prod"] if i % 2 else [])
            for i in range(N)]


async def test_retention_reads_and_deletes(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert_many([
            make_run("run_old", status=COMPLETED, completed_at=T0, tags=["t"], waitpoint_id="wp_1",
                     payload="p/1", payload_type="application/store"),
            make_run("run_new", status=COMPLETED, completed_at=T0 + 100),
            make_run("run_live", status=QUEUED, payload="p/2", payload_type="application/store"),
        ])
        await ops.waitpoints.insert(make_wp("wp_1", type_="RUN", status=WP_COMPLETED))
        await insert_snapshot(ops, "s1", "run_old", "finished", COMPLETED, T0)
        await ops.events.append("run_old", "run.completed", T0, {})
        await ops.events.append("run_new", "run.completed", T0, {})
        for run_id in ("run_old", "run_new"):
            await ops.streams.create(run_id, "out", T0)
            await ops.streams.append(run_id, "out", ["a", "b"], T0)
            await ops.logs.add_usage(run_id, 1, LogUsage(1, 5), LogUsage(1, 5))
    read = store.read().runs
    assert [r.id for r in await read.finished_before(T0 + 100, 10)] == ["run_old"]
    assert [r.id for r in await read.finished_before(T0 + 101, 1)] == ["run_old"]
    assert await read.packets_in_use(["p/1", "p/2", "p/3"]) == {"p/1", "p/2"}
    async with store.tx() as ops:
        assert await ops.runs.delete_many(["run_old", "run_missing"]) == 1
    assert await read.get("run_old") is None
    assert await store.read().waitpoints.get("wp_1") is None
    assert await store.read().snapshots.for_run("run_old") == []
    assert [e.run_id for e in await store.read().events.after(0)] == ["run_new"]
    assert await store.read().streams.keys("run_old") == []
    assert await store.read().streams.length("run_new", "out") == 2
    assert await store.read().logs.usage("run_old", 1) is None  # its log count too
    assert await store.read().logs.usage("run_new", 1) == LogUsage(1, 5)
    assert await read.page(tags=["t"]) == []
    assert await read.count_by_status() == {COMPLETED: 1, QUEUED: 1}
    assert await read.packets_in_use(["p/1"]) == set()


async def test_compaction_reads_finished_runs_and_deletes_their_snapshots(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert_many([
            make_run("run_a", status=COMPLETED, completed_at=T0, snapshot_id="s_a2"),
            make_run("run_b", status=COMPLETED, completed_at=T0, snapshot_id="s_b"),
            make_run("run_c", status=COMPLETED, completed_at=T0 + 5),
            make_run("run_q", status=QUEUED),
        ])
        for sid in ("s_a1", "s_a2"):
            await insert_snapshot(ops, sid, "run_a", "k", COMPLETED, T0, "said more")
        await insert_snapshot(ops, "s_b", "run_b", "k", COMPLETED, T0)
        await ops.events.append("run_a", "run.completed", T0, {})
        await ops.events.append("run_a", "run.waiting", T0, {"waitpoint_id": "w"})
    read = store.read().runs
    assert [r.id for r in await read.finished_between(None, T0 + 5, 10)] == ["run_a", "run_b"]
    assert [r.id for r in await read.finished_between((T0, "run_a"), T0 + 6, 10)] \
        == ["run_b", "run_c"]
    async with store.tx() as ops:
        await ops.runs.compact_history(["run_a", "run_b"], ["run.completed", "run.created"])
    # the current one too (with or without a description): the run row says what it said
    assert await store.read().snapshots.for_run("run_a") == []
    assert await store.read().snapshots.for_run("run_b") == []
    assert [e.type for e in await store.read().events.after(0, run_id="run_a")] \
        == ["run.waiting"]


async def test_on_workers_skips_the_queued_backlog(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert_many([
            *(make_run(f"run_q{i}", status=QUEUED) for i in range(50)),
            make_run("run_held_q", status=QUEUED, worker_id="worker_1"),
            make_run("run_wait", status="WAITING", worker_id="worker_2"),
            make_run("run_wait_ck", status="WAITING"),  # checkpointed: no process holds it
            make_run("run_deq", status="DEQUEUED"),
            make_run("run_exec", status=EXECUTING, worker_id="worker_3"),
            make_run("run_done", status=COMPLETED),
        ])
    found = sorted(r.id for r in await store.read().runs.on_workers())
    assert found == ["run_deq", "run_exec", "run_held_q", "run_wait"]


async def test_queue_counts_follow_every_write(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        for name in ("task/hello", "other"):
            await ops.queues.insert(Queue(name=name, id=f"queue_{name}", type="task",
                                          concurrency_limit=None, paused=False, created_at=T0,
                                          project="proj_local"))
        await ops.runs.insert_many([
            *(make_run(f"run_q{i}", status=QUEUED, project="proj_local") for i in range(4)),
            make_run("run_x", status=EXECUTING, project="proj_local"),
            make_run("run_o", status=QUEUED, queue="other", project="proj_local"),
            make_run("run_done", status=COMPLETED, project="proj_local"),
        ])
        await ops.runs.update("run_q0", None, status="DEQUEUED")
        await ops.runs.update("run_x", None, status=COMPLETED)
        await ops.runs.delete_many(["run_q1"])

    def counts(queues: list[Queue]) -> dict[str, tuple[int, int]]:
        return {q.name: (q.queued, q.running) for q in queues}

    assert counts(await store.read().queues.all()) == {"task/hello": (2, 1), "other": (1, 0)}


async def test_reclaim_returns_freed_space(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.runs.insert_many([make_run(f"run_{i:05d}", status=COMPLETED, completed_at=T0,
                                             payload="x" * 500) for i in range(3000)])
    async with store.tx() as ops:
        await ops.runs.delete_many([f"run_{i:05d}" for i in range(2990)])
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            freed = conn.execute("PRAGMA freelist_count").fetchone()[0]
        assert freed > 100
    left = await store.reclaim()  # a bounded amount per call: up to RECLAIM_PAGES
    assert len(await store.read().runs.page(limit=100)) == 10
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
            # all of them, not one page a call (sqlite3's execute steps the pragma once)
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] \
                == max(0, freed - RECLAIM_PAGES) == left
    else:
        assert left == 0  # PostgreSQL's autovacuum does it
