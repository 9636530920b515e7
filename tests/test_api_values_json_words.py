"""A wrong value in a request body is named in JSON's words (`true`, `"slow"`, `null`), not
Python's (`True`, `'slow'`, `None`), by the checks 552556e's `shown` did not reach: the
trigger's debounce.mode, a batch's runCount, a queue's concurrency override (the worker's
`again` and a schedule's missedPolicy: tests/test_channel_repeats.py, test_api_schedules.py)."""

from __future__ import annotations

import httpx

from trigger_local.store.models import Version


async def test_debounce_mode_run_count_and_concurrency_limit_are_named_in_jsons_words(
        api: httpx.AsyncClient, indexed: Version) -> None:
    said: dict[str, str] = {}
    for mode, word in ((True, "true"), ("slow", '"slow"')):
        r = await api.post("/api/v1/tasks/hello/trigger", json={"payload": {}, "options": {
            "debounce": {"key": "k", "delay": "5s", "mode": mode}}})
        assert r.status_code in (400, 422), r.text
        said[word] = r.json()["error"]
        assert said[word] == f"Invalid debounce.mode {word}: use leading or trailing", said
    for count, word in ((True, "true"), ("2", '"2"'), (None, "null")):
        r = await api.post("/api/v3/batches", json={"runCount": count})
        assert r.status_code == 400, r.text
        assert r.json()["error"].endswith(f", not {word}"), r.text
    for limit, word in ((True, "true"), ("2", '"2"'), (None, "null"), ([2], "an array")):
        r = await api.post("/api/v1/queues/hello/concurrency/override",
                           json={"type": "task", "concurrencyLimit": limit})
        assert r.status_code == 400, r.text
        assert r.json()["error"].endswith(f", not {word}"), r.text
    assert (await api.get("/api/v1/runs")).json()["data"] == []
