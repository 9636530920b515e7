"""Small hostile inputs at the routes, against a real daemon: an empty trigger body is 400
"Request body is empty" (was: a run with a None payload), a body is JSON whatever its
Content-Type says, `options.lockToVersion` must be a string (a version's id), and the envvars
routes' errors do not echo a 5,000-character value whole."""

from __future__ import annotations

from .conftest import DaemonProcess

P = "/api/v1/tasks/hello/trigger"


def test_an_empty_trigger_body_is_400(ready: DaemonProcess) -> None:
    for headers in ({"content-type": "application/json"}, {}):
        r = ready.api("POST", P, content=b"", headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("Request body is empty"), r.text
    # `{}` is a run without a payload
    assert ready.api("POST", P, json={}).status_code == 200


def test_a_body_is_json_whatever_its_content_type(ready: DaemonProcess) -> None:
    r = ready.api("POST", P, content=b'{"payload": {"name": "x"}}',
                  headers={"content-type": "text/plain"})
    assert r.status_code == 200, r.text


def test_lock_to_version_must_be_a_string(ready: DaemonProcess) -> None:
    r = ready.api("POST", P, json={"options": {"lockToVersion": 5}})
    assert r.status_code in (400, 422), r.text
    assert "lockToVersion must be a string" in r.json()["error"], r.text
    r = ready.api("POST", P, json={"options": {"lockToVersion": "v1"}})  # no version's id
    assert r.status_code == 422 and "'v1'" in r.json()["error"], r.text


def test_envvars_errors_do_not_echo_a_long_value(ready: DaemonProcess) -> None:
    long = "x" * 5000
    paths = [f"/api/v1/projects/{long}/envvars/dev",
             f"/api/v1/projects/proj_x/envvars/{long}",
             f"/api/v1/projects/proj_test/envvars/dev/{long}"]
    for path in paths:
        r = ready.api("GET", path)
        assert 400 <= r.status_code < 500, (path[:60], r.status_code)
        assert len(r.text) < 1000, (path[:60], r.status_code, r.text[:200])
