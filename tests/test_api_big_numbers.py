"""A number too big for a float spelled with a short exponent (1 and 290 zeros, e99: 1e389,
which Python reads as inf) is refused at the API like 1e400, wherever it is: in a payload
packet (a JSON string the trigger carries) and in the trigger's metadata. It was stored and
shown as null, and handed to the task as inf."""

from __future__ import annotations

import httpx
import pytest

from trigger_local.store.models import Version

BIG = "1" + "0" * 290 + "e99"


@pytest.mark.parametrize(("body", "field"), [
    ('{"payload":"{\\"n\\":' + BIG + '}","options":{"payloadType":"application/json"}}',
     "payload.n"),
    ('{"payload":{},"options":{"metadata":{"n":-' + BIG + '}}}', "options.metadata.n")])
async def test_a_big_number_with_a_two_digit_exponent_is_refused(
        api: httpx.AsyncClient, indexed: Version, body: str, field: str) -> None:
    refused = await api.post("/api/v1/tasks/hello/trigger", content=body.encode(),
                             headers={"content-type": "application/json"})
    assert refused.status_code == 400, refused.text
    assert f"{field} is a number too big to be finite" in refused.json()["error"]
    listed = await api.get("/api/v1/runs")
    assert listed.status_code == 200 and listed.json()["data"] == []
