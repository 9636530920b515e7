"""A bounded API fuzzer: hypothesis builds requests for every operation in the daemon's own
/openapi.json (random path segments, the declared query parameters, bodies from any JSON to
raw garbage, values past every limit, NaN / Infinity and lone UTF-16 surrogates in any field,
JSON nested far too deep, huge durations in query parameters) and sends them to a real daemon.
No answer may be a 5xx, and the daemon must keep serving afterwards. Every route of the FastAPI
app is fuzzed, also one left out of the OpenAPI document: a new route is fuzzed without being
listed here.

Before it, the hostile inputs known to have caused 500s are sent explicitly, each to every
route that takes that kind of value: each must be a 4xx naming the field, and store nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_local.api.app import create_app
from trigger_local.limits import MAX_JSON_DEPTH

from .conftest import DaemonProcess, write_project

#: long polls, event streams and project indexing (a random projectDir could be "/") are
#: not request/response routes worth fuzzing here
SKIP = ("/api/v1/local/versions", "/events", "/stream")
EXAMPLES = 400

#: values past a limit somewhere: huge integers and floats, durations of millions of years
EXTREMES = [2**64, -2**64, 2**63, 10**400, 1e308, -1e308, "999999999w", "1e308", "99999999999d",
            "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "\u0000", "x" * 300,
            # not JSON, not text: json.dumps writes them as NaN, Infinity and "\ud800"
            float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfff", {"\udc00": 1}]
#: query values past a limit: durations, dates and counts
QUERY_EXTREMES = ["999999999w", "1e308", "-1e308", "nan", "inf", "99999999999d", str(2**64),
                  "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "-1", "\u0000"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(EXTREMES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


class Deep(bytes):
    """A body nested far too deep, shown short in hypothesis's and pytest's reports."""

    def __repr__(self) -> str:
        return f"<{len(self):,} bytes: {bytes(self[:12])!r}…>"


DEEP = Deep(("[" * 100_000 + "]" * 100_000).encode())
DEEP_OBJECT = Deep(('{"a":' * 100_000 + "1" + "}" * 100_000).encode())
segment = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
                    st.sampled_from(["run_x", "waitpoint_x", "batch_x", "queue_x", "hello", "0",
                                     "-1", "%2F"]))


_PATH_PARAM = re.compile(r"\{(\w+)(:path)?\}")
FILTERS = ["filter[createdAt][period]", "filter[createdAt][from]", "filter[createdAt][to]",
           "filter[period]", "period", "from", "to", "page[size]", "limit", "timeout", "wait"]

#: trigger options (inside `options`) that take durations, dates and numbers
OPTION_FIELDS = ["delay", "ttl", "idempotencyKey", "idempotencyKeyTTL", "maxAttempts",
                 "maxDuration", "priority",
                 "machine", "tags", "debounce", "metadata", "concurrencyKey", "queue"]


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the API, read from the FastAPI app itself."""
    app = create_app(SimpleNamespace(secret_key="x"))  # type: ignore[arg-type]

    def walk(routes: list[Any]) -> Any:
        for route in routes:
            inner = getattr(route, "original_router", None)  # an included router (FastAPI 0.16x)
            yield from walk(inner.routes) if inner is not None else (route,)

    return {(method, route.path) for route in walk(list(app.routes))
            for method in getattr(route, "methods", None) or () if method != "HEAD"}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """Every route of the app (SKIP aside), with its query parameters and body schema where the
    OpenAPI document has them."""
    documented = {(method.upper(), path): op for path, methods in spec["paths"].items()
                  for method, op in methods.items()}
    ops = []
    for method, path in sorted(app_routes()):
        if any(s in path for s in SKIP):
            continue
        op = documented.get((method, path)) or {}
        props = (((op.get("requestBody") or {}).get("content") or {}).get("application/json")
                 or {})
        ops.append((method, path, op.get("parameters") or [], props.get("schema") or {}))
    return ops


