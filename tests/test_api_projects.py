"""Which project a request means (issue #11): a project key confines every route to its
project; with the daemon's key the `x-trigger-local-project` header names one, and with neither
a task id resolves to the one project that has it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, InProcessServices
from trigger_local.api.app import create_app
from trigger_local.tokens import project_key

A, B = "proj_a", "proj_b"
HEADER = "x-trigger-local-project"


@pytest.fixture
async def two(services: InProcessServices) -> InProcessServices:
    await services.index_project("/a", ["trigger"], None, {}, project=A)
    await services.index_project("/b", ["trigger"], None, {}, project=B)
    return services


@pytest.fixture
async def as_b(services: InProcessServices) -> AsyncIterator[httpx.AsyncClient]:
    """A client with project B's key."""
    headers = {"Authorization": f"Bearer {project_key(SECRET, B)}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)),
                                 base_url="http://d.test", headers=headers) as client:
        yield client


async def trigger(client: httpx.AsyncClient, task: str = "hello", **headers: str) -> httpx.Response:
    return await client.post(f"/api/v1/tasks/{task}/trigger", json={"payload": "{}"},
                             headers=headers)


async def project_of(api: httpx.AsyncClient, run_id: str) -> str:
    return str((await api.get(f"/api/v3/runs/{run_id}")).json()["project"])


async def test_a_project_key_triggers_lists_and_sees_its_project_only(
        two: InProcessServices, api: httpx.AsyncClient, as_b: httpx.AsyncClient) -> None:
    in_b = (await trigger(as_b)).json()["id"]
    in_a = (await trigger(api, **{HEADER: A})).json()["id"]
    assert (await project_of(api, in_b), await project_of(api, in_a)) == (B, A)
    listed = (await as_b.get("/api/v1/runs")).json()["data"]
    assert [r["id"] for r in listed] == [in_b]
    assert (await as_b.get("/api/v1/runs", params={"filter[project]": A})).json()["data"] == []
    assert (await as_b.get(f"/api/v3/runs/{in_a}")).status_code == 404
    assert (await as_b.post(f"/api/v2/runs/{in_a}/cancel")).status_code == 404
    in_a_only = (await api.get("/api/v1/runs", params={"filter[project]": A})).json()["data"]
    assert [r["id"] for r in in_a_only] == [in_a]


async def test_the_daemon_key_without_a_project_resolves_unique_task_ids_only(
        two: InProcessServices, api: httpx.AsyncClient) -> None:
    two.task_ids = ["hello", "solo"]
    await two.index_project("/a", ["trigger"], None, {}, project=A)
    solo = await trigger(api, "solo")
    assert solo.status_code == 200 and await project_of(api, solo.json()["id"]) == A
    ambiguous = await trigger(api)
    assert ambiguous.status_code == 400, ambiguous.text
    body = ambiguous.json()
    assert body["code"] == "ambiguous_project" and body["projects"] == [A, B]
    assert "TRIGGER_LOCAL_PROJECT" in body["error"] and "/a" in body["error"]


async def test_a_key_cannot_act_for_another_project(two: InProcessServices, as_b: httpx.AsyncClient,
                                                    api: httpx.AsyncClient) -> None:
    refused = await trigger(as_b, **{HEADER: A})
    assert refused.status_code == 403 and "proj_b" in refused.json()["error"]
    register = await as_b.post("/api/v1/local/versions", json={"projectDir": "/a", "project": A})
    assert register.status_code == 403
    bad = await trigger(api, **{HEADER: "not a ref!"})
    assert bad.status_code == 400 and HEADER in bad.json()["error"]


