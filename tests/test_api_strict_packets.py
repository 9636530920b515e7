"""What the strict parser refuses is refused at the trigger route wherever it is: in a payload
packet (a JSON string the trigger carries, stored as sent) and in the trigger's metadata.

A number too big for a float spelled with a short exponent (1 and 290 zeros, e99: 1e389, which
Python reads as inf) was stored, shown as null and handed to the task as inf; a NaN hidden by
a later value of its key was stored in the packet's text, which realtime rows carry as sent
(a JavaScript client's JSON.parse fails on it)."""

from __future__ import annotations

import httpx
import pytest

from trigger_local.store.models import Version

BIG = "1" + "0" * 290 + "e99"


PACKET = '{"payload":"%s","options":{"payloadType":"application/json"}}'


@pytest.mark.parametrize(("body", "said"), [
    (PACKET % ('{\\"n\\":' + BIG + '}'), "payload.n is a number too big to be finite"),
    ('{"payload":{},"options":{"metadata":{"n":-' + BIG + '}}}',
     "options.metadata.n is a number too big to be finite"),
    (PACKET % '{\\"n\\":NaN,\\"n\\":1}', "payload.n is NaN")])
async def test_what_is_not_json_is_refused_in_packets_and_metadata(
        api: httpx.AsyncClient, indexed: Version, body: str, said: str) -> None:
    refused = await api.post("/api/v1/tasks/hello/trigger", content=body.encode(),
                             headers={"content-type": "application/json"})
    assert refused.status_code == 400, refused.text
    assert said in refused.json()["error"]
    listed = await api.get("/api/v1/runs")
    assert listed.status_code == 200 and listed.json()["data"] == []
