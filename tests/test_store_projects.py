"""The store contract for projects (issue #11): versions, runs, queues, schedules, rate limits and
debounce keys of two projects stay apart even when their names are the same, and a database
from before projects existed keeps its rows, in the project `proj_local`."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from store_support import T0, insert_runs, make_run

from trigger_local.projects import DEFAULT_PROJECT
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import (
    EXECUTING,
    QUEUED,
    Project,
    ProjectDefaults,
    Queue,
    Schedule,
    Version,
)
from trigger_local.store.sqlite.schema import MIGRATIONS

A, B = "proj_a", "proj_b"
#: the number of the projects migration (`PRAGMA user_version` once it ran); others come after it
PROJECTS_MIGRATION = next(n for n,
                          sql in enumerate(MIGRATIONS, start=1) if "CREATE TABLE projects" in sql)


def queue(project: str, name: str = "task/hello", **fields: object) -> Queue:
    values: dict[str, object] = dict(name=name, id=f"queue_{project}_{name}", type="task",
                                     concurrency_limit=None,
                                     paused=False, created_at=T0, project=project)
    values.update(fields)
    return Queue(**values)  # type: ignore[arg-type]


async def test_queues_of_two_projects_with_one_name_are_two_queues(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.queues.insert(queue(A, paused=True, concurrency_limit=2))
        await ops.queues.insert(queue(B))
        assert await ops.queues.update(B, "task/hello", concurrency_limit=5)
    await insert_runs(store, make_run("run_a1", project=A),
                      make_run("run_a2", project=A, status=EXECUTING),
                      make_run("run_b1", project=B))
    read = store.read()
    a, b = await read.queues.get(A, "task/hello"), await read.queues.get(B, "task/hello")
    assert a is not None and b is not None and (a.paused, b.paused) == (True, False)
    assert await read.queues.paused() == {(A, "task/hello")}
    assert await read.queues.limits() == {(A, "task/hello"): 2, (B, "task/hello"): 5}
    assert [(q.project, q.queued, q.running) for q in await read.queues.all()] \
        == [(A, 1, 1), (B, 1, 0)]
    assert [q.project for q in await read.queues.all(B)] == [B]
    assert sorted(await read.runs.queued_queues()) == [(A, "task/hello"), (B, "task/hello")]
    assert [r.id for r in await read.runs.queued(B, "task/hello", 10)] == ["run_b1"]
    assert await read.runs.running_counts() == {(A, "task/hello", None): 1}
    assert [r.id for r in await read.runs.page(projects=[B])] == ["run_b1"]


async def test_each_project_has_its_newest_version_current(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        for n, (project, at) in enumerate([(A, T0), (B, T0 + 1), (A, T0 + 2)]):
            await ops.versions.insert(Version(id=f"version_{n}", project_dir=f"/{project}",
                                              created_at=at,
                                             project=project))
    read = store.read()
    assert sorted((v.project, v.id) for v in await read.versions.current()) \
        == [(A, "version_2"), (B, "version_1")]
    latest_b = await read.versions.latest(B)
    assert latest_b is not None and latest_b.id == "version_1"
    latest = await read.versions.latest()
    assert latest is not None and latest.id == "version_2"


async def test_project_records_upsert_keeps_created_at(store: Store) -> None:  # noqa: F811
    async with store.tx() as ops:
        await ops.projects.upsert(Project(ref=A, project_dir="/a", created_at=T0, updated_at=T0))
        await ops.projects.upsert(Project(ref=A, project_dir="/a2", created_at=T0 + 9,
                                          updated_at=T0 + 9, dev=True))
        assert await ops.projects.update(A, left_at=T0 + 10)
        assert not await ops.projects.update("proj_nope", left_at=T0)
    [project] = await store.read().projects.all()
    assert (project.project_dir, project.created_at, project.dev, project.left_at) \
        == ("/a2", T0, True, T0 + 10)


async def test_keys_are_per_project(store: Store) -> None:  # noqa: F811
    await insert_runs(store, make_run("run_a", project=A, idempotency_key="k"),
                      make_run("run_b", project=B, idempotency_key="k", at=T0 + 1))
    async with store.tx() as ops:
        for project in (A, B):
            await ops.schedules.insert(Schedule(id=f"sched_{project}", type="IMPERATIVE",
                                                task_id="hello",
                                               cron="* * * * *", timezone="UTC", active=True,
                                               created_at=T0,
                                               updated_at=T0, deduplication_key="daily",
                                               project=project))
            await ops.debounces.set(project, "hello", "key", f"run_{project}", T0)
        await ops.rate_limits.set(A, "task/hello", {"limit": 1, "period_s": 10})
        await ops.rate_limits.save_state(A, "task/hello", "", T0 + 10, None)
    read = store.read()
    found = await read.runs.find_by_idempotency_key("hello", "k", A)
    assert found is not None and found.id == "run_a"
    schedule = await read.schedules.find_by_key(B, "daily")
    assert schedule is not None and schedule.id == f"sched_{B}"
    assert (await read.schedules.page(project=A))[1] == 1
    assert await read.debounces.get(B, "hello", "key") == (f"run_{B}", T0)
    assert await read.rate_limits.all() \
        == {(A, "task/hello"): {"limit": 1, "period_s": 10.0, "per_key": False}}
    assert await read.rate_limits.state([(A, "task/hello"), (B, "task/hello")]) \
        == {(A, "task/hello", ""): T0 + 10}


async def test_a_database_from_before_projects_keeps_its_rows_in_proj_local(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = PROJECTS_MIGRATION - 1
    with closing(sqlite3.connect(path)) as db:
        for sql in MIGRATIONS[:before]:
            db.executescript(sql)
        db.executescript(f"""
            PRAGMA user_version = {before};
            INSERT INTO versions (id, project_dir, created_at)
                VALUES ('version_old', '/old', {T0});
            INSERT INTO queues (name, id, type, paused, created_at)
                VALUES ('task/hello', 'queue_1', 'task', 1, {T0});
            INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, created_at,
                              updated_at, queued_at, payload_type)
                VALUES ('run_old', 'hello', 'QUEUED', 's', 'queued', 'task/hello', {T0}, {T0}, {T0},
                        'application/json');
            INSERT INTO schedules (id, type, task_id, cron, deduplication_key, created_at,
                                   updated_at)
                VALUES ('sched_old', 'DECLARATIVE', 'hello', '* * * * *', 'declarative:hello:0',
                        {T0}, {T0});
        """)
    opened = SqliteStore(str(path))
    await opened.open()
    try:
        read = opened.read()
        run = await read.runs.get("run_old")
        version = await read.versions.get("version_old")
        old_queue = await read.queues.get(DEFAULT_PROJECT, "task/hello")
        schedule = await read.schedules.get("sched_old")
        assert run is not None and run.project == DEFAULT_PROJECT and run.status == QUEUED
        assert version is not None and version.project == DEFAULT_PROJECT
        assert old_queue is not None and old_queue.paused
        assert schedule is not None and schedule.project == DEFAULT_PROJECT
        assert [(p.ref, p.project_dir) for p in await read.projects.all()] \
            == [(DEFAULT_PROJECT, "/old")]
    finally:
        await opened.close()


async def test_a_database_made_with_projects_migrates_forward_to_version_defaults(
        tmp_path: Path) -> None:
    """main shipped the projects migration first: a database at that version gets the later
    ones (versions.defaults) and its versions read back with no defaults."""
    path = tmp_path / "projects.db"
    assert len(MIGRATIONS) > PROJECTS_MIGRATION
    with closing(sqlite3.connect(path)) as db:
        for sql in MIGRATIONS[:PROJECTS_MIGRATION]:
            db.executescript(sql)
        db.executescript(f"""
            PRAGMA user_version = {PROJECTS_MIGRATION};
            INSERT INTO versions (id, project_dir, created_at, project)
                VALUES ('version_a', '/a', {T0}, '{A}');
        """)
    opened = SqliteStore(str(path))
    await opened.open()
    try:
        version = await opened.read().versions.get("version_a")
        assert version is not None and version.project == A \
            and version.defaults == ProjectDefaults()
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        await opened.close()


async def test_tokens_batches_and_env_vars_of_an_older_database_get_their_projects(
        tmp_path: Path) -> None:
    """The migration that gave tokens, batches and env vars a project: a token or batch gets
    the project of the run that made it (none: the daemon key's only); env vars, which every
    project's processes got, are copied to each project."""
    path = tmp_path / "older.db"
    before = next(n for n, sql in enumerate(MIGRATIONS, start=1)
                  if "ALTER TABLE waitpoints ADD COLUMN project" in sql) - 1
    with closing(sqlite3.connect(path)) as db:
        for sql in MIGRATIONS[:before]:
            db.executescript(sql)
        db.executescript(f"""
            PRAGMA user_version = {before};
            INSERT INTO projects (ref, project_dir, created_at, updated_at)
                VALUES ('{A}', '/a', {T0}, {T0}), ('{B}', '/b', {T0}, {T0});
            INSERT INTO env_vars (env, name, value, is_secret, updated_at)
                VALUES ('dev', 'X', '1', 0, {T0});
        """)
    opened = SqliteStore(str(path))
    await opened.open()
    try:
        read = opened.read()
        for ref in (A, B):
            assert await read.env_vars.all(ref, "dev") == [
                {"name": "X", "value": "1", "isSecret": False}]
    finally:
        await opened.close()
    # rows written at the older version, then migrated
    with closing(sqlite3.connect(tmp_path / "older2.db")) as db:
        for sql in MIGRATIONS[:before]:
            db.executescript(sql)
        db.executescript(f"""
            PRAGMA user_version = {before};
            INSERT INTO runs (id, task_id, status, payload_type, created_at, updated_at, queue,
                              queued_at, snapshot_id, snapshot_kind, project)
                SELECT 'run_a', 'hello', 'COMPLETED', 'application/json', {T0}, {T0},
                       'task/hello', {T0}, 's', 'finished', '{A}';
            INSERT INTO waitpoints (id, type, status, created_at, created_by_run_id)
                VALUES ('waitpoint_a', 'MANUAL', 'WAITING', {T0}, 'run_a'),
                       ('waitpoint_none', 'MANUAL', 'WAITING', {T0}, NULL);
            INSERT INTO batches (id, run_count, created_at, status, parent_run_id)
                VALUES ('batch_a', 1, {T0}, 'PENDING', 'run_a'),
                       ('batch_none', 1, {T0}, 'PENDING', NULL);
        """)
    opened = SqliteStore(str(tmp_path / "older2.db"))
    await opened.open()
    try:
        read = opened.read()
        assert (await read.waitpoints.get("waitpoint_a")).project == A  # type: ignore[union-attr]
        assert (await read.waitpoints.get("waitpoint_none")).project is None  # type: ignore[union-attr]
        assert (await read.batches.get("batch_a")).project == A  # type: ignore[union-attr]
        assert (await read.batches.get("batch_none")).project is None  # type: ignore[union-attr]
    finally:
        await opened.close()
