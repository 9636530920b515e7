"""Two daemons on one PostgreSQL database finishing one token at once (docs/waits.md: of many
concurrent calls exactly one answers `changed`): each call is a serializable transaction whose
compare-and-set either wins or is refused and run again, then seeing the token done."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine_support import T0, two_daemons
from pg_cluster import Cluster

from trigger_local.clock import FakeClock
from trigger_local.store.models import TaskDef


async def test_two_daemons_completing_and_timing_out_one_token_change_it_once(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (a, b):
        for _ in range(3):
            token, _ = await a.create_token(timeout="10m")
            calls = [(a, b)[i % 2].complete_token(token.id, f'"{i}"') if i % 3 else
                     (a, b)[i % 2].timeout_token(token.id) for i in range(12)]
            answers = await asyncio.gather(*calls)
            winners = [i for i, (_, changed) in enumerate(answers) if changed]
            assert len(winners) == 1, answers
            stored = await a.queries.waitpoints.get(token.id)
            assert stored is not None
            assert stored.status == ("TIMED_OUT" if winners[0] % 3 == 0 else "COMPLETED")
            assert all(wp.status == stored.status for wp, _ in answers), answers
            if stored.status == "COMPLETED":
                assert stored.output == f'"{winners[0]}"'
