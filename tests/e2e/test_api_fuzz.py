"""A bounded API fuzzer: hypothesis builds requests for every operation in the daemon's own
/openapi.json (random path segments, the declared query parameters, bodies from any JSON to
raw garbage) and sends them to a real daemon. No answer may be a 5xx, and the daemon must
keep serving afterwards."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import DaemonProcess

#: long polls, event streams and project indexing (a random projectDir could be "/") are
#: not request/response routes worth fuzzing here
SKIP = ("/api/v1/local/versions", "/events", "/stream")
EXAMPLES = 400

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
segment = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
                    st.sampled_from(["run_x", "waitpoint_x", "batch_x", "queue_x", "hello", "0", "-1", "%2F"]))


def operations(spec: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    ops = []
    for path, methods in spec["paths"].items():
        if any(s in path for s in SKIP):
            continue
        for method, op in methods.items():
            props = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {})
            ops.append((method.upper(), path, op.get("parameters") or [], props.get("schema") or {}))
    return ops


@st.composite
def requests(draw: st.DrawFn, ops: list[Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    method, path, params, schema = draw(st.sampled_from(ops))
    query: dict[str, str] = {}
    for p in params:
        if p.get("in") == "path":
            path = path.replace("{" + p["name"] + "}", quote(draw(segment), safe=""))
        elif p.get("in") == "query" and draw(st.booleans()):
            query[p["name"]] = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
                                        | st.integers(-5, 500).map(str))
    path = path.replace("{name}", "x").replace("{name:path}", "x")
    fields = (schema.get("properties") or {}).keys()
    body = draw(st.one_of(
        st.none(),
        st.fixed_dictionaries({}, optional={f: json_values for f in fields}).map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64)))
    return method, path, query, body


def test_fuzz_no_5xx_and_still_serving(daemon: DaemonProcess) -> None:
    spec = daemon.api("GET", "/openapi.json").json()
    ops = operations(spec)
    assert len(ops) > 30, "the OpenAPI document lists the routes"
    client = httpx.Client(base_url=daemon.url, timeout=15)
    headers = {"Authorization": f"Bearer {daemon.key}", "Content-Type": "application/json"}
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(ops))
    def probe(req: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, query, body = req
        r = client.request(method, path, params=query, content=body, headers=headers)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, f"{method} {path} {query} {body!r} -> {r.status_code} {r.text[:300]}"

    try:
        probe()
    finally:
        client.close()
    print(f"fuzzed {sum(seen.values())} requests over {len(ops)} operations: statuses {sorted(seen.items())}")
    assert daemon.api("GET", "/api/v1/queues").status_code == 200
    assert daemon.api("POST", "/api/v1/waitpoints/tokens", json={}).status_code == 200
    assert daemon.proc is not None and daemon.proc.poll() is None
