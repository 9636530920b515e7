"""A part on the savepoint-free path (the transaction's first) holding an inner
part that ended well, rolled back: the inner part's RELEASE stays pending for a savepoint
the ROLLBACK ended
(review rv8b)."""

from __future__ import annotations

import pytest
from pg_cluster import Cluster
from store_support import make_run

from trigger_local.store.models import QUEUED
from trigger_local.store.postgres import PostgresStore


async def test_a_first_part_rolled_back_after_an_inner_part_ended_well(
        pg_cluster: Cluster) -> None:
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        async with store.tx() as tx:
            with pytest.raises(RuntimeError):
                async with tx.savepoint():  # first part: the transaction's start is its savepoint
                    await tx.runs.get("run_x")  # a statement sent
                    async with tx.savepoint():  # inner part, ends well: RELEASE pending
                        await tx.runs.get("run_y")
                    raise RuntimeError("the first part fails")  # ROLLBACK (whole transaction)
            async with tx.savepoint():  # the next part: a write kept, then a read that sends it
                await tx.runs.insert(make_run("run_a"))
                await tx.runs.get("run_a")
        assert await store.read().runs.count_by_status() == {QUEUED: 1}
    finally:
        await store.close()
