"""The writes a commit sends are executed by name, each statement prepared once per connection
(store/postgres/prepared.py): the server no longer parses and plans the run's INSERT, its
attempt's and the events' statement at every commit. On a real engine and database; and a
round trip that fails after, or before, a statement's PREPARE leaves the next transactions
working (a name it may have prepared is never used again)."""

from __future__ import annotations

import enum
import math
from typing import Any

import asyncpg
import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, WarmPlaces, pg_t_engine  # noqa: F401 (the engine fixture)
from tests.store_support import make_run
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.postgres import PostgresStore, prepared
from trigger_local.store.postgres.inline import literal
from trigger_local.store.postgres.prepared import Prepared, arguments, marks


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The text of every simple query any connection sends."""
    texts: list[str] = []
    original = asyncpg.Connection.execute

    def execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:
            texts.append(query)
        return original(self, query, *args, **kwargs)
    monkeypatch.setattr(asyncpg.Connection, "execute", execute)
    return texts


async def lives(engine: Engine, count: int) -> None:
    """`count` runs triggered, dequeued, started and finished, and as many triggered on an
    idle daemon (started in the trigger's transaction) and finished."""
    for _ in range(count):
        result = await engine.trigger(TriggerRequest(task_id="t"))
        [run] = await engine.dequeue(5)
        started = await engine.start_attempt(run, "worker_1", None)
        assert started is not None and run.id == result.run.id
        await engine.finish_attempt(run.id, started[1].number, AttemptOutcome(ok=True))
        engine.ctx.placer = WarmPlaces()  # type: ignore[assignment]
        at_once = await engine.trigger(TriggerRequest(task_id="t"))
        engine.ctx.placer = None
        assert at_once.run.status == "EXECUTING"
        await engine.finish_attempt(at_once.run.id, 1, AttemptOutcome(ok=True))


async def test_a_commit_executes_statements_prepared_once(engine: Engine,
                                                          sent: list[str]) -> None:
    await lives(engine, 2)
    assert any("PREPARE trigger_local_" in text for text in sent)
    sent.clear()
    await lives(engine, 3)
    commits = [text for text in sent if "COMMIT" in text]
    assert commits and all("EXECUTE trigger_local_" in text for text in commits)
    # nothing prepared again, and the writes are no longer sent as text
    assert not [text for text in sent if "PREPARE" in text]
    assert not [text for text in sent if "INSERT INTO" in text]
    assert await engine.store.read().runs.count_by_status() == {"COMPLETED": 10}
    events = await engine.store.read().events.after(0, limit=1000)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_failed_round_trip_leaves_prepared_statements_usable(
        pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    first = PostgresStore(url)
    await first.open()
    async with first.tx() as tx:
        await tx.runs.insert(make_run("run_1"))
    await first.close()
    store = PostgresStore(url)  # a connection that has prepared nothing
    await store.open()
    try:
        # the run's INSERT fails after its PREPARE ran
        with pytest.raises(asyncpg.UniqueViolationError):
            async with store.tx() as tx:
                await tx.runs.insert(make_run("run_1"))
        async with store.tx() as tx:
            await tx.runs.insert(make_run("run_2"))
        # the run's INSERT fails before the events' statement's PREPARE ran
        with pytest.raises(asyncpg.UniqueViolationError):
            async with store.tx() as tx:
                await tx.runs.insert(make_run("run_2"))
                await tx.events.append("run_2", "run.created", T0, {"n": 1})
        async with store.tx() as tx:
            await tx.events.append("run_2", "run.created", T0, {"n": 2})
        async with store.tx() as tx:
            await tx.runs.insert(make_run("run_3"))
            await tx.events.append("run_3", "run.created", T0, {"n": 3})
        reader = store.read()
        found = await reader.runs.get_many(["run_1", "run_2", "run_3"])
        assert sorted(r.id for r in found) == ["run_1", "run_2", "run_3"]
        assert [e.data["n"] for e in await reader.events.after(0)] == [2, 3]
    finally:
        await store.close()


#: a kept write's kinds of values, each with its mark's cast (an ARRAY of quoted floats is
#: text[] until cast; a quoted float is a literal of no type until its column types it)
ROW_SQL = ("INSERT INTO vals (a, b, c, d, e) "
           "VALUES (?::text[], ?::double precision[], ?, ?::bigint, ?)")
ROWS = [[["a'b", "c\\d"], [1.5, float("inf")], None, 7, 2.25],
        [[], [], "x", -1, float("-inf")]]


def test_values_carry_the_cast_beside_their_mark() -> None:
    assert marks(ROW_SQL).endswith(
        "VALUES ($1::text[], $2::double precision[], $3, $4::bigint, $5)")
    assert arguments(ROW_SQL, ROWS[0]) == [
        "ARRAY['a''b', 'c\\d']::text[]", "ARRAY['1.5', 'inf']::double precision[]", "NULL",
        "7::bigint", "'2.25'"]
    assert arguments(ROW_SQL, [["x\x00"], [], None, 1, 0.0]) is None  # sent on its own
    assert arguments(ROW_SQL, [[]]) is None


async def test_what_is_prepared_executed_and_sent_as_text_writes_the_values(
        pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real server: a statement's PREPARE and EXECUTE, its EXECUTE by name, and past the
    connection's `LIMIT` its text (inline.py) each write the values given."""
    monkeypatch.setattr(prepared, "LIMIT", 1)
    conn = await asyncpg.connect(pg_cluster.fresh_url())
    try:
        await conn.execute("CREATE TABLE vals (n SERIAL, a TEXT[], b DOUBLE PRECISION[], "
                           "c TEXT, d BIGINT, e DOUBLE PRECISION)")
        on_one = Prepared()
        texts = []
        for row in (ROWS[0], ROWS[1], ROWS[0]):
            with on_one.sending():
                texts.append(on_one.statements([(ROW_SQL, row)])[0])  # type: ignore[index]
                await conn.execute(texts[-1])
        past = on_one.statement(ROW_SQL.replace("vals (", "vals AS v ("), ROWS[1])
        await conn.execute(past or "")
        assert [t.split(" ", 1)[0] for t in texts] == ["PREPARE", "EXECUTE", "EXECUTE"]
        assert past == ("INSERT INTO vals AS v (a, b, c, d, e) VALUES (ARRAY[]::text[], "
                        "ARRAY[]::double precision[], 'x', -1::bigint, '-inf')")
        found = await conn.fetch("SELECT a, b, c, d, e FROM vals ORDER BY n")
        assert [list(r.values()) for r in found] == [ROWS[0], ROWS[1], ROWS[0], ROWS[1]]
    finally:
        await conn.close()


def test_values_of_every_type_are_written_as_before_the_fast_path() -> None:
    """`literal` looks at a value's exact type first (str, int: most of a commit's values):
    a subclass (a bool is an int, a status a str) and the other types are written as ever."""
    class Status(enum.StrEnum):
        QUEUED = "QUE'UED"

    assert literal(True) == "TRUE" and literal(False) == "FALSE"
    assert literal(Status.QUEUED) == "'QUE''UED'" and literal(-3) == "-3"
    assert literal(0.25) == "'0.25'" and literal(math.inf) == "'inf'"
    assert literal("a\x00") is None and literal(b"x") is None
    assert literal(["a", 1, None]) == "ARRAY['a', 1, NULL]"
    sql = "UPDATE t SET a = ?, b = ?::text[] WHERE c = ?"
    assert arguments(sql, [Status.QUEUED, ["x"], True]) == \
        ["'QUE''UED'", "ARRAY['x']::text[]", "TRUE"]
    assert arguments(sql, [1, 2]) is None  # two values for three marks


def test_a_connection_prepares_so_many_statements_at_most(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Beyond `LIMIT` statements prepared on a connection, the next are sent as text; a round
    trip that failed leaves its names unused (prepared again under new ones), and they count
    (the server may hold them)."""
    monkeypatch.setattr(prepared, "LIMIT", 3)
    on_one = Prepared()
    first = on_one.statement("INSERT INTO t (a) VALUES (?)", [1])
    assert first is not None and first.startswith("PREPARE trigger_local_")
    with pytest.raises(RuntimeError), on_one.sending():
        raise RuntimeError("the round trip failed")
    again = on_one.statement("INSERT INTO t (a) VALUES (?)", [2])
    assert again is not None and again.startswith("PREPARE ") and again != first
    with on_one.sending():
        pass
    assert on_one.statement("INSERT INTO t (a) VALUES (?)", [3]) == \
        f"EXECUTE {on_one.names['INSERT INTO t (a) VALUES (?)']}(3)"
    assert (on_one.statement("INSERT INTO u (b) VALUES (?)", [4]) or "").startswith("PREPARE")
    with on_one.sending():
        pass
    assert on_one.statement("INSERT INTO v (c) VALUES (?::bigint)", [5]) == \
        "INSERT INTO v (c) VALUES (5::bigint)"
