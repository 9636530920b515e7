"""Environment variables per project and environment slug (TRIGGER_API.md §10). A project's
task processes get its variables as real environment variables when they start; a change
reaches processes started afterwards."""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadRequestError, NotFoundError
from ..limits import ENV_MAX_COUNT, ENV_TOTAL_MAX_BYTES, ENV_VAR_MAX_BYTES, MAX_NAME_LENGTH
from ..store.catalog_areas import EnvVarReader
from .unit import Tx

#: what a POSIX shell accepts as a variable name
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: names the daemon sets itself for every task process; a user value would break the wiring
RESERVED_PREFIXES = ("TRIGGER_LOCAL_",)
RESERVED = {"TRIGGER_API_URL", "TRIGGER_SECRET_KEY"}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise BadRequestError(f"Invalid environment variable name {str(name)[:60]!r}: use "
                              f"letters, digits and _, at most {MAX_NAME_LENGTH} of them")
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        raise BadRequestError(f"{name} is set by trigger-local for every task process and "
                              "cannot be overridden")
    return name


async def put(tx: Tx, project: str, env: str, values: dict[str, Any], *,
              is_secret: bool | None = None, override: bool = True) -> None:
    """Set `project`'s variables of environment `env` (`override=False`: keep existing
    values)."""
    checked = {check_name(k): v for k, v in values.items()}
    for name, value in checked.items():
        if not isinstance(value, str):
            raise BadRequestError(f"The value of {name} must be a string")
        if "\0" in value:  # no process could be started with it
            raise BadRequestError(f"The value of {name} must not contain a NUL character")
        if entry_bytes(name, value) > ENV_VAR_MAX_BYTES:
            raise BadRequestError(
                f"{name} is {entry_bytes(name, value):,} bytes as NAME=value: at most "
                f"{ENV_VAR_MAX_BYTES:,} (no process starts with a larger one). Put large values "
                "in a file and pass its path.", name=name)
    await _check_totals(tx, project, env, checked, override)
    for name, value in checked.items():
        await tx.env_vars.put(project, env, name, value, is_secret, tx.now, override=override)


def entry_bytes(name: str, value: str) -> int:
    """What `name=value` takes in a process's environment, with its NUL."""
    return len(name.encode()) + len(value.encode(errors="surrogateescape")) + 2


async def _check_totals(tx: Tx, project: str, env: str, values: dict[str, str],
                        override: bool) -> None:
    """The variables stored after this change stay within ENV_MAX_COUNT and
    ENV_TOTAL_MAX_BYTES: beyond them no task process of the project could start."""
    after = {v["name"]: v["value"] for v in await tx.env_vars.all(project, env)}
    after.update(values if override else {k: v for k, v in values.items() if k not in after})
    total = sum(entry_bytes(k, v) for k, v in after.items())
    if len(after) > ENV_MAX_COUNT or total > ENV_TOTAL_MAX_BYTES:
        raise BadRequestError(
            f"Too many environment variables for {project} ({env}): this would store "
            f"{len(after):,} of {total:,} bytes in all, at most {ENV_MAX_COUNT:,} variables and "
            f"{ENV_TOTAL_MAX_BYTES:,} bytes (no task process starts with more). Delete some, "
            "or put large values in a file and pass its path.")


async def delete(tx: Tx, project: str, env: str, name: str) -> None:
    if not await tx.env_vars.delete(project, env, name):
        raise NotFoundError("Environment variable not found", name=name[:128])


async def get(env_vars: EnvVarReader, project: str, env: str, name: str) -> dict[str, Any]:
    found = await env_vars.get(project, env, name)
    if found is None:
        raise NotFoundError("Environment variable not found", name=name[:128])
    return found


async def process_env(env_vars: EnvVarReader, project: str, env: str = "dev") -> dict[str, str]:
    """What a new task process of `project` gets on top of the daemon's own environment."""
    return {v["name"]: v["value"] for v in await env_vars.all(project, env)}