@st.composite
def requests(draw: st.DrawFn, ops: list[Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    method, path, params, schema = draw(st.sampled_from(ops))
    query: dict[str, str] = {}
    for p in params:
        if p.get("in") == "query" and draw(st.booleans()):
            query[p["name"]] = draw(st.text(st.characters(blacklist_categories=("Cs",)),
                                            max_size=20)
                                    | st.integers(-5, 500).map(str)
                                    | st.sampled_from(QUERY_EXTREMES))
    if draw(st.booleans()):  # filters every listing reads, documented or not
        query[draw(st.sampled_from(FILTERS))] = draw(st.sampled_from(QUERY_EXTREMES))
    path = _PATH_PARAM.sub(lambda m: "x" if m.group(2) else quote(draw(segment), safe=""), path)
    fields = (schema.get("properties") or {}).keys()
    options = st.fixed_dictionaries({}, optional={f: json_values for f in OPTION_FIELDS})
    body = draw(st.one_of(
        st.none(),
        st.fixed_dictionaries({}, optional={f: json_values for f in fields})
        .map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({"options": options}).map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([DEEP, DEEP_OBJECT]),
        st.binary(max_size=64)))
    return method, path, query, body


def test_fuzz_no_5xx_and_still_serving(daemon: DaemonProcess) -> None:
    spec = daemon.api("GET", "/openapi.json").json()
    ops = operations(spec)
    assert len(ops) > 30, "the app has its routes"
    assert ("GET", "/docs") in {(m, p) for m, p, _, _ in ops}, "undocumented routes are fuzzed"
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
        assert r.status_code < 500, (f"{method} {path} {query} {body!r} -> {r.status_code} "
                                     f"{r.text[:300]}")

    try:
        probe()
    finally:
        client.close()
    print(f"fuzzed {sum(seen.values())} requests over {len(ops)} operations: statuses "
          f"{sorted(seen.items())}")
    assert daemon.api("GET", "/api/v1/queues").status_code == 200
    assert daemon.api("POST", "/api/v1/waitpoints/tokens", json={}).status_code == 200
    assert daemon.proc is not None and daemon.proc.poll() is None


# -- the hostile inputs, explicitly ------------------------------------------------------------

def _norm(text: str) -> str:
    return text.replace("_", "").replace(".", "").lower()


def _refused(r: httpx.Response, field: str) -> None:
    assert 400 <= r.status_code < 500, (f"{r.request.method} {r.request.url} -> {r.status_code} "
                                        f"{r.text[:300]}")
    message = r.json()["error"]
    assert _norm(field) in _norm(message), f"{field!r} not named in {message!r}"


def _counts(d: DaemonProcess) -> tuple[int, int, int]:
    runs = d.api("GET", "/api/v1/runs", params={"page[size]": 100}).json()["data"]
    tokens = d.api("GET", "/api/v1/waitpoints/tokens", params={"page[size]": 100}).json()["data"]
    schedules = d.api("GET", "/api/v1/schedules").json()["data"]
    return len(runs), len(tokens), len(schedules)


@pytest.fixture
def live(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.register(write_project(tmp_path / "project"))
    return daemon


#: one daemon per test, all values in it: starting daemons is what costs here
DURATIONS = ["999999999w", 1e308, 2**64, "0001-01-01T00:00:00Z"]
INTEGERS = [2**64, 1e308, -1e308, 2**63]
DEEP_BODIES = [DEEP, DEEP_OBJECT,
               ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()]


def test_out_of_range_durations_and_dates_are_refused_everywhere(live: DaemonProcess) -> None:
    d = live
    run_id = d.trigger("sleeper", {"seconds": 60})
    d.wait_status(run_id, "EXECUTING")
    delayed = d.trigger("hello", {}, delay="1h")
    batch = d.api("POST", "/api/v3/batches", json={"runCount": 1}).json()["id"]
    before = _counts(d)
    for value in DURATIONS:
        _refuse_duration_everywhere(d, value, run_id, delayed, batch)
    assert d.run(run_id)["status"] == "EXECUTING"  # the refused waits changed nothing
    assert _counts(d) == before
    assert d.api("POST", f"/api/v2/runs/{run_id}/cancel").status_code == 200


def _refuse_duration_everywhere(d: DaemonProcess, value: Any, run_id: str, delayed: str,
                                batch: str) -> None:
    for option in ("delay", "ttl", "idempotencyKeyTTL", "maxDuration"):
        if option == "maxDuration" and isinstance(value, str):
            continue
        key = {"idempotencyKey": "k"} if option == "idempotencyKeyTTL" else {}
        options = {option: value, **key}
        _refused(d.api("POST", "/api/v1/tasks/hello/trigger", json={"options": options}), option)
        _refused(d.api("POST", "/api/v1/tasks/batch",
                       json={"items": [{"task": "hello", "options": options}]}),
                 option)
        _refused(d.api("POST", f"/api/v1/runs/{run_id}/replay", json=options), option)
        _refused(d.api("POST", f"/engine/v1/runs/{run_id}/trigger",
                       json={"task": "hello", "options": options}),
                 option)
    _refused(d.api("POST", "/api/v1/tasks/hello/trigger",
                   json={"options": {"debounce": {"key": "k", "delay": value}}}), "debounce.delay")
    item = json.dumps({"index": 0, "task": "hello", "options": {"delay": value}})
    _refused(d.api("POST", f"/api/v3/batches/{batch}/items", content=item,
                   headers={"content-type": "application/x-ndjson"}), "delay")
    _refused(d.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": value}), "timeout")
    if isinstance(value, str):
        _refused(d.api("POST", "/api/v1/waitpoints/tokens", json={"idempotencyKey": "k",
                                                                  "idempotencyKeyTTL": value}),
                 "idempotencyKeyTTL")
    _refused(d.api("POST", f"/engine/v1/runs/{run_id}/tokens", json={"timeout": value}), "timeout")
    _refused(d.api("POST", f"/api/v1/runs/{delayed}/reschedule", json={"delay": value}), "delay")
    _refused(d.api("POST", f"/engine/v1/runs/{run_id}/attempts/1/wait",
                   json={"kind": "duration", "until": value}),
             "until")


def test_out_of_range_integers_are_refused(live: DaemonProcess) -> None:
    d = live
    before = _counts(d)
    for value in INTEGERS:
        _refused(d.api("POST", "/api/v1/tasks/hello/trigger",
                       json={"options": {"maxAttempts": value}}), "maxAttempts")
        _refused(d.api("POST", "/api/v1/tasks/hello/trigger",
                       json={"options": {"priority": value}}), "priority")
        _refused(d.api("POST", "/api/v1/tasks/batch",
                       json={"items": [{"task": "hello", "options": {"maxAttempts": value}}]}),
                 "maxAttempts")
        _refused(d.api("POST", "/api/v1/queues/hello/concurrency/override",
                       json={"concurrencyLimit": value}),
                 "concurrencyLimit")
        _refused(d.api("POST", "/api/v3/batches", json={"runCount": value}), "runCount")
    assert _counts(d) == before
    queue = d.api("GET", "/api/v1/queues/hello", params={"type": "task"}).json()
    assert queue["concurrencyLimit"] is None, queue


def test_json_nested_too_deep_is_a_400_on_every_route(live: DaemonProcess) -> None:
    d = live
    created = d.api("POST", "/api/v1/waitpoints/tokens", json={}).json()
    token, callback = created["id"], httpx.URL(created["url"]).path
    run_id = d.trigger("hello", {})
    batch = d.api("POST", "/api/v3/batches", json={"runCount": 1}).json()["id"]
    before = _counts(d)
    routes = [("POST", "/api/v1/tasks/hello/trigger"), ("POST", "/api/v1/tasks/batch"),
              ("POST", "/api/v3/batches"),
              ("POST", "/api/v1/schedules"), ("PUT", "/api/v1/schedules/sched_x"),
              ("POST", "/api/v1/waitpoints/tokens"),
              ("POST", f"/api/v1/waitpoints/tokens/{token}/complete"), ("POST", callback),
              ("POST", f"/api/v1/runs/{run_id}/replay"), ("PUT", f"/api/v1/runs/{run_id}/metadata"),
              ("POST", "/api/v1/projects/proj_test/envvars/dev/import"),
              ("POST", "/api/v1/local/versions")]
    for body in DEEP_BODIES:
        for method, path in routes:
            r = d.api(method, path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "deeper" in r.json()["error"], \
                f"{method} {path} -> {r.status_code} {r.text[:200]}"
        r = d.api("POST", f"/api/v3/batches/{batch}/items", content=body,
                  headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 400 and "deeper" in r.json()["error"], r.text[:200]
        r = d.api("POST", "/api/v1/tasks/hello/trigger",  # a payload packet nested too deep, too
                  json={"payload": body.decode(), "options": {"payloadType": "application/json"}})
        assert r.status_code == 400 and "payload" in r.json()["error"].lower(), r.text[:200]
    assert _counts(d) == before
    assert d.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["status"] == "WAITING"


def test_bad_packet_names_are_a_400_and_store_nothing(live: DaemonProcess) -> None:
    d = live
    ok = d.api("PUT", "/api/v2/packets/run_1%2Fpayload.json").json()
    assert httpx.put(ok["presignedUrl"], content=b'{"a": 1}').status_code == 200
    for name in ("a%00b.json", "x" * 300, "run_1%2F" + "y" * 250):
        r = d.api("PUT", f"/api/v2/packets/{name}")
        assert r.status_code == 400 and "packet name" in r.json()["error"], (name, r.text)
    under = d.api("PUT", "/api/v2/packets/run_1%2Fpayload.json%2Fmore.json").json()
    r = httpx.put(under["presignedUrl"], content=b"{}")
    assert r.status_code == 400 and "already a packet" in r.json()["error"], r.text
    over = d.api("PUT", "/api/v2/packets/run_1").json()  # where a directory of packets is
    r = httpx.put(over["presignedUrl"], content=b"{}")
    assert r.status_code == 400 and "directory" in r.json()["error"], r.text
    stored = sorted(str(p.relative_to(d.home / "packets")) for p in (d.home / "packets").rglob("*"))
    assert stored == ["run_1", "run_1/payload.json", "run_1/payload.json.meta"]
    assert httpx.get(ok["presignedUrl"]).json() == {"a": 1}


def test_metadata_operations_that_cannot_apply_are_refused(live: DaemonProcess) -> None:
    d = live
    run_id = d.trigger("sleeper", {"seconds": 60})
    d.wait_status(run_id, "EXECUTING")
    for op, field in (({"type": "increment", "key": "n", "value": "x"}, "value"),
                      ({"type": "set", "key": ["a"], "value": 1}, "key"),
                      ({"type": "nope"}, "type")):
        for path in (f"/api/v1/runs/{run_id}/metadata", f"/engine/v1/runs/{run_id}/metadata"):
            _refused(d.api("PUT", path, json={"operations": [op]}), field)
    assert d.api("GET", f"/api/v1/runs/{run_id}/metadata").json()["metadata"] == {}
    r = d.api("POST", "/api/v1/projects/proj_test/envvars/dev",
              json={"name": "BAD", "value": "a\u0000b"})
    assert r.status_code == 400 and "BAD" in r.json()["error"]
    assert d.api("GET", "/api/v1/projects/proj_test/envvars/dev").json() == []
    d.api("POST", f"/api/v2/runs/{run_id}/cancel")


def test_a_run_stored_with_an_out_of_range_time_does_not_break_listings(
        live: DaemonProcess) -> None:
    """Rows written before the limits existed (or edited by hand) still list and show."""
    d = live
    run_id = d.trigger("hello", {}, delay="1h")
    d.stop()
    with sqlite3.connect(d.home / "trigger-local.db") as db:
        db.execute("UPDATE runs SET delay_until = 1e308, expires_at = 9e300, created_at = "
                   "created_at WHERE id = ?",
                   (run_id,))
        db.execute("INSERT INTO logs (run_id, attempt, at, level, message) VALUES (?, 1, 1e308, "
                   "'info', 'far')",
                   (run_id,))
    d.start()
    listed = d.api("GET", "/api/v1/runs")
    assert (listed.status_code == 200
            and listed.json()["data"][0]["delayedUntil"].startswith("9999-"))
    shown = d.api("GET", f"/api/v3/runs/{run_id}")
    assert shown.status_code == 200, shown.text
    assert d.api("GET", f"/api/v1/runs/{run_id}/trace").status_code == 200
    assert d.api("GET", f"/api/v1/runs/{run_id}/logs").status_code == 200
    import subprocess
    import sys
    env = {"TRIGGER_LOCAL_HOME": str(d.home), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    for args in (["runs", "ls"], ["runs", "show", run_id], ["runs", "logs", run_id]):
        r = subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr[-2000:])
    # the timer survived
    assert d.wait_status(d.trigger("hello", {"name": "still"}))["status"] == "COMPLETED"


def test_lone_surrogates_nan_and_huge_periods_that_caused_500s_are_4xx(
        live: DaemonProcess) -> None:
    """The outside review's cases (#10): each was a 500 or a reset connection."""
    d = live
    before = _counts(d)
    cases = [("POST", "/api/v1/waitpoints/tokens", '{"idempotencyKey": "\\ud800"}',
              "idempotencyKey"),
             ("POST", "/api/v1/schedules", '{"task": "hello", "cron": "\\ud800"}', "cron"),
             ("POST", "/api/v1/schedules",
              '{"task": "hello", "cron": "* * * * *", "externalId": "\\ud800"}', "externalId"),
             ("POST", "/api/v1/projects/proj_test/envvars/dev",
              '{"name": "B", "value": "\\ud800"}', "value"),
             ("POST", "/api/v1/tasks/hello/trigger", '{"payload": NaN}', "payload")]
    for method, path, raw, field in cases:
        _refused(d.api(method, path, content=raw, headers={"content-type": "application/json"}),
                 field)
    assert _counts(d) == before
    assert d.api("GET", "/api/v1/projects/proj_test/envvars/dev").json() == []
    for name in ("filter[period]", "filter[createdAt][period]"):
        for value in ("999999999w", "1e308", "nan"):
            r = d.api("GET", "/api/v1/runs", params={name: value})
            assert r.status_code < 500, (name, value, r.text)
            r = d.api("GET", "/api/v1/waitpoints/tokens", params={name: value})
            assert r.status_code < 500, (name, value, r.text)
    r = d.api("GET", "/api/v1/runs", params={"filter[createdAt][period]": "999999999w"})
    assert r.status_code == 400 and "period" in r.json()["error"], r.text