async def test_queues_resolve_within_the_named_project(two: InProcessServices,
                                                       api: httpx.AsyncClient,
                                                       as_b: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/queues/hello/pause", json={"type": "task"})).status_code == 400
    paused = await as_b.post("/api/v1/queues/hello/pause", json={"type": "task"})
    assert paused.status_code == 200 and paused.json()["project"] == B
    queues = (await api.get("/api/v1/queues")).json()["data"]
    listed = {(q["project"], q["name"]): q["paused"] for q in queues}
    assert listed[(A, "hello")] is False and listed[(B, "hello")] is True
    assert {q["project"] for q in (await as_b.get("/api/v1/queues")).json()["data"]} == {B}
    resumed = await api.post("/api/v1/queues/hello/pause",
                             json={"type": "task", "action": "resume"},
                             headers={HEADER: B})
    assert resumed.status_code == 200 and resumed.json()["paused"] is False


async def test_registration_takes_the_ref_of_the_project_directory(services: InProcessServices,
                                                                   api: httpx.AsyncClient,
                                                                   tmp_path: Path) -> None:
    named = tmp_path / "named"
    named.mkdir()
    (named / "trigger.toml").write_text('project = "proj_named"\n')
    unnamed = tmp_path / "My App"
    unnamed.mkdir()
    for root, ref in ((named, "proj_named"), (unnamed, "proj_my-app")):
        r = await api.post("/api/v1/local/versions", json={"projectDir": str(root)})
        assert r.status_code == 200 and r.json()["project"] == ref, r.text
    r = await api.post("/api/v1/local/versions",
                       json={"projectDir": str(named), "project": "proj_given", "dev": True})
    assert r.json()["project"] == "proj_given"
    r = await api.post("/api/v1/local/versions", json={"projectDir": "/x", "dev": "yes"})
    assert r.status_code == 400


async def test_projects_and_status_list_every_project(two: InProcessServices,
                                                      api: httpx.AsyncClient,
                                                      as_b: httpx.AsyncClient) -> None:
    await two.index_project("/c", ["trigger"], None, {}, project="proj_c", dev=True)
    listed = {p["ref"]: p for p in (await api.get("/api/v1/local/projects")).json()["data"]}
    assert set(listed) == {A, B, "proj_c"} and listed[B]["key"] == project_key(SECRET, B)
    assert (listed[A]["online"], listed["proj_c"]["online"], listed[A]["tasks"]) == (True, False, 2)
    assert [p["ref"] for p in (await as_b.get("/api/v1/local/projects")).json()["data"]] == [B]
    status = (await api.get("/api/v1/local/status", headers={HEADER: A})).json()
    assert status["current_version"] == two.engine.projects.current[A].id \
        and len(status["projects"]) == 3
    tasks = (await api.get("/api/v1/local/tasks")).json()["data"]
    assert {(t["project"], t["id"]) for t in tasks} >= {(A, "hello"), (B, "hello")}
    assert {t["project"] for t in (await as_b.get("/api/v1/local/tasks")).json()["data"]} == {B}


async def test_a_dev_session_needs_one_project(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/local/stream", params={"session": "1"})
    assert r.status_code == 400 and "project=REF" in r.json()["error"]


async def test_a_malformed_project_ref_is_one_400_on_every_route_taking_one(
        api: httpx.AsyncClient) -> None:
    """The stream's `project` answered 422 where the list routes' `filter[project]` answered 400
    for the same bad ref: one mistake, one answer, naming the parameter and the value."""
    for path, name in (("/api/v1/local/stream", "project"), ("/api/v1/runs", "filter[project]")):
        r = await api.get(path, params={name: "proj_a,bad ref"})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"].startswith(f"Invalid {name} 'bad ref': use 1-64 letters"), r.text


@pytest.mark.parametrize("value", [b"bad ref", b"proj_\xc3\xa9", b"x" * 5000, b"-lead", b"a,b"],
                         ids=["space", "utf8", "huge", "leading-dash", "comma"])
async def test_a_malformed_project_header_is_the_same_400_as_the_query(
        two: InProcessServices, api: httpx.AsyncClient, value: bytes) -> None:
    """The header answered 422 where the same ref as a query parameter answered 400: the same
    400 and message now, on a read, a write and a queue route, and nothing is stored."""
    shown = repr(value.decode())  # as the client meant it (it showed 'proj_Ã©' for 'proj_é')
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    for method, path, body in (("GET", "/api/v1/runs", None),
                               ("POST", "/api/v1/tasks/hello/trigger", {"payload": "{}"}),
                               ("POST", "/api/v1/waitpoints/tokens", {}),
                               ("POST", "/api/v1/queues/hello/pause", {"type": "task"})):
        r = await api.request(method, path, json=body, headers={HEADER: value})  # type: ignore[dict-item]
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"].startswith(f"Invalid {HEADER} header {shown}: use 1-64 "
                                            "letters, digits, '_' or '-'"), (path, r.text)
    assert (await api.get("/api/v1/runs")).json()["data"] == []
    assert (await api.get("/api/v1/waitpoints/tokens")).json()["data"] == []


async def test_request_keys_are_per_project(two: InProcessServices, api: httpx.AsyncClient,
                                            as_b: httpx.AsyncClient) -> None:
    """Two projects' clients sending one x-trigger-request-idempotency-key for the same task id
    get a run each, and each gets its own run again when it sends the request again."""
    key = {"x-trigger-request-idempotency-key": "same-key"}
    in_a = (await trigger(api, **{HEADER: A}, **key)).json()["id"]
    in_b = (await trigger(as_b, **key)).json()["id"]
    assert in_a != in_b and (await project_of(api, in_a), await project_of(api, in_b)) == (A, B)
    assert (await trigger(api, **{HEADER: A}, **key)).json()["id"] == in_a
    assert (await trigger(as_b, **key)).json()["id"] == in_b
    batch = {"items": [{"task": "hello", "payload": "{}"}]}
    batch_a = (await api.post("/api/v1/tasks/batch", json=batch, headers={HEADER: A, **key})).json()
    batch_b = (await as_b.post("/api/v1/tasks/batch", json=batch, headers=key)).json()
    assert batch_a["id"] != batch_b["id"] and await project_of(api, batch_b["runs"][0]["id"]) == B
    again = (await as_b.post("/api/v1/tasks/batch", json=batch, headers=key)).json()
    assert (again["id"], again["isCached"]) == (batch_b["id"], True)
    v3_a = (await api.post("/api/v3/batches", json={"runCount": 1},
                           headers={HEADER: A, **key})).json()["id"]
    v3_b = (await as_b.post("/api/v3/batches", json={"runCount": 1}, headers=key)).json()["id"]
    assert v3_a != v3_b
    assert (await as_b.post("/api/v3/batches", json={"runCount": 1}, headers=key)).json()["id"] \
        == v3_b


async def test_a_request_key_of_a_run_waiting_for_its_project_finds_it_there(
        services: InProcessServices, api: httpx.AsyncClient) -> None:
    """A run triggered before any project had its task has no project yet; the same request
    sent again once a project took the run answers with that run."""
    key = {"x-trigger-request-idempotency-key": "early"}
    first = (await trigger(api, **key)).json()["id"]
    await services.index_project("/a", ["trigger"], None, {}, project=A)
    assert await project_of(api, first) == A
    assert (await trigger(api, **key)).json()["id"] == first


async def test_batches_and_schedules_refuse_an_unknown_project_and_store_nothing(
        two: InProcessServices, api: httpx.AsyncClient) -> None:
    """Like the single trigger route: a batch or a schedule for a project no `dev` registered
    (a typo in TRIGGER_LOCAL_PROJECT) is a 404 naming the known projects, not runs parked for
    good (nor a schedule 422 "not found in project." that names neither)."""
    typo = {HEADER: "proj_typo"}
    legacy = await api.post("/api/v1/tasks/batch", headers=typo,
                            json={"items": [{"task": "hello", "payload": "{}"}]})
    v3 = await api.post("/api/v3/batches", json={"runCount": 1}, headers=typo)
    schedule = await api.post("/api/v1/schedules", headers=typo,
                              json={"task": "hello", "cron": "0 * * * *"})
    for refused in (legacy, v3, schedule):
        assert refused.status_code == 404, refused.text
        body = refused.json()
        assert body["code"] == "project_not_found" and body["known_projects"] == [A, B]
        assert "proj_typo" in body["error"] and "TRIGGER_LOCAL_PROJECT" in body["error"]
    assert (await api.get("/api/v1/runs")).json()["data"] == []
    assert (await api.get("/api/v1/schedules")).json()["pagination"]["count"] == 0


async def test_tokens_packets_and_batch_items_refuse_an_unknown_project(
        two: InProcessServices, api: httpx.AsyncClient) -> None:
    """Every route that stores something under the header's project refuses one no `dev`
    registered, as the trigger route does: a waitpoint token, a new packet's upload URL and the
    items of a batch created without a header are 404 naming the known projects; nothing is
    stored."""
    typo = {HEADER: "proj_typo"}
    batch = (await api.post("/api/v3/batches", json={"runCount": 1})).json()["id"]
    token = await api.post("/api/v1/waitpoints/tokens", json={}, headers=typo)
    packet = await api.put("/api/v2/packets/run_x%2Fpayload.json", headers=typo)
    items = await api.post(f"/api/v3/batches/{batch}/items", headers={
        **typo, "content-type": "application/x-ndjson"},
        content=b'{"index": 0, "task": "hello", "payload": "{}"}\n')
    for refused in (token, packet, items):
        assert refused.status_code == 404, refused.text
        body = refused.json()
        assert body["code"] == "project_not_found" and body["known_projects"] == [A, B]
        assert "proj_typo" in body["error"]
    assert (await api.get("/api/v1/waitpoints/tokens")).json()["data"] == []
    assert (await api.get("/api/v1/runs")).json()["data"] == []
    known = await api.post("/api/v1/waitpoints/tokens", json={}, headers={HEADER: A})
    assert known.status_code == 200, known.text


async def test_env_vars_of_an_unknown_project_are_404_and_stored_nowhere(
        two: InProcessServices, api: httpx.AsyncClient) -> None:
    """The envvars routes take the project from the path: a ref no project has (a typo) is a
    404 naming the known projects, as elsewhere, not values no task process would ever get."""
    base = "/api/v1/projects/proj_typo/envvars/dev"
    for refused in (await api.post(base, json={"name": "KEY", "value": "v"}),
                    await api.post(f"{base}/import", json={"variables": {"KEY": "v"}}),
                    await api.get(base), await api.get(f"{base}/KEY"),
                    await api.put(f"{base}/KEY", json={"value": "v"}),
                    await api.delete(f"{base}/KEY")):
        assert refused.status_code == 404, refused.text
        body = refused.json()
        assert body["code"] == "project_not_found" and body["known_projects"] == [A, B]
        assert "proj_typo" in body["error"] and "ref in the path" in body["error"]
    assert not await two.engine.queries.env_vars.all("proj_typo", "dev")
    known = await api.post(f"/api/v1/projects/{A}/envvars/dev", json={"name": "K", "value": "v"})
    assert known.status_code == 200, known.text


async def test_env_vars_stored_under_a_ref_no_project_has_can_be_listed_and_deleted(
        two: InProcessServices, api: httpx.AsyncClient) -> None:
    """Variables stored under a ref before such writes were refused (or under a project
    renamed since) are listed, read and deleted through the same routes; writes there stay
    404, and once none is left the ref is a 404 again."""
    await two.engine.set_env_vars("proj_gone", "dev", {"OLD": "v", "SECRET": "s"},
                                  is_secret=None)
    base = "/api/v1/projects/proj_gone/envvars/dev"
    listed = await api.get(base)
    assert listed.status_code == 200, listed.text
    assert sorted(v["name"] for v in listed.json()) == ["OLD", "SECRET"]
    assert (await api.get(f"{base}/OLD")).json()["value"] == "v"
    assert (await api.put(f"{base}/OLD", json={"value": "w"})).status_code == 404
    assert (await api.post(base, json={"name": "NEW", "value": "v"})).status_code == 404
    assert (await api.delete(f"{base}/NOPE")).json()["code"] == "project_not_found"
    for name in ("OLD", "SECRET"):
        assert (await api.delete(f"{base}/{name}")).json() == {"success": True}
    assert not await two.engine.queries.env_vars.all("proj_gone", "dev")
    assert (await api.get(base)).json()["code"] == "project_not_found"
