"""A project key confines every route to its project (docs/configuration.md, "Projects"):
another project's waitpoint tokens, environment variables, batches and packets are 404 to it,
and a project key sent with another project's header is 403. The daemon's key reaches all.
Two projects on one real daemon, each route with both keys and the daemon's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .conftest import DaemonProcess

TASKS = '''
import os
from trigger_local import task, wait

@task(id="env-{letter}")
async def env(payload, ctx):
    return {{"shared": os.environ.get("SHARED"), "project": "{letter}"}}

@task(id="wait-{letter}")
async def wait_token(payload, ctx):
    return {{"ok": (await wait.for_token(payload["token"])).ok}}
'''


def _project(root: Path, letter: str) -> Path:
    (root / "trigger").mkdir(parents=True)
    (root / "trigger.toml").write_text(f'project = "proj_{letter}"\ndirs = ["trigger"]\n')
    (root / "trigger" / "tasks.py").write_text(textwrap.dedent(TASKS.format(letter=letter)))
    return root


class Keys:
    def __init__(self, d: DaemonProcess) -> None:
        self.d = d
        self.key = {p["ref"]: p["key"]
                    for p in d.api("GET", "/api/v1/local/projects").json()["data"]}

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`who`: a project ref (its key), or "daemon"; `header=` names a project too."""
        key = self.d.key if who == "daemon" else self.key[who]
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        if (named := kwargs.pop("header", None)) is not None:
            headers["x-trigger-local-project"] = named
        return httpx.request(method, self.d.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def two(daemon: DaemonProcess, tmp_path: Path) -> Keys:
    daemon.register(_project(tmp_path / "a", "a"))
    daemon.register(_project(tmp_path / "b", "b"))
    return Keys(daemon)


def _status(r: httpx.Response) -> int:
    return r.status_code


def test_tokens_are_their_projects(two: Keys) -> None:
    k = two
    token = k.call("proj_a", "POST", "/api/v1/waitpoints/tokens",
                   json={"idempotencyKey": "same", "tags": ["t"]}).json()["id"]
    for who, expected in (("proj_b", 404), ("proj_a", 200), ("daemon", 200)):
        assert _status(k.call(who, "GET", f"/api/v1/waitpoints/tokens/{token}")) == expected, who
        listed = k.call(who, "GET", "/api/v1/waitpoints/tokens").json()["data"]
        assert (token in [t["id"] for t in listed]) == (expected == 200), who
    assert _status(k.call("proj_b", "POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                          json={"data": 1})) == 404
    assert _status(k.call("proj_b", "POST", f"/api/v1/waitpoints/tokens/{token}/timeout")) == 404
    assert k.call("daemon", "GET", f"/api/v1/waitpoints/tokens/{token}").json()["status"] \
        == "WAITING"
    # another project's header with a project key: 403
    assert _status(k.call("proj_a", "GET", f"/api/v1/waitpoints/tokens/{token}",
                          header="proj_b")) == 403
    # idempotency keys count within a project
    other = k.call("proj_b", "POST", "/api/v1/waitpoints/tokens",
                   json={"idempotencyKey": "same"}).json()
    assert other["id"] != token and not other["isCached"]
    again = k.call("proj_a", "POST", "/api/v1/waitpoints/tokens",
                   json={"idempotencyKey": "same"}).json()
    assert again["id"] == token and again["isCached"]
    assert _status(k.call("proj_a", "POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                          json={"data": 1})) == 200
    assert _status(k.call("daemon", "POST", f"/api/v1/waitpoints/tokens/{other['id']}/timeout")) \
        == 200


def test_env_vars_are_their_projects_and_reach_only_its_processes(two: Keys) -> None:
    k = two
    base = "/api/v1/projects/{ref}/envvars/dev"
    a, b = base.format(ref="proj_a"), base.format(ref="proj_b")
    assert _status(k.call("proj_a", "POST", a, json={"name": "SHARED", "value": "from-a"})) == 200
    assert _status(k.call("daemon", "POST", b, json={"name": "SHARED", "value": "from-b"})) == 200
    for method, path, body in (("GET", b, None), ("POST", b, {"name": "X", "value": "1"}),
                               ("POST", b + "/import", {"variables": {"X": "1"}}),
                               ("GET", b + "/SHARED", None),
                               ("PUT", b + "/SHARED", {"value": "taken"}),
                               ("DELETE", b + "/SHARED", None)):
        assert _status(k.call("proj_a", method, path, json=body)) == 404, (method, path)
    assert k.call("proj_b", "GET", b).json() == [{"name": "SHARED", "value": "from-b",
                                                  "isSecret": False}]
    assert k.call("proj_a", "GET", a).json() == [{"name": "SHARED", "value": "from-a",
                                                  "isSecret": False}]
    assert k.call("daemon", "GET", a + "/SHARED").json()["value"] == "from-a"
    assert _status(k.call("proj_a", "GET", a, header="proj_b")) == 403
    for letter in "ab":
        run_id = k.call("daemon", "POST", f"/api/v1/tasks/env-{letter}/trigger",
                        json={"payload": {}}).json()["id"]
        run = k.d.wait_status(run_id)
        assert run["output"] == {"shared": f"from-{letter}", "project": letter}, run


def test_batches_are_their_projects(two: Keys) -> None:
    k = two
    legacy = k.call("proj_a", "POST", "/api/v1/tasks/batch",
                    json={"items": [{"task": "env-a", "payload": {}}],
                          "idempotencyKey": "same"}).json()
    two_phase = k.call("proj_a", "POST", "/api/v3/batches",
                       json={"runCount": 1, "idempotencyKey": "phase"}).json()
    for batch in (legacy["id"], two_phase["id"]):
        for who, expected in (("proj_b", 404), ("proj_a", 200), ("daemon", 200)):
            assert _status(k.call(who, "GET", f"/api/v2/batches/{batch}")) == expected, who
    item = '{"index": 0, "task": "env-b", "payload": {}}'
    assert _status(k.call("proj_b", "POST", f"/api/v3/batches/{two_phase['id']}/items",
                          content=item,
                          headers={"content-type": "application/x-ndjson"})) == 404
    # batch idempotency keys count within a project
    other = k.call("proj_b", "POST", "/api/v1/tasks/batch",
                   json={"items": [{"task": "env-b", "payload": {}}],
                         "idempotencyKey": "same"}).json()
    assert other["id"] != legacy["id"] and not other["isCached"]
    again = k.call("proj_a", "POST", "/api/v1/tasks/batch",
                   json={"items": [{"task": "env-a", "payload": {}}],
                         "idempotencyKey": "same"}).json()
    assert again["id"] == legacy["id"] and again["isCached"]
    other = k.call("proj_b", "POST", "/api/v3/batches",
                   json={"runCount": 1, "idempotencyKey": "phase"}).json()
    assert other["id"] != two_phase["id"] and not other["isCached"]


def test_packets_are_their_projects(two: Keys) -> None:
    k = two
    url = k.call("proj_a", "PUT", "/api/v2/packets/a-run%2Fpayload.json").json()["presignedUrl"]
    assert httpx.put(url, content=b'{"secret": 1}').status_code == 200
    for method in ("GET", "PUT"):
        assert _status(k.call("proj_b", method, "/api/v2/packets/a-run%2Fpayload.json")) == 404
        for who in ("proj_a", "daemon"):
            r = k.call(who, method, "/api/v2/packets/a-run%2Fpayload.json")
            assert r.status_code == 200, (who, r.text)
    got = k.call("daemon", "GET", "/api/v2/packets/a-run%2Fpayload.json").json()["presignedUrl"]
    assert httpx.get(got).json() == {"secret": 1}
    # a URL B got for a name A takes afterwards cannot replace A's packet
    early = k.call("proj_b", "PUT", "/api/v2/packets/race.json").json()["presignedUrl"]
    url = k.call("proj_a", "PUT", "/api/v2/packets/race.json").json()["presignedUrl"]
    assert httpx.put(url, content=b'"a"').status_code == 200
    assert httpx.put(early, content=b'"b"').status_code == 404
    assert httpx.get(url).json() == "a"


def _put_packet(k: Keys, who: str, name: str, content: bytes) -> int:
    """Ask `who`'s key for `name`'s upload URL and PUT `content` there: the URL's status,
    else the upload's."""
    asked = k.call(who, "PUT", f"/api/v2/packets/{quote(name, safe='')}")
    if asked.status_code != 200:
        return asked.status_code
    return httpx.put(asked.json()["presignedUrl"], content=content).status_code


def test_a_packet_cannot_be_named_as_another_packets_own_files(two: Keys) -> None:
    """A packet's project and content type live in a `.meta` file beside it, and an upload
    goes through a `.part` file. Were `x.json.meta` a packet name, B's key could first make
    it B's (a packet `x.json.meta.meta`), then write A's `x.json.meta` naming B, and read A's
    packet; the daemon's key could write a `.meta` that makes A's packet a 500. Such names,
    and directories so named, are 400 to every key, and A's packet stays A's."""
    k = two
    assert _put_packet(k, "proj_a", "x.json", b'{"secret": 1}') == 200
    claim = json.dumps({"contentType": "application/json", "project": "proj_b"}).encode()
    assert _put_packet(k, "proj_b", "x.json.meta.meta", claim) == 400
    assert _put_packet(k, "proj_b", "x.json.meta", claim) == 400
    assert _put_packet(k, "daemon", "x.json.meta", b"[]") == 400
    assert _status(k.call("proj_b", "GET", "/api/v2/packets/x.json")) == 404
    got = k.call("proj_a", "GET", "/api/v2/packets/x.json").json()["presignedUrl"]
    read = httpx.get(got)
    assert read.status_code == 200 and read.json() == {"secret": 1}, read.text
    assert read.headers["content-type"] == "application/json"
    for name in ("x.json.part", "y.meta/z.json", "y.part/z.json"):
        refused = k.call("daemon", "PUT", f"/api/v2/packets/{quote(name, safe='')}")
        assert refused.status_code == 400 and ".meta" in refused.json()["error"], refused.text
        assert _status(k.call("daemon", "GET", f"/api/v2/packets/{quote(name, safe='')}")) \
            == 400

def test_a_task_cannot_wait_on_another_projects_token(two: Keys) -> None:
    k = two
    theirs = k.call("proj_a", "POST", "/api/v1/waitpoints/tokens", json={}).json()["id"]
    anyone = k.call("daemon", "POST", "/api/v1/waitpoints/tokens", json={}).json()["id"]
    refused = k.call("daemon", "POST", "/api/v1/tasks/wait-b/trigger",
                     json={"payload": {"token": theirs}, "options": {"maxAttempts": 1}})
    run = k.d.wait_status(refused.json()["id"])
    assert run["status"] == "FAILED" and "not found" in run["error"]["message"], run
    waiting = k.call("daemon", "POST", "/api/v1/tasks/wait-b/trigger",
                     json={"payload": {"token": anyone}}).json()["id"]
    k.d.wait_status(waiting, "WAITING")
    k.call("daemon", "POST", f"/api/v1/waitpoints/tokens/{anyone}/complete", json={"data": 1})
    assert k.d.wait_status(waiting)["output"] == {"ok": True}



def test_a_run_cannot_take_another_projects_packet_as_its_payload(two: Keys) -> None:
    """A payload of type `application/store` names a packet. B's key naming A's packet in a
    trigger made a run of B's whose `payloadPresignedUrl` (and task) read A's packet. Such a
    trigger, batch item, two-phase batch item or replay is 404, as A's packet is to B."""
    k = two
    assert _put_packet(k, "proj_a", "a-run/payload.json", b'{"secret": 1}') == 200
    store = {"payload": "a-run/payload.json", "options": {"payloadType": "application/store"}}
    mine = k.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger", json={"payload": {}})
    batch = k.call("proj_b", "POST", "/api/v3/batches", json={"runCount": 1}).json()["id"]
    refused = [
        k.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger", json=store),
        k.call("proj_b", "POST", "/api/v1/tasks/batch",
               json={"items": [{"task": "env-b", **store}]}),
        k.call("proj_b", "POST", f"/api/v3/batches/{batch}/items",
               content=json.dumps({"index": 0, "task": "env-b", **store}),
               headers={"content-type": "application/x-ndjson"}),
        k.call("proj_b", "POST", f"/api/v1/runs/{mine.json()['id']}/replay",
               json={"payload": "a-run/payload.json", "payloadType": "application/store"})]
    for r in refused:
        if r.status_code == 200 and "id" in r.json():  # what B could read before
            run = r.json()["id"] if "runs" not in r.json() else r.json()["runs"][0]["id"]
            url = k.call("proj_b", "GET", f"/api/v3/runs/{run}").json()["payloadPresignedUrl"]
            assert httpx.get(url).json() != {"secret": 1}, "B read A's packet"
        assert r.status_code == 404 and "Packet not found" in r.text, r.text
    # A's key and the daemon's still name it; a name no packet has is the task's, as before
    for who in ("proj_a", "daemon"):
        r = k.call(who, "POST", "/api/v1/tasks/env-a/trigger", json=store)
        assert r.status_code == 200, (who, r.text)
    assert k.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger",
                  json={**store, "payload": "none/yet.json"}).status_code == 200
