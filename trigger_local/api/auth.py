"""Credentials the daemon issues and checks: the secret key, project keys, public-access JWTs
(HS256, the shape Trigger.dev's SDK expects in `x-trigger-jwt`), stateless worker and run tokens,
and the HMAC that signs token callback URLs.

The secret key reaches every project; with it, the `x-trigger-local-project` header names the
project a request means. A project key (an HMAC of the secret and the project's ref) confines
every route to its project, as a Trigger.dev secret key does to its project and environment.

Worker and run tokens are HMACs of fixed strings under the secret, so they survive a daemon
restart without being stored anywhere."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .. import limits
from ..errors import AuthenticationError, BadRequestError, ForbiddenError, ValidationError
from ..projects import PROJECT_HEADER, check_project_ref

# the one definition, shared with the executors
from ..tokens import callback_hash, hmac_sha256, project_key, run_token, worker_token

JWT_ISSUER = "https://id.trigger.dev"
JWT_AUDIENCE = "https://api.trigger.dev"
ENV_ID = "env_local"
_JWT_HEADER = {"alg": "HS256", "typ": "JWT"}


__all__ = ["callback_hash", "project_key", "run_token", "sign_jwt", "verify_jwt", "worker_token"]


@dataclass(frozen=True)
class Caller:
    """Who a management request comes from. `project`: the project it means (a project key's,
    or the header's with the secret key; None: not said). `scoped`: a project key, which sees
    only its own project's runs, queues and schedules."""

    project: str | None = None
    scoped: bool = False

    def sees(self, project: str | None) -> bool:
        """Whether a record of `project` is visible to this caller."""
        return not self.scoped or project == self.project


ADMIN = Caller()


class ProjectKeys:
    """Project key → ref, for the refs the daemon knows; each key is computed once."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._by_key: dict[str, str] = {}
        self._refs: set[str] = set()

    def ref_of(self, token: str, refs: Iterable[str]) -> str | None:
        for ref in refs:
            if ref not in self._refs:
                self._refs.add(ref)
                self._by_key[project_key(self.secret, ref)] = ref
        return self._by_key.get(token)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# -- JWT ------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


#: compact JSON, an encoder made once (`json.dumps` with `separators` makes one per call)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
#: every token's first part and its dot (the header never changes)
_SIGNED_HEADER = _b64(_COMPACT.encode(_JWT_HEADER).encode()) + "."


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(secret: str, scopes: list[str], now: float, ttl_s: float = 3600) -> str:
    """A public access token for `scopes`, as Trigger.dev's server signs them."""
    claims = {"sub": ENV_ID, "pub": True, "scopes": scopes, "iat": int(now),
              "exp": int(now + ttl_s), "iss": JWT_ISSUER, "aud": JWT_AUDIENCE}
    signing_input = _SIGNED_HEADER + _b64(_COMPACT.encode(claims).encode())
    # every trigger's answer signs one token: the HMAC of tokens.py (issue #13)
    signature = hmac_sha256(secret, signing_input.encode())
    return signing_input + "." + _b64(signature)


def verify_jwt(secret: str, token: str, now: float) -> dict[str, Any] | None:
    """The claims of a token this daemon signed and that has not expired; else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = limits.loads(_unb64(parts[0]))
        signed = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac_sha256(secret, signed)
        if header.get("alg") != "HS256" or not hmac.compare_digest(expected, _unb64(parts[2])):
            return None
        claims = limits.loads(_unb64(parts[1]))
    except (ValueError, AttributeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float) \
            or claims["exp"] < now:
        return None
    return claims


def _scope_allows(scopes: list[str], wanted: str) -> bool:
    # `read:runs:run_1` is also granted by `read:runs` (all runs of that type) and `read:all`
    action, _, rest = wanted.partition(":")
    type_ = rest.partition(":")[0]
    return any(s in (wanted, f"{action}:{type_}", f"{action}:all", "admin") for s in scopes)


def _header_project(request: Request) -> str | None:
    """The project the header names; a malformed ref is a 400 with the message the same ref
    in a query parameter gets (`filter[project]`), not a 422."""
    value = request.headers.get(PROJECT_HEADER)
    shown: str | bytes | None = value
    if value and not value.isascii():  # shown as sent: UTF-8 text, else bytes, not Latin-1
        raw = value.encode("latin-1")
        try:
            shown = raw.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw
    try:
        return check_project_ref(shown, f"{PROJECT_HEADER} header") if shown else None
    except ValidationError as exc:
        raise BadRequestError(exc.message, field=PROJECT_HEADER) from None


def require_key(request: Request, secret: str, now: float,
                scope: str | Sequence[str] | None = None,
                keys: ProjectKeys | None = None, refs: Iterable[str] = ()) -> Caller:
    """Allow the secret key, a project key of one of `refs`, or a JWT we issued whose scopes
    grant `scope` (when given; a list: any of them); return who is calling.

    Raises AuthenticationError (401) for anything else, ForbiddenError for a JWT without the
    scope or a project key sent with another project's header."""
    token = bearer(request)
    if token and same(token, secret):
        return Caller(project=_header_project(request))
    ref = keys.ref_of(token, refs) if token and keys is not None else None
    if ref is not None:
        named = _header_project(request)
        if named is not None and named != ref:
            raise ForbiddenError(f"This key is project {ref}'s; it cannot act for project {named}. "
                                 f"Use {named}'s key, or the daemon's key.", type="authorization")
        return Caller(project=ref, scoped=True)
    if token and scope is not None and token.count(".") == 2:
        claims, caller = _public_token(token, secret, now, refs)
        if claims is not None:
            granted = [str(s) for s in claims.get("scopes") or []]
            wanted = [scope] if isinstance(scope, str) else list(scope)
            if any(_scope_allows(granted, w) for w in wanted):
                return caller
            raise ForbiddenError("Unauthorized", param="access_token", type="authorization")
    raise AuthenticationError("Invalid API Key")


def _public_token(token: str, secret: str, now: float,
                  refs: Iterable[str]) -> tuple[dict[str, Any] | None, Caller]:
    """The claims of a public token and who it speaks for. @trigger.dev/sdk's
    `auth.createPublicToken` signs with the key its client holds: the daemon's key (every
    project), or a project key (that project only)."""
    claims = verify_jwt(secret, token, now)
    if claims is not None:
        return claims, ADMIN
    for ref in refs:
        claims = verify_jwt(project_key(secret, ref), token, now)
        if claims is not None:
            return claims, Caller(project=ref, scoped=True)
    return None, ADMIN
