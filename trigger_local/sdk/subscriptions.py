"""`runs.subscribe_to_run / subscribe_to_runs_with_tag / subscribe_to_batch`: the part of
`runs` that follows runs as they change (sdk/realtime.py does the HTTP)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from .realtime import Subscription, blocking

Json = dict[str, Any]


def _seg(value: str) -> str:
    return quote(value, safe="")


class Subscribe:
    """`runs.subscribe_to_*`: each change of runs as the dict `runs.retrieve` answers, once and
    in order (docs/realtime.md). Async iterators; the `_sync` twins are plain iterators.
    `offset`: a previous subscription's `.offset`, to resume after what it yielded."""

    def subscribe_to_run(self, run_id: str, *, stop_on_completion: bool = True,
                         offset: str | None = None) -> Subscription:
        """The run now, then each change; ends once the run has finished (unless
        `stop_on_completion=False`)."""
        return Subscription(f"/realtime/v1/runs/{_seg(run_id)}",
                            stop_on_completion=stop_on_completion, offset=offset)

    def subscribe_to_runs_with_tag(self, tag: str | Sequence[str], *,
                                   created_at: str | None = None,
                                   offset: str | None = None) -> Subscription:
        """Runs carrying every one of the tags, created within `created_at` (default 24h):
        never ends by itself."""
        tags = [tag] if isinstance(tag, str) else list(tag)
        params = {"tags": ",".join(tags)} | ({"createdAt": created_at} if created_at else {})
        return Subscription("/realtime/v1/runs", params, offset=offset)

    def subscribe_to_batch(self, batch_id: str, *, offset: str | None = None) -> Subscription:
        """A batch's runs: never ends by itself."""
        return Subscription(f"/realtime/v1/batches/{_seg(batch_id)}", offset=offset)

    def subscribe_to_run_sync(self, run_id: str, *, stop_on_completion: bool = True,
                              offset: str | None = None) -> Iterator[Json]:
        return blocking(aiter(self.subscribe_to_run(run_id, stop_on_completion=stop_on_completion,
                                                    offset=offset)))

    def subscribe_to_runs_with_tag_sync(self, tag: str | Sequence[str], *,
                                        created_at: str | None = None) -> Iterator[Json]:
        return blocking(aiter(self.subscribe_to_runs_with_tag(tag, created_at=created_at)))

    def subscribe_to_batch_sync(self, batch_id: str) -> Iterator[Json]:
        return blocking(aiter(self.subscribe_to_batch(batch_id)))
