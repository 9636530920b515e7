"""Auth and the error contract: every failure is JSON with `error` and `code`, never a 500."""

from __future__ import annotations

import httpx

from tests.conftest import SECRET
from trigger_local.api.auth import sign_jwt, worker_token
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine
from trigger_local.store.models import Version


async def test_management_routes_need_the_secret_key(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""},
                    {"Authorization": f"Basic {SECRET}"}):
        r = await api.get("/api/v1/runs", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "Invalid API Key"


async def test_healthz_and_openapi_need_no_key(api: httpx.AsyncClient) -> None:
    r = await api.get("/healthz", headers={"Authorization": ""})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["version"]
    spec = (await api.get("/openapi.json")).json()
    assert "/api/v1/tasks/{task_id}/trigger" in spec["paths"] \
        and "/engine/v1/workers/{worker_id}/next" in spec["paths"]


async def test_public_jwt_reads_only_the_runs_it_names(api: httpx.AsyncClient, engine: Engine,
                                                       indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/hello/trigger", json={})
    run_id, token = r.json()["id"], r.headers["x-trigger-jwt"]
    other = (await api.post("/api/v1/tasks/hello/trigger", json={})).json()["id"]
    as_public = {"Authorization": f"Bearer {token}"}
    assert (await api.get(f"/api/v3/runs/{run_id}", headers=as_public)).status_code == 200
    denied = await api.get(f"/api/v3/runs/{other}", headers=as_public)
    assert denied.status_code == 403 and denied.json()["error"] == "Unauthorized"
    r = await api.post("/api/v1/tasks/hello/trigger", json={}, headers=as_public)
    assert r.status_code == 403
    assert (await api.post(f"/api/v2/runs/{run_id}/cancel", headers=as_public)).status_code == 403


async def test_expired_or_foreign_jwts_are_401(api: httpx.AsyncClient, engine: Engine,
                                               indexed: Version) -> None:
    run_id = (await api.post("/api/v1/tasks/hello/trigger", json={})).json()["id"]
    expired = sign_jwt(SECRET, [f"read:runs:{run_id}"], engine.clock.now() - 7200)
    foreign = sign_jwt("another-secret", [f"read:runs:{run_id}"], engine.clock.now())
    for token in (expired, foreign, "a.b.c"):
        r = await api.get(f"/api/v3/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token


async def test_malformed_json_is_400_naming_the_problem(api: httpx.AsyncClient,
                                                        indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/hello/trigger", content=b'{"payload": ',
                       headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    assert "not valid JSON" in r.json()["error"]
    r = await api.post("/api/v1/tasks/hello/trigger", content=b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]


def _names_the_one_limit(body: dict, settings: DaemonSettings) -> None:
    """Every size refusal names the payload limit (not the body's allowance above it), in MiB,
    and the setting that changes it."""
    limit = settings.payload_limit_bytes
    assert body["code"] == "too_large" and body["limit"] == limit, body
    assert f"over the payload limit of {limit:,} bytes (3.0 MiB)" in body["error"], body
    assert "TRIGGER_LOCAL_PAYLOAD_LIMIT_BYTES" in body["error"], body


async def test_body_over_the_limit_is_413_naming_the_payload_limit(api: httpx.AsyncClient,
                                                                   settings: DaemonSettings,
                                                                   indexed: Version) -> None:
    too_big = settings.payload_limit_bytes + 64 * 1024
    r = await api.post("/api/v1/tasks/hello/trigger", json={"payload": "x" * too_big})
    assert r.status_code == 413
    _names_the_one_limit(r.json(), settings)
    assert r.json()["error"].startswith("Request body is ")


async def test_chunked_body_over_the_limit_is_413(api: httpx.AsyncClient, settings: DaemonSettings,
                                                  indexed: Version) -> None:
    chunk = b"x" * 65536

    async def chunks():  # no Content-Length: the size is only known while reading
        for _ in range(settings.payload_limit_bytes // len(chunk) + 2):
            yield chunk

    r = await api.post("/api/v1/tasks/hello/trigger", content=chunks())
    assert r.status_code == 413
    _names_the_one_limit(r.json(), settings)


async def test_payload_over_the_payload_limit_is_413(api: httpx.AsyncClient,
                                                     settings: DaemonSettings,
                                                     indexed: Version) -> None:
    text = "x" * (settings.payload_limit_bytes + 100)
    r = await api.post("/api/v1/tasks/hello/trigger",
                       json={"payload": text, "options": {"payloadType": "text/plain"}})
    assert r.status_code == 413
    _names_the_one_limit(r.json(), settings)
    assert r.json()["error"].startswith(f"Payload is {len(text):,} bytes, over the payload limit")


async def test_metadata_over_the_payload_limit_is_413_with_the_same_message(
        api: httpx.AsyncClient, settings: DaemonSettings, indexed: Version) -> None:
    big = {"big": "x" * (settings.payload_limit_bytes - 10)}
    r = await api.post("/api/v1/tasks/hello/trigger",
                       json={"payload": "{}", "options": {"metadata": big}})
    assert r.status_code == 413
    _names_the_one_limit(r.json(), settings)
    assert r.json()["error"].startswith("Metadata is ")


async def test_unknown_routes_and_methods_answer_json(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "Resource not found"
    r = await api.delete("/api/v1/runs")
    assert r.status_code == 405 and r.json()["error"] == "Method not allowed"


async def test_query_validation_uses_our_shape(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/runs", params={"page[size]": "500"})
    assert r.status_code == 400 and "page[size]" in r.json()["error"]
    r = await api.post("/engine/v1/runs/run_1/attempts/notanumber/complete", json={})
    assert r.status_code == 422 and r.json()["code"] == "invalid" and "details" in r.json()


async def test_conflicts_tell_the_client_not_to_retry(api: httpx.AsyncClient, services,
                                                      indexed: Version) -> None:
    await api.post("/api/v1/tasks/hello/trigger", json={})
    worker_id = "worker_1"
    nxt = await api.get(f"/engine/v1/workers/{worker_id}/next",
                        headers={"Authorization": f"Bearer {worker_token(SECRET, worker_id)}"})
    a = nxt.json()["assignment"]
    url = f"/engine/v1/runs/{a['run_id']}/attempts/1/complete"
    headers = {"Authorization": f"Bearer {a['run_token']}"}
    assert (await api.post(url, json={"ok": True, "output": "1"}, headers=headers)).status_code \
        == 200
    again = await api.post(url, json={"ok": True, "output": "1"}, headers=headers)
    assert again.status_code == 409 and again.headers["x-should-retry"] == "false"


async def test_unexpected_errors_are_500_json(api: httpx.AsyncClient, services,
                                              monkeypatch) -> None:
    def broken() -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "status", broken)
    r = await api.get("/api/v1/local/status")
    assert r.status_code == 500 and r.json()["error"] == "Something went wrong"
    assert r.headers["x-should-retry"] == "false"


def test_a_signed_token_is_the_hs256_jwt_of_its_claims() -> None:
    """sign_jwt (the one-shot HMAC, its constant header part) makes the standard token: the
    base64url header and claims, signed with HMAC-SHA256 over both; verify_jwt reads it."""
    import base64
    import hashlib
    import hmac
    import json

    from trigger_local.api.auth import verify_jwt

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    token = sign_jwt(SECRET, ["read:runs:run_1"], 1_700_000_000.5, ttl_s=60)
    header, claims, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert (decoded["scopes"], decoded["iat"], decoded["exp"], decoded["pub"]) == \
        (["read:runs:run_1"], 1_700_000_000, 1_700_000_060, True)
    expected = hmac.new(SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert signature == b64(expected)
    assert verify_jwt(SECRET, token, 1_700_000_010) == decoded
    assert verify_jwt("another-secret", token, 1_700_000_010) is None
