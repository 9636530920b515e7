"""The daemon's HMAC-SHA256 (tokens.py `hmac_sha256`, a copy of a MAC keyed once) signs
exactly what the standard library's HMAC signs: run, worker and project tokens, callback
hashes and the JWTs of trigger answers stay what they were, so tokens made by an older daemon
(a task process that outlived it, a public token in a browser) still verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from trigger_local import tokens
from trigger_local.api.auth import sign_jwt, verify_jwt

KEYS = ["", "k", "x" * 63, "x" * 64, "x" * 65, "é" * 40, "y" * 200,
        "tr_dev_0123456789abcdefghijklmnopqrstuvwxyz"]
MESSAGES = [b"", b"run:run_0mx4bnbtleankkvaaztsn:1", bytes(range(256)) * 5]


@pytest.mark.parametrize("key", KEYS)
def test_hmac_sha256_is_rfc_2104_hmac(key: str) -> None:
    for message in MESSAGES:
        assert tokens.hmac_sha256(key, message) == hmac.digest(key.encode(), message, "sha256")
    # the keyed MAC is copied, never updated: the same call twice gives the same answer
    assert tokens.hmac_sha256(key, b"again") == tokens.hmac_sha256(key, b"again")


def test_tokens_are_the_standard_hmac_of_their_messages() -> None:
    secret = "s3cret-" * 6

    def expected(message: str) -> str:
        return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()

    assert tokens.run_token(secret, "run_1", 2) == expected("run:run_1:2")
    assert tokens.worker_token(secret, "worker_1") == expected("worker:worker_1")
    assert tokens.callback_hash(secret, "waitpoint_1") == expected("waitpoint_1")
    assert tokens.project_key(secret, "proj_a") == "tr_dev_" + expected("project:proj_a")[:40]


def test_a_jwt_is_signed_with_the_standard_hmac_and_verifies() -> None:
    secret = "jwt-secret"
    token = sign_jwt(secret, ["read:runs:run_1"], now=1_000_000.0)
    head, claims, signature = token.split(".")
    want = hmac.digest(secret.encode(), f"{head}.{claims}".encode(), "sha256")
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == want
    verified = verify_jwt(secret, token, now=1_000_001.0)
    assert verified is not None and verified["scopes"] == ["read:runs:run_1"]
    assert verify_jwt("another secret", token, now=1_000_001.0) is None
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["exp"] == 1_000_000 + 3600
