"""The store contract for realtime streams (store/stream_areas.py): what any implementation of
the storage interface must do with them. `store` is parametrised by backend, as in
tests/test_store_contract.py; a second backend must pass these unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.store_support import BACKENDS, T0, open_store
from trigger_local.store import Store


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(request.param, tmp_path, request)
    yield s
    await s.close()


async def test_a_missing_stream_is_empty(store: Store) -> None:
    read = store.read()
    assert await read.streams.keys("run_x") == []
    assert await read.streams.chunks("run_x", "default") == []
    assert await read.streams.length("run_x", "default") == 0
    assert await read.streams.last_client_index("run_x", "default", "c1") == -1


async def test_create_is_idempotent_and_keys_keep_creation_order(store: Store) -> None:
    async with store.tx() as tx:
        assert await tx.streams.create("run_1", "zeta", T0) is True
        assert await tx.streams.create("run_1", "alpha", T0) is True
        assert await tx.streams.create("run_1", "zeta", T0 + 1) is False
        await tx.streams.append("run_1", "beta", ['"x"'], T0)
        await tx.streams.create("run_2", "other", T0)
    assert await store.read().streams.keys("run_1") == ["zeta", "alpha", "beta"]
    assert await store.read().streams.length("run_1", "alpha") == 0


async def test_chunks_are_numbered_in_order_across_appends(store: Store) -> None:
    async with store.tx() as tx:
        assert await tx.streams.append("run_1", "k", ['"a"', '{"b":1}'], T0) == 2
    async with store.tx() as tx:
        assert await tx.streams.append("run_1", "k", ["3"], T0 + 1) == 3
    chunks = await store.read().streams.chunks("run_1", "k")
    assert [(c.index, json.loads(c.data), c.at) for c in chunks] == [
        (0, "a", T0), (1, {"b": 1}, T0), (2, 3, T0 + 1)]
    later = await store.read().streams.chunks("run_1", "k", after=0, limit=1)
    assert [c.index for c in later] == [1]
    assert await store.read().streams.chunks("run_1", "k", after=2) == []
    assert await store.read().streams.length("run_1", "k") == 3


async def test_streams_of_runs_and_keys_are_separate(store: Store) -> None:
    async with store.tx() as tx:
        await tx.streams.append("run_1", "a", ['"1a"'], T0)
        await tx.streams.append("run_1", "b", ['"1b"'], T0)
        await tx.streams.append("run_2", "a", ['"2a"'], T0)
    read = store.read()
    assert [c.data for c in await read.streams.chunks("run_1", "a")] == ['"1a"']
    assert [c.data for c in await read.streams.chunks("run_2", "a")] == ['"2a"']
    assert [c.index for c in await read.streams.chunks("run_1", "b")] == [0]


async def test_a_writer_learns_its_last_stored_chunk(store: Store) -> None:
    async with store.tx() as tx:
        await tx.streams.append("run_1", "k", ['"a"', '"b"'], T0, client_id="c1")
        await tx.streams.append("run_1", "k", ['"x"'], T0, client_id="c2")
        await tx.streams.append("run_1", "k", ['"c"'], T0, client_id="c1", first_client_index=2)
    read = store.read()
    assert await read.streams.last_client_index("run_1", "k", "c1") == 2
    assert await read.streams.last_client_index("run_1", "k", "c2") == 0
    assert await read.streams.last_client_index("run_1", "k", "c3") == -1


async def test_a_rolled_back_append_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.tx() as tx:
            await tx.streams.append("run_1", "k", ['"a"'], T0)
            raise RuntimeError("boom")
    assert await store.read().streams.keys("run_1") == []


async def test_retention_deletes_streams_last_written_before_a_time(store: Store) -> None:
    async with store.tx() as tx:
        await tx.streams.append("run_old", "k", ['"a"'], T0)
        await tx.streams.create("run_old", "empty", T0)
        await tx.streams.append("run_new", "k", ['"b"'], T0 + 100)
    async with store.tx() as tx:
        assert await tx.streams.delete_older_than(T0 + 50) == 2
    read = store.read()
    assert await read.streams.keys("run_old") == []
    assert await read.streams.chunks("run_old", "k") == []
    assert [c.data for c in await read.streams.chunks("run_new", "k")] == ['"b"']


async def test_streams_survive_reopening(tmp_path: Path) -> None:
    first = await open_store("sqlite", tmp_path)
    async with first.tx() as tx:
        await tx.streams.append("run_1", "k", ['"a"', '"b"'], T0)
    await first.close()
    again = await open_store("sqlite", tmp_path)
    try:
        assert [c.data for c in await again.read().streams.chunks("run_1", "k")] == ['"a"', '"b"']
    finally:
        await again.close()
